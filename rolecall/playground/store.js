// Conversations live in localStorage (this browser only); the API key only in sessionStorage (this tab).

const CHATS = "rolecall.conversations";
const KEY = "rolecall.key";
const SETTINGS = "rolecall.settings";

export function loadSettings() {
  try {
    return JSON.parse(localStorage.getItem(SETTINGS) || "{}") || {};
  } catch {
    return {};
  }
}

export function saveSettings(settings) {
  localStorage.setItem(SETTINGS, JSON.stringify(settings));
}

export function loadKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function saveKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function emptyCharacter() {
  return {
    name: "",
    system: "",
    userName: "",
    persona: "",
    scene: "",
    examples: [],
    greeting: "",
    alternateGreetings: [],
    postHistory: "",
    lorebook: { scan_depth: null, entries: [] },
  };
}

export function newConversation() {
  const id = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  return { id, title: "New conversation", updated: Date.now(), character: emptyCharacter(), messages: [] };
}

export function loadConversations() {
  try {
    const list = JSON.parse(localStorage.getItem(CHATS) || "[]");
    return Array.isArray(list) ? list.filter(isConversation) : [];
  } catch {
    return [];
  }
}

export function saveConversations(list) {
  localStorage.setItem(CHATS, JSON.stringify(list));
}

export function isConversation(value) {
  return Boolean(value && typeof value.id === "string" && Array.isArray(value.messages) && value.character);
}

// An export file: {"rolecall_conversations": 1, "conversations": [...]}; an import merges by id.
export function exportFile(list) {
  return JSON.stringify({ rolecall_conversations: 1, conversations: list }, null, 2);
}

export function parseImport(text) {
  const value = JSON.parse(text);
  const list = Array.isArray(value) ? value : value.conversations;
  if (!Array.isArray(list)) throw new Error("not a rolecall conversations file");
  const good = list.filter(isConversation);
  if (!good.length) throw new Error("the file holds no conversations");
  return good;
}

export function download(name, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
