"""The wire format only: requests, responses, stream events and errors. Imports nothing else of rolecall."""
