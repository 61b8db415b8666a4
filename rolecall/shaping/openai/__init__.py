"""The OpenAI-side doors' shaping (`/v1/chat/completions` and `/v1/text/chatcompletion_v2` share it): a
chat-completions request -> the neutral GenerationRequest. The rules only these doors have live here
(system messages anywhere, names, tool messages, `response_format`); the rest is the door-neutral shaping
one level up (turns, role-play, tools), the same code the Anthropic door uses."""

from rolecall.shaping.openai.conversation import ai_character, to_generation

__all__ = ["ai_character", "to_generation"]
