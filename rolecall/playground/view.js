// The conversation log. Everything from a card or the model goes in as textContent, never as HTML.

import { picked } from "./conversation.js";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, action, index, extra = {}) {
  const node = element("button", "small", label);
  node.type = "button";
  node.dataset.action = action;
  node.dataset.index = String(index);
  for (const [key, value] of Object.entries(extra)) node.setAttribute(key, value);
  return node;
}

export function statsText(stats) {
  if (!stats) return "";
  const parts = [`input ${stats.input}`, `cached ${stats.cached}`, `output ${stats.output}`];
  if (stats.ttft !== null) parts.push(`TTFT ${Math.round(stats.ttft)} ms`);
  if (stats.tps !== null) parts.push(`${stats.tps.toFixed(1)} tokens/s`);
  return parts.join(" · ");
}

// One message; `live` marks the reply being streamed (its nodes are returned to be filled in).
export function messageNode(message, index, names, editing) {
  const swipe = picked(message);
  const node = element("article", `message ${message.role}`);
  node.dataset.index = String(index);
  const speaker = message.role === "user" ? names.user || "You" : names.char || "Assistant";
  node.append(element("h3", "speaker", speaker));
  const thinking = element("details", "thinking");
  thinking.append(element("summary", "", "Thinking"), element("div", "thinking-text", swipe.thinking || ""));
  thinking.hidden = !swipe.thinking;
  node.append(thinking);
  if (editing) {
    const area = element("textarea", "edit");
    area.value = swipe.text;
    area.setAttribute("aria-label", `Edit message ${index + 1}`);
    node.append(area, button("Save", "save", index), button("Cancel", "cancel", index));
    return node;
  }
  node.append(element("div", "text", swipe.text));
  const tools = element("div", "tools");
  if (message.swipes.length > 1) {
    tools.append(
      button("‹", "prev", index, { "aria-label": "Previous reply" }),
      element("span", "swipe-count", `${message.pick + 1}/${message.swipes.length}`),
      button("›", "next", index, { "aria-label": "Next reply" }),
    );
  }
  tools.append(button("Edit", "edit", index), button("Delete", "delete", index));
  node.append(tools, element("p", "stats", statsText(swipe.stats)));
  return node;
}

export function renderLog(log, messages, names, editingIndex) {
  log.replaceChildren(...messages.map((m, i) => messageNode(m, i, names, i === editingIndex)));
  log.scrollTop = log.scrollHeight;
}
