"""MiniMax's native door (`POST /v1/text/chatcompletion_v2`): the OpenAI request and chunks, with
errors as HTTP 200 + `base_resp` and the stream's closing `chat.completion` frame."""
