// A conversation -> the /v1/messages body: the character as MiniMax role-play roles, then the history.
// Messages are {role, swipes: [{text, thinking, stats}], pick}; the picked swipe is what the model saw.

import { firedEntries, userMessageWithNotes } from "./lorebook.js";

export function picked(message) {
  return message.swipes[message.pick] || { text: "" };
}

export function greetingMessage(character) {
  const greetings = [character.greeting, ...character.alternateGreetings].filter((g) => g && g.trim());
  if (!greetings.length) return null;
  return { role: "assistant", swipes: greetings.map((text) => ({ text, thinking: "", stats: null })), pick: 0 };
}

function setupMessages(character) {
  const messages = [];
  if (character.persona.trim()) messages.push({ role: "user_system", content: character.persona });
  if (character.scene.trim()) messages.push({ role: "group", content: character.scene });
  for (const pair of character.examples) {
    if (pair.user.trim()) messages.push({ role: "sample_message_user", content: pair.user });
    if (pair.ai.trim()) messages.push({ role: "sample_message_ai", content: pair.ai });
  }
  return messages;
}

// `history` ends with the user message being answered; it alone carries lore notes and instructions.
export function messagesBody(conversation, history, settings) {
  const character = conversation.character;
  const turns = history.filter((m) => picked(m).text.trim());
  const texts = turns.map((m) => picked(m).text);
  const messages = setupMessages(character);
  turns.forEach((message, index) => {
    let content = picked(message).text;
    if (index === turns.length - 1 && message.role === "user") {
      const lore = firedEntries(character.lorebook, texts);
      content = userMessageWithNotes(content, lore, character.postHistory);
    }
    messages.push({ role: message.role, content });
  });
  const body = { model: settings.model, max_tokens: settings.maxTokens, messages };
  if (character.system.trim()) body.system = character.system;
  if (settings.thinking) {
    body.thinking = { type: "enabled", budget_tokens: 1024 };
    body.max_tokens = Math.max(settings.maxTokens, 1025);
  }
  return body;
}

export function title(conversation) {
  const first = conversation.messages.find((m) => m.role === "user");
  const name = conversation.character.name;
  const text = first ? picked(first).text.slice(0, 40) : "New conversation";
  return name ? `${name}: ${text}` : text;
}
