// rolecall's own API, called with the key the person typed. Errors become sentences that say what to do.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// A server without keys (loopback) needs none: the header is sent only when a key was typed.
function headers(key, extra = {}) {
  return { ...(key ? { "x-api-key": key } : {}), "anthropic-version": "2023-06-01", ...extra };
}

// An error body (Anthropic envelope) or a network failure, in words a person can act on.
export async function describeFailure(response) {
  let message = "";
  try {
    const body = await response.json();
    message = (body.error && body.error.message) || "";
  } catch {
    message = "";
  }
  return failureText(response.status, message, response.headers.get("retry-after"));
}

export function failureText(status, message, retryAfter) {
  if (status === 401) {
    return `The API key was refused (${message || "unauthorized"}). Check the key in the "API key" field.`;
  }
  if (status === 529 || status === 503) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : " Try again in a moment.";
    return `The server is busy (overloaded): ${message}.${wait}`;
  }
  if (status === 429) {
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : "";
    return `Too many requests for this key: ${message}.${wait}`;
  }
  if (status === 413) return `The conversation is too large for the server: ${message}`;
  if (status >= 400 && status < 500) return `The request was refused: ${message}`;
  return `The server failed (${status}): ${message || "no details"}. Try again; if it persists, check the server log.`;
}

async function call(path, key, init = {}) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: headers(key, init.headers || {}) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("Could not reach the rolecall server. Is it running?", 0);
  }
  if (!response.ok) throw new ApiError(await describeFailure(response), response.status);
  return response;
}

export async function listModels(key) {
  const response = await call("/v1/models?limit=100", key);
  return (await response.json()).data.map((model) => model.id);
}

export async function importCard(key, file, userName) {
  const query = userName ? `?user=${encodeURIComponent(userName)}` : "";
  const response = await call(`/v1/characters/import${query}`, key, {
    method: "POST",
    body: file,
    headers: { "content-type": file.type || "application/octet-stream" },
  });
  return response.json();
}

export async function renderPrompt(key, body) {
  const response = await call("/v1/render?door=anthropic", key, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  return response.json();
}

// POST /v1/messages with stream: true; `onEvent` gets every SSE event's parsed data, in order.
export async function streamMessage(key, body, signal, onEvent) {
  const response = await call("/v1/messages", key, {
    method: "POST",
    body: JSON.stringify({ ...body, stream: true }),
    headers: { "content-type": "application/json" },
    signal,
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const frame = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = frame
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue;
      const event = JSON.parse(data);
      if (event.type === "error") {
        const status = event.error && event.error.type === "overloaded_error" ? 529 : 500;
        throw new ApiError(failureText(status, event.error && event.error.message, null), status);
      }
      onEvent(event);
    }
  }
}
