"""The wire formats, one sub-package per door (`anthropic/`, later `openai/`, `minimax/`): request models
in, encoders out (stream events, the JSON fold, error envelopes). Imports only core."""
