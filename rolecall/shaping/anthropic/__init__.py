"""The Anthropic door's shaping: a Messages request -> the neutral GenerationRequest. The rules only this
door has live here (content blocks, tool pairing, cache breakpoints, thinking parameters); the rest is
the door-neutral shaping one level up (turns, role-play, tools, thinking signatures)."""

from rolecall.shaping.anthropic.conversation import to_generation

__all__ = ["to_generation"]
