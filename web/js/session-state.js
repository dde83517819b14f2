// Realtime events → what the playground shows: the transcript, tool-call cards, per-response
// usage and cost, and a collapsed event log. No DOM: the page renders `state` after each event,
// and `node --test` drives it with plain events. GA and beta event names are both understood.

const BETA_TO_GA = {
  "response.text.delta": "response.output_text.delta",
  "response.text.done": "response.output_text.done",
  "response.audio.delta": "response.output_audio.delta",
  "response.audio.done": "response.output_audio.done",
  "response.audio_transcript.delta": "response.output_audio_transcript.delta",
  "response.audio_transcript.done": "response.output_audio_transcript.done",
  "conversation.item.created": "conversation.item.added",
};

/** Event types whose repeats are collapsed into one log line with a count. */
export const MAX_LOG_ENTRIES = 500;
/** Audio payloads kept in the log are cut to this many characters. */
const LOG_PAYLOAD_CHARS = 120;

export function normalizeType(type) {
  return BETA_TO_GA[type] || type;
}

const int = (v) => (Number.isInteger(v) && v > 0 ? v : 0);

/** Rounded as the server rounds each cost (to 1e-10 USD), so sums agree with the spend log. */
const round10 = (v) => Math.round(v * 1e10) / 1e10;

/**
 * The billable token counts of a usage object (cached tokens are part of input), as the server
 * splits them: a response's, or an input transcription's (`{type: "tokens"}`: no
 * output_token_details, its output is the transcript's text tokens).
 */
export function tokenSplit(usage) {
  const inp = (usage && usage.input_token_details) || {};
  const out = usage && usage.output_token_details;
  const textIn = int(inp.text_tokens);
  const audioIn = int(inp.audio_tokens);
  const imageIn = int(inp.image_tokens);
  const cached = int(inp.cached_tokens);
  let cachedText;
  let cachedAudio;
  let cachedImage = 0;
  if (inp.cached_tokens_details && typeof inp.cached_tokens_details === "object") {
    cachedText = int(inp.cached_tokens_details.text_tokens);
    cachedAudio = int(inp.cached_tokens_details.audio_tokens);
    cachedImage = int(inp.cached_tokens_details.image_tokens);
  } else {
    cachedText = Math.min(cached, textIn);
    cachedAudio = Math.min(cached - cachedText, audioIn);
  }
  cachedText = Math.min(cachedText, textIn);
  cachedAudio = Math.min(cachedAudio, audioIn);
  cachedImage = Math.min(cachedImage, imageIn);
  const details = out && typeof out === "object";
  return {
    input_text: textIn - cachedText,
    input_audio: audioIn - cachedAudio,
    input_image: imageIn - cachedImage,
    cached_text: cachedText,
    cached_audio: cachedAudio,
    cached_image: cachedImage,
    output_text: details ? int(out.text_tokens) : int(usage && usage.output_tokens),
    output_audio: details ? int(out.audio_tokens) : 0,
  };
}

/**
 * USD cost of a usage object at `price` (USD per 1M tokens per modality; `audio_per_hour` for a
 * usage reported as a duration, whisper-1's), or null when the price has no rate for it — the
 * server's arithmetic and rounding (spend/pricing.py `price_usage`).
 */
export function costOf(usage, price) {
  if (!price) return null;
  if (usage && usage.type === "duration") {
    if (typeof price.audio_per_hour !== "number") return null;
    const seconds = typeof usage.seconds === "number" && usage.seconds > 0 ? usage.seconds : 0;
    return round10((seconds * price.audio_per_hour) / 3600);
  }
  let total = 0;
  for (const [name, count] of Object.entries(tokenSplit(usage))) total += round10((count * (price[name] || 0)) / 1e6);
  return round10(total);
}

/** The input-transcription model a session names (GA `audio.input.transcription`, beta `input_audio_transcription`). */
export function transcriptionModelOf(session) {
  const s = session && typeof session === "object" ? session : {};
  const ga = s.audio && s.audio.input && s.audio.input.transcription;
  const t = ga !== undefined ? ga : s.input_audio_transcription;
  return t && typeof t === "object" && typeof t.model === "string" ? t.model : null;
}

/** A copy of an event safe to keep in the log: long audio payloads shortened. */
function loggable(event) {
  const copy = { ...event };
  for (const key of ["audio", "delta"]) {
    if (typeof copy[key] === "string" && copy[key].length > LOG_PAYLOAD_CHARS) {
      copy[key] = `${copy[key].slice(0, LOG_PAYLOAD_CHARS)}… (${copy[key].length} chars)`;
    }
  }
  return copy;
}

function partsText(content) {
  const texts = [];
  for (const part of Array.isArray(content) ? content : []) {
    if (!part || typeof part !== "object") continue;
    if (typeof part.text === "string") texts.push(part.text);
    else if (typeof part.transcript === "string") texts.push(part.transcript);
  }
  return texts.join(" ");
}

/** What was heard of an interrupted reply: its text cut where its audio was cut (by duration). */
export function heardText(entry) {
  if (entry.heardMs === undefined || !entry.audioMs) return entry.text;
  const fraction = Math.max(0, Math.min(1, entry.heardMs / entry.audioMs));
  const cut = entry.text.slice(0, Math.round(entry.text.length * fraction));
  return cut.replace(/\s+\S*$/, (m) => (fraction < 1 ? "" : m)); // no half words
}

/**
 * An `error` event's error in words: its message, and what it is about — the parameter it
 * refused ("response.instructions") and its code — e.g. "Gemini Live fixes instructions for the
 * whole session: … (response.instructions; unsupported_parameter)".
 */
export function errorText(error) {
  const err = error && typeof error === "object" ? error : {};
  const message = typeof err.message === "string" && err.message.trim() ? err.message.trim() : "The server reported an error.";
  const about = [err.param, err.code].filter((v) => typeof v === "string" && v && !message.includes(v));
  return about.length ? `${message} (${about.join("; ")})` : message;
}

export class SessionState {
  /**
   * `price`: the session model's; `priceOf(name)`: another model's (its input-transcription
   * model's), or null when the page does not know it.
   */
  constructor({ price = null, priceOf = () => null } = {}) {
    this.price = price;
    this.priceOf = priceOf;
    this.transcriptionModel = null;
    this.transcriptions = []; // {itemId, model, usage, split, cost}: each billed input transcription
    this.billed = []; // responses and input transcriptions, in the order they ended
    this.unpriced = 0; // billed usage the page could not price (the session cost is then incomplete)
    this.entries = []; // transcript, in order
    this.byItem = new Map(); // item id → entry
    this.toolCalls = new Map(); // call id → tool-call entry
    this.responses = []; // {id, status, usage, split, cost}
    this.totalCost = 0;
    this.totalTokens = 0;
    this.responding = false;
    this.activeResponseId = null;
    this.log = [];
    this.lastError = null;
    this.session = null;
    this.version = 0; // bumped on every change, for cheap re-render checks
  }

  /** Apply one event; `direction` is "server" (received) or "client" (sent). */
  apply(event, direction = "server") {
    this._log(event, direction);
    this.version++;
    if (direction !== "server") return;
    const type = normalizeType(event.type);
    const handler = this[`on:${type}`];
    if (handler) handler.call(this, event);
  }

  _log(event, direction) {
    const last = this.log[this.log.length - 1];
    if (last && last.type === event.type && last.direction === direction) {
      last.count++;
      last.event = loggable(event);
      return;
    }
    this.log.push({ type: event.type, direction, count: 1, event: loggable(event), at: Date.now() });
    if (this.log.length > MAX_LOG_ENTRIES) this.log.splice(0, this.log.length - MAX_LOG_ENTRIES);
  }

  _entry(itemId, init) {
    let entry = this.byItem.get(itemId);
    if (!entry) {
      entry = { id: itemId, text: "", status: "in_progress", ...init };
      this.byItem.set(itemId, entry);
      this.entries.push(entry);
    }
    return entry;
  }

  _addItem(item) {
    if (!item || typeof item !== "object" || !item.id) return;
    if (item.type === "function_call_output") {
      const call = this.toolCalls.get(item.call_id);
      if (call) {
        call.output = item.output;
        call.status = "answered";
      }
      return;
    }
    if (item.type === "function_call") {
      this._toolCall(item);
      return;
    }
    if (item.type !== "message") return;
    const content = Array.isArray(item.content) ? item.content : [];
    const voice = content.some((p) => p && p.type === "input_audio");
    const kind = item.role === "user" ? (voice ? "voice" : "text") : item.role;
    const entry = this._entry(item.id, { role: item.role, kind });
    const text = partsText(content);
    if (text && !entry.text) entry.text = text;
    if (item.status && item.status !== "in_progress") entry.status = item.status;
  }

  _toolCall(item) {
    const entry = this._entry(item.id, { role: "assistant", kind: "tool_call" });
    entry.name = item.name || entry.name;
    entry.callId = item.call_id || entry.callId;
    if (typeof item.arguments === "string" && item.arguments.length >= (entry.arguments || "").length) {
      entry.arguments = item.arguments;
    }
    entry.arguments = entry.arguments || "";
    if (item.status && item.status !== "in_progress") entry.status = item.status;
    if (entry.callId) this.toolCalls.set(entry.callId, entry);
    return entry;
  }

  ["on:session.created"](e) {
    this.session = e.session || null;
    this.transcriptionModel = transcriptionModelOf(this.session);
  }

  ["on:session.updated"](e) {
    this.session = e.session || null;
    this.transcriptionModel = transcriptionModelOf(this.session);
  }

  ["on:conversation.item.added"](e) {
    this._addItem(e.item);
  }

  ["on:conversation.item.done"](e) {
    this._addItem(e.item);
  }

  ["on:conversation.item.input_audio_transcription.delta"](e) {
    const entry = this._entry(e.item_id, { role: "user", kind: "voice" });
    entry.text += e.delta || "";
  }

  ["on:conversation.item.input_audio_transcription.completed"](e) {
    const entry = this._entry(e.item_id, { role: "user", kind: "voice" });
    entry.text = e.transcript || "";
    entry.status = "completed";
    // billed apart from any response, at the transcription model's rates (as the spend log does)
    const usage = e.usage && typeof e.usage === "object" ? e.usage : null;
    if (!usage) return;
    const model = this.transcriptionModel;
    const cost = costOf(usage, model ? this.priceOf(model) : null);
    const row = { kind: "transcription", itemId: e.item_id || null, model, status: "transcribed", usage,
      split: usage.type === "duration" ? null : tokenSplit(usage), seconds: usage.type === "duration" ? usage.seconds : null, cost };
    this.transcriptions.push(row);
    this._bill(row);
  }

  _bill(row) {
    this.billed.push(row);
    if (row.cost !== null) this.totalCost = round10(this.totalCost + row.cost);
    else if (row.usage) this.unpriced++;
  }

  ["on:response.created"](e) {
    this.responding = true;
    this.activeResponseId = (e.response && e.response.id) || null;
  }

  ["on:response.output_item.added"](e) {
    const item = e.item || {};
    if (item.type === "function_call") this._toolCall(item);
    else if (item.type === "message") this._entry(item.id, { role: "assistant", kind: "assistant", responseId: e.response_id });
  }

  ["on:response.output_text.delta"](e) {
    this._entry(e.item_id, { role: "assistant", kind: "assistant" }).text += e.delta || "";
  }

  ["on:response.output_text.done"](e) {
    this._entry(e.item_id, { role: "assistant", kind: "assistant" }).text = e.text || "";
  }

  ["on:response.output_audio_transcript.delta"](e) {
    const entry = this._entry(e.item_id, { role: "assistant", kind: "assistant" });
    entry.text += e.delta || "";
    entry.audio = true;
  }

  ["on:response.output_audio_transcript.done"](e) {
    this._entry(e.item_id, { role: "assistant", kind: "assistant" }).text = e.transcript || "";
  }

  ["on:response.output_audio.delta"](e) {
    // how much audio the reply has (base64 PCM16 at 24 kHz: 48 bytes a millisecond)
    const entry = this._entry(e.item_id, { role: "assistant", kind: "assistant" });
    entry.audioMs = (entry.audioMs || 0) + ((e.delta || "").length * 3) / 4 / 48;
  }

  ["on:conversation.item.truncated"](e) {
    // the user talked over the reply: only its first audio_end_ms were heard
    const entry = this.byItem.get(e.item_id);
    if (!entry) return;
    entry.heardMs = Number.isFinite(e.audio_end_ms) ? e.audio_end_ms : 0;
    entry.status = "interrupted";
  }

  ["on:response.function_call_arguments.delta"](e) {
    const entry = this._toolCall({ id: e.item_id, call_id: e.call_id });
    entry.arguments += e.delta || "";
  }

  ["on:response.function_call_arguments.done"](e) {
    this._toolCall({ id: e.item_id, call_id: e.call_id, name: e.name, arguments: e.arguments });
  }

  ["on:response.output_item.done"](e) {
    const item = e.item || {};
    if (item.type === "function_call") this._toolCall(item);
    else if (item.id && this.byItem.has(item.id)) this.byItem.get(item.id).status = item.status || "completed";
  }

  ["on:response.done"](e) {
    const r = e.response || {};
    this.responding = false;
    this.activeResponseId = null;
    for (const item of Array.isArray(r.output) ? r.output : []) {
      if (item && item.type === "function_call") this._toolCall({ ...item, status: item.status || "completed" });
      else if (item && item.id && this.byItem.has(item.id) && item.status) this.byItem.get(item.id).status = item.status;
    }
    const usage = r.usage || null;
    const cost = usage ? costOf(usage, this.price) : null;
    const row = { kind: "response", id: r.id || null, status: r.status || "completed", usage, split: usage ? tokenSplit(usage) : null, cost };
    this.responses.push(row);
    this._bill(row);
    if (usage && Number.isInteger(usage.total_tokens)) this.totalTokens += usage.total_tokens;
  }

  ["on:error"](e) {
    const err = e.error || {};
    this.lastError = { code: err.code || null, message: err.message || "error" };
    // in the conversation, where it happened: a refusal (e.g. what Gemini Live cannot do) is read
    // there; the same error again (a refused event sent in a loop) adds to its count instead
    const text = errorText(err);
    const last = this.entries[this.entries.length - 1];
    if (last && last.kind === "error" && last.text === text) {
      last.count++;
      return;
    }
    const entry = { id: `error-${this.entries.length}`, role: "system", kind: "error", status: "completed",
      text, code: err.code || null, count: 1 };
    this.entries.push(entry);
  }

  /** Tool calls still waiting for a result, oldest first. */
  pendingToolCalls() {
    return [...this.toolCalls.values()].filter((c) => c.status === "completed" && c.output === undefined);
  }
}
