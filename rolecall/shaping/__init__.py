"""Request -> GenerationRequest: pure functions, no I/O."""
