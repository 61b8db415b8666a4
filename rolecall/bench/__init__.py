"""`rolecall bench`: load generation against any Messages or OpenAI chat endpoint.

Independent of the server: it imports nothing else of rolecall, so it measures rolecall, a bare
llama.cpp server or anything else speaking either dialect through the same code.
"""
