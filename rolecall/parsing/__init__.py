"""Stateful feed()/flush() parsers over the engine's output stream."""
