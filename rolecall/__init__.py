"""rolecall: a self-hosted MiniMax / Anthropic Messages API server for open models."""

__version__ = "0.1.0"
