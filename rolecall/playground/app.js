// The playground: wires the panels, the conversation store and the streaming chat together.

import { ApiError, listModels, renderPrompt, streamMessage } from "./api.js";
import { exportCard, importCardFile, readCharacter, showCharacter } from "./character.js";
import { greetingMessage, messagesBody, picked, title } from "./conversation.js";
import * as store from "./store.js";
import { renderLog } from "./view.js";

const $ = (id) => document.getElementById(id);
const state = { conversations: store.loadConversations(), current: null, editing: -1, controller: null };

function key() {
  return $("key").value.trim();
}

function settings() {
  const maxTokens = Math.max(1, Number.parseInt($("max-tokens").value, 10) || 200);
  const chosen = { model: $("model").value, maxTokens, thinking: $("thinking").checked };
  store.saveSettings(chosen);
  return chosen;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function names() {
  const character = state.current.character;
  return { user: character.userName, char: character.name };
}

function save() {
  state.current.title = title(state.current);
  state.current.updated = Date.now();
  if (!state.conversations.includes(state.current)) state.conversations.unshift(state.current);
  store.saveConversations(state.conversations);
  showConversationList();
}

function redraw() {
  renderLog($("log"), state.current.messages, names(), state.editing);
}

function showConversationList() {
  const list = $("conversation-list");
  list.replaceChildren(
    ...state.conversations.map((conversation) => {
      const item = document.createElement("li");
      const open = document.createElement("button");
      open.type = "button";
      open.className = conversation === state.current ? "link current" : "link";
      open.textContent = conversation.title || "New conversation";
      open.addEventListener("click", () => openConversation(conversation));
      item.append(open);
      return item;
    }),
  );
}

function openConversation(conversation) {
  state.current = conversation;
  state.editing = -1;
  showCharacter(conversation.character);
  showConversationList();
  redraw();
}

function startConversation(character) {
  const conversation = store.newConversation();
  conversation.character = character;
  const greeting = greetingMessage(character);
  if (greeting) conversation.messages.push(greeting);
  openConversation(conversation);
}

// At start-up without a key, a refusal is expected (the server has keys): stay quiet until one is typed.
async function loadModels(quietWithoutKey = false) {
  try {
    const models = await listModels(key());
    const select = $("model");
    const chosen = select.value;
    select.replaceChildren(
      ...models.map((id) => {
        const option = document.createElement("option");
        option.value = id;
        option.textContent = id;
        return option;
      }),
    );
    const remembered = chosen || store.loadSettings().model;
    if (models.includes(remembered)) select.value = remembered;
    showError("");
  } catch (error) {
    if (!(quietWithoutKey && !key() && error.status === 401)) showError(error.message);
  }
}

// Stream a reply to `history` into `message` as a new swipe (a regenerate adds one more); false when
// the request failed before any reply came.
async function generate(history, message) {
  let answered = true;
  const body = messagesBody(state.current, history, settings());
  const swipe = { text: "", thinking: "", stats: null };
  message.swipes.push(swipe);
  message.pick = message.swipes.length - 1;
  redraw();
  const node = $("log").querySelector(`article[data-index="${state.current.messages.indexOf(message)}"]`);
  const textNode = node.querySelector(".text");
  const thinkingNode = node.querySelector(".thinking-text");
  const started = performance.now();
  let firstAt = null;
  let usage = {};
  state.controller = new AbortController();
  setBusy(true);
  try {
    await streamMessage(key(), body, state.controller.signal, (event) => {
      if (event.type === "message_start") usage = { ...event.message.usage };
      if (event.type === "message_delta" && event.usage) usage = { ...usage, ...event.usage };
      if (event.type === "content_block_start" && event.content_block.type === "thinking") {
        node.querySelector(".thinking").hidden = false;
      }
      if (event.type !== "content_block_delta") return;
      firstAt = firstAt ?? performance.now();
      if (event.delta.type === "text_delta") {
        swipe.text += event.delta.text;
        textNode.textContent = swipe.text;
      } else if (event.delta.type === "thinking_delta") {
        swipe.thinking += event.delta.thinking;
        thinkingNode.textContent = swipe.thinking;
      }
      $("log").scrollTop = $("log").scrollHeight;
    });
    const seconds = firstAt === null ? 0 : (performance.now() - firstAt) / 1000;
    const output = usage.output_tokens || 0;
    swipe.stats = {
      input: (usage.input_tokens || 0) + (usage.cache_read_input_tokens || 0),
      cached: usage.cache_read_input_tokens || 0,
      output,
      ttft: firstAt === null ? null : firstAt - started,
      tps: seconds > 0 && output > 1 ? (output - 1) / seconds : null,
    };
    showError("");
  } catch (error) {
    if (error.name === "AbortError") {
      swipe.text += swipe.text ? " [stopped]" : "[stopped]";
    } else {
      showError(error instanceof ApiError ? error.message : `The reply failed: ${error.message}`);
      message.swipes.pop();
      message.pick = Math.max(0, message.swipes.length - 1);
      answered = false;
    }
  } finally {
    state.controller = null;
    setBusy(false);
    if (!message.swipes.length) state.current.messages.splice(state.current.messages.indexOf(message), 1);
    save();
    redraw();
  }
  return answered;
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("regenerate").disabled = busy;
  $("stop").disabled = !busy;
  $("log").setAttribute("aria-busy", String(busy));
}

async function send(event) {
  event.preventDefault();
  if (state.controller) return;
  readCharacter(state.current.character);
  const text = $("message").value;
  if (!text.trim()) return;
  $("message").value = "";
  state.current.messages.push({ role: "user", swipes: [{ text, thinking: "", stats: null }], pick: 0 });
  const reply = { role: "assistant", swipes: [], pick: 0 };
  state.current.messages.push(reply);
  const answered = await generate(state.current.messages.slice(0, -1), reply);
  if (!answered) {
    // Nothing came back (bad key, server busy): give the text back to retry, leave no unanswered turn.
    state.current.messages.pop();
    $("message").value = text;
    save();
    redraw();
  }
}

async function regenerate() {
  if (state.controller) return;
  readCharacter(state.current.character);
  const messages = state.current.messages;
  const last = messages[messages.length - 1];
  if (!last || last.role !== "assistant" || messages.length < 2) {
    return showError("Nothing to regenerate yet: send a message first.");
  }
  await generate(messages.slice(0, -1), last);
}

function onLogClick(event) {
  const target = event.target.closest("button[data-action]");
  if (!target) return;
  const index = Number(target.dataset.index);
  const message = state.current.messages[index];
  const action = target.dataset.action;
  if (action === "prev") message.pick = (message.pick + message.swipes.length - 1) % message.swipes.length;
  if (action === "next") message.pick = (message.pick + 1) % message.swipes.length;
  if (action === "delete") state.current.messages.splice(index, 1);
  if (action === "edit") state.editing = index;
  if (action === "cancel") state.editing = -1;
  if (action === "save") {
    picked(message).text = target.parentElement.querySelector("textarea.edit").value;
    state.editing = -1;
  }
  save();
  redraw();
}

async function showPrompt() {
  readCharacter(state.current.character);
  const history = [...state.current.messages];
  const draft = $("message").value;
  if (draft.trim()) history.push({ role: "user", swipes: [{ text: draft }], pick: 0 });
  if (!history.length) history.push({ role: "user", swipes: [{ text: "(your next message)" }], pick: 0 });
  try {
    const rendered = await renderPrompt(key(), messagesBody(state.current, history, settings()));
    const prompt = rendered.prompt;
    $("prompt-summary").textContent =
      `${rendered.input_tokens} input tokens for ${rendered.model} (served by ${rendered.served_by}).` +
      (prompt === null ? " This engine does not show its prompt text." : "");
    $("prompt-turns").textContent = rendered.turns.map((t) => `── ${t.role} ──\n${t.content}`).join("\n\n");
    $("prompt-text").textContent = prompt === null ? "(not available for this engine)" : prompt;
    $("prompt-dialog").showModal();
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

async function importCard(file) {
  if (!file) return;
  try {
    const userName = $("user-name").value.trim();
    const character = await importCardFile(key(), file, userName);
    startConversation(character);
    save();
    $("card-status").textContent = `Imported ${character.name} from ${file.name}.`;
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

function wire() {
  $("key").value = store.loadKey();
  const remembered = store.loadSettings();
  if (remembered.maxTokens) $("max-tokens").value = String(remembered.maxTokens);
  $("thinking").checked = Boolean(remembered.thinking);
  $("key").addEventListener("change", () => {
    store.saveKey(key());
    loadModels();
  });
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("regenerate").addEventListener("click", regenerate);
  $("show-prompt").addEventListener("click", showPrompt);
  $("log").addEventListener("click", onLogClick);
  $("new-chat").addEventListener("click", () => startConversation(structuredClone(readCharacter(state.current.character))));
  $("character-panel").addEventListener("change", (event) => {
    if (event.target.type === "file") return; // a card being imported: it opens its own conversation
    readCharacter(state.current.character);
    const messages = state.current.messages;
    if (!messages.length || (messages.length === 1 && messages[0].role === "assistant")) {
      state.current.messages = [greetingMessage(state.current.character)].filter(Boolean);
      redraw();
    }
    save();
  });
  $("add-example").addEventListener("click", () => {
    readCharacter(state.current.character).examples.push({ user: "", ai: "" });
    showCharacter(state.current.character);
  });
  $("examples").addEventListener("click", (event) => {
    const index = event.target.dataset.remove;
    if (index === undefined) return;
    readCharacter(state.current.character).examples.splice(Number(index), 1);
    showCharacter(state.current.character);
    save();
  });
  $("card-file").addEventListener("change", (event) => importCard(event.target.files[0]));
  const drop = $("drop-zone");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    importCard(event.dataTransfer.files[0]);
  });
  $("export-card").addEventListener("click", () => {
    const character = readCharacter(state.current.character);
    store.download(`${character.name || "character"}.card.json`, JSON.stringify(exportCard(character), null, 2));
  });
  $("delete-chat").addEventListener("click", () => {
    state.conversations = state.conversations.filter((c) => c !== state.current);
    store.saveConversations(state.conversations);
    if (state.conversations.length) openConversation(state.conversations[0]);
    else startConversation(store.emptyCharacter());
  });
  $("export-chats").addEventListener("click", () => store.download("rolecall-conversations.json", store.exportFile(state.conversations)));
  $("import-chats").addEventListener("change", async (event) => {
    try {
      const incoming = store.parseImport(await event.target.files[0].text());
      const ids = new Set(incoming.map((c) => c.id));
      state.conversations = [...incoming, ...state.conversations.filter((c) => !ids.has(c.id))];
      store.saveConversations(state.conversations);
      openConversation(state.conversations[0]);
      showError("");
    } catch (error) {
      showError(`Could not import conversations: ${error.message}`);
    }
  });
}

wire();
if (state.conversations.length) openConversation(state.conversations[0]);
else startConversation(store.emptyCharacter());
loadModels(true);
