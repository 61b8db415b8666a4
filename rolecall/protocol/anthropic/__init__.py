"""The Anthropic Messages door's wire format: request models, content blocks, validation wording,
request caps, the SSE event encoder, the fold into a Message, the error envelope and the models page."""
