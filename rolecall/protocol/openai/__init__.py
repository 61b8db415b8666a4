"""The OpenAI chat-completions door (`POST /v1/chat/completions`): request models, the chunk encoder,
its fold into one `chat.completion` body, and OpenAI's error envelope (with MiniMax's `base_resp`)."""
