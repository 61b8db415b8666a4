// The character panel: fields <-> the conversation's character, card import (server-side parsing) and
// V2 card export. Card text only ever goes into form fields' values and textContent.

import { importCard } from "./api.js";

const $ = (id) => document.getElementById(id);
const FIELDS = { name: "char-name", system: "char-system", userName: "user-name", persona: "persona",
  scene: "scene", greeting: "greeting" };

export function showCharacter(character) {
  for (const [field, id] of Object.entries(FIELDS)) $(id).value = character[field] || "";
  const examples = $("examples");
  examples.replaceChildren();
  character.examples.forEach((pair, index) => examples.append(exampleRow(pair, index)));
  const entries = (character.lorebook && character.lorebook.entries) || [];
  const notes = [];
  if (entries.length) notes.push(`Lorebook: ${entries.length} entries (inserted as notes when their keys come up).`);
  if (character.postHistory) notes.push("Post-history instructions: added after each message you send.");
  if (character.alternateGreetings.length) notes.push(`${character.alternateGreetings.length + 1} greetings (swipe the first reply).`);
  $("lore-status").textContent = notes.join(" ");
}

function exampleRow(pair, index) {
  const row = document.createElement("div");
  row.className = "example";
  for (const side of ["user", "ai"]) {
    const label = document.createElement("label");
    label.textContent = side === "user" ? `Example ${index + 1}: user` : `Example ${index + 1}: character`;
    const area = document.createElement("textarea");
    area.rows = 2;
    area.value = pair[side];
    area.dataset.side = side;
    label.append(area);
    row.append(label);
  }
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "Remove";
  remove.dataset.remove = String(index);
  row.append(remove);
  return row;
}

// The panel's current values back into the character (fields the panel does not show are kept).
export function readCharacter(character) {
  for (const [field, id] of Object.entries(FIELDS)) character[field] = $(id).value;
  character.examples = [...$("examples").querySelectorAll(".example")].map((row) => ({
    user: row.querySelector('[data-side="user"]').value,
    ai: row.querySelector('[data-side="ai"]').value,
  }));
  return character;
}

// The server's import answer (MiniMax roles) as a panel character.
export function fromImport(imported, userName) {
  const examples = [];
  let pending = null;
  for (const message of imported.messages) {
    if (message.role === "sample_message_user") {
      pending = { user: message.content, ai: "" };
      examples.push(pending);
    } else if (message.role === "sample_message_ai") {
      if (pending && !pending.ai) pending.ai = message.content;
      else examples.push({ user: "", ai: message.content });
      pending = null;
    }
  }
  const scene = imported.messages.filter((m) => m.role === "group").map((m) => m.content).join("\n\n");
  return {
    name: imported.char_name || imported.name,
    system: imported.system,
    userName,
    persona: "",
    scene,
    examples,
    greeting: imported.greetings[0] || "",
    alternateGreetings: imported.greetings.slice(1),
    postHistory: imported.post_history_instructions || "",
    lorebook: imported.lorebook,
  };
}

export async function importCardFile(key, file, userName) {
  return fromImport(await importCard(key, file, userName), userName);
}

// A V2 card (chara_card_v2) of the panel's character; the user's name goes back to {{user}}.
export function exportCard(character) {
  const user = character.userName || "User";
  const back = (text) => (text || "").split(user).join("{{user}}");
  const examples = character.examples
    .map((pair) => `<START>\n{{user}}: ${back(pair.user)}\n{{char}}: ${back(pair.ai)}`)
    .join("\n");
  const entries = ((character.lorebook && character.lorebook.entries) || []).map((entry, id) => ({
    ...entry, id, enabled: true, extensions: {},
  }));
  return {
    spec: "chara_card_v2",
    spec_version: "2.0",
    data: {
      name: character.name || "Character",
      description: back(character.system),
      personality: "",
      scenario: back(character.scene),
      first_mes: back(character.greeting),
      mes_example: examples,
      creator_notes: "Exported from the rolecall playground.",
      system_prompt: "",
      post_history_instructions: back(character.postHistory),
      alternate_greetings: character.alternateGreetings.map(back),
      character_book: entries.length ? { scan_depth: character.lorebook.scan_depth || undefined, entries, extensions: {} } : undefined,
      tags: [],
      creator: "",
      character_version: "",
      extensions: {},
    },
  };
}
