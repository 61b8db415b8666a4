// The lorebook rule, the same one `rolecall chat` applies (rolecall/cli/lorebook.py; docs/role-play.md).
// Scan the newest `scan_depth` messages (default 2), the new one included; an entry fires when it is
// constant, or one of its keys occurs (substring; case-insensitive unless case_sensitive) and, for a
// selective entry with secondary keys, one of those occurs too. Fired contents, in insertion order, go
// before the new user message as `[Lore: ...]` lines; post-history instructions go after it.

export const DEFAULT_SCAN_DEPTH = 2;

export function firedEntries(book, recent) {
  if (!book || !Array.isArray(book.entries)) return [];
  const depth = book.scan_depth || DEFAULT_SCAN_DEPTH;
  const text = recent.slice(-depth).join("\n");
  const folded = text.toLowerCase();
  const occurs = (entry, keys) =>
    (keys || []).some((k) => k && (entry.case_sensitive ? text.includes(k) : folded.includes(k.toLowerCase())));
  const fired = book.entries.filter((entry) => {
    if (entry.constant) return true;
    if (!occurs(entry, entry.keys)) return false;
    const secondary = entry.secondary_keys || [];
    return !(entry.selective && secondary.length) || occurs(entry, secondary);
  });
  fired.sort((a, b) => (a.insertion_order || 0) - (b.insertion_order || 0));
  return fired.map((entry) => entry.content);
}

export function userMessageWithNotes(text, lore, instructions) {
  const lines = lore.map((content) => `[Lore: ${content}]`);
  lines.push(text);
  if (instructions) lines.push(`[Instructions: ${instructions}]`);
  return lines.join("\n");
}
