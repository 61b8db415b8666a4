"""Door request -> core.GenerationRequest: pure functions, no I/O. Door-neutral modules (turns, roles,
tools, thinking, traits) plus one sub-package per door (`anthropic/`)."""
