// GPT-Live events → what the playground shows in Live mode: the conversation (user and assistant
// transcript turns, typed text, delegation and tool-call cards), the billed seconds and their
// cost, delegated token usage, and the event log; and the events the page sends (session.start,
// typed text, a delegation's answer) by delegation mode. No DOM; `node --test` drives it.
//
// Turns: Live transcripts are timed fragments with no turn ids. A fragment continues the current
// entry when the same speaker spoke last and it starts within TURN_GAP_MS of the entry's end
// (the SDK's grouper uses 500 ms between turns); otherwise it starts a new entry.

import { MAX_LOG_ENTRIES } from "./session-state.js";

export const TURN_GAP_MS = 500;
/** How typed text is put to the voice model in client mode, as silent context (thinking). */
export const TYPED_PREFIX = "The user typed: ";

/** One line of help per delegation mode: who answers what the user says or types. */
export const DELEGATION_HELP = {
  client: "This page is the backend: what you say or type comes here as a card, and the answer you type there is spoken.",
  responses: "A backend model answers what you say or type (and calls the Tools); the voice speaks its answer.",
};

/**
 * The session.start of a playground Live session. Tools belong to the Responses backend: a client
 * delegation has none (the app is the backend), so they are sent only with "responses".
 */
export function liveSessionStart({ model, instructions, voice, delegation, backendModel, tools }) {
  const delegated = delegation === "responses"
    ? { type: "responses", responses: { model: backendModel || "gpt-5.6-luna", tools: tools || [] } }
    : { type: "client" };
  return { type: "session.start", session: { model, instructions, delegation: delegated,
    audio: { format: { type: "audio/pcm", rate: 24000 }, output: { voice } } } };
}

/**
 * What typed text sends, by delegation mode. Responses: a user message and response.create — the
 * backend model answers. Client: the app is the backend, so the text is a task for the app (this
 * page): it goes to the voice model as silent context (thinking, never read out) and comes back
 * here as a card; the app's answer is then spoken (answerEvent).
 */
export function typedTextEvents(text, delegation) {
  if (delegation === "responses") {
    return [{ type: "response.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text }] } },
      { type: "response.create" }];
  }
  return [{ type: "session.thinking.append", delegation_id: null, content: `${TYPED_PREFIX}${text}` }];
}

/** The app's answer to a card of the client delegation (a voice turn's, or typed text's): spoken. */
export function answerEvent(card, content) {
  return { type: "session.commentary.append", delegation_id: card.delegationId ?? null, content };
}
const LOG_PAYLOAD_CHARS = 120;
const COLLAPSED = new Set(["session.output_audio.delta", "session.input_audio.append", "session.output_transcript.delta",
  "session.input_transcript.delta", "response.event"]);

export class LiveState {
  constructor({ voicePerHour = null } = {}) {
    this.voicePerHour = voicePerHour; // USD per hour of session, or null when unpriced
    this.entries = [];
    this.log = [];
    this.version = 0;
    this.seconds = 0;
    this.closed = null; // {reason, seconds}
    this.sessionId = null;
    this.lastError = null;
    this.delegatedTokens = 0;
    this.responses = []; // [{id, model, usage}]
    this.calls = new Map(); // call_id → entry
    this._last = null; // the entry the last transcript fragment went to
    this._text = new Map(); // response id → assistant text entry (delegated output)
  }

  get voiceCost() {
    return this.voicePerHour === null ? null : (this.seconds * this.voicePerHour) / 3600;
  }

  _entry(fields) {
    const entry = { id: `e${this.entries.length}`, status: "done", ...fields };
    this.entries.push(entry);
    return entry;
  }

  _logLine(event, direction) {
    const last = this.log[this.log.length - 1];
    const type = event.type === "response.event" && event.event ? `response.event: ${event.event.type}` : event.type;
    if (last && last.type === type && last.direction === direction && COLLAPSED.has(event.type)) {
      last.count += 1;
      return;
    }
    const shown = { ...event };
    for (const k of ["audio", "delta"]) {
      if (typeof shown[k] === "string" && shown[k].length > LOG_PAYLOAD_CHARS) shown[k] = `${shown[k].slice(0, LOG_PAYLOAD_CHARS)}…`;
    }
    this.log.push({ type, direction, count: 1, event: shown });
    if (this.log.length > MAX_LOG_ENTRIES) this.log.shift();
  }

  apply(event, direction) {
    if (!event || typeof event.type !== "string") return;
    this.version += 1;
    this._logLine(event, direction);
    if (direction === "client") return this._client(event);
    switch (event.type) {
      case "session.started":
        this.sessionId = event.session && event.session.id;
        break;
      case "session.input_transcript.delta":
      case "session.output_transcript.delta":
        this._fragment(event.type === "session.input_transcript.delta" ? "user" : "assistant", event);
        break;
      case "session.delegation.created": {
        const d = event.delegation || {};
        if (d.target === "client") this._entry({ kind: "delegation", role: "tool", delegationId: d.id, status: "waiting" });
        break;
      }
      case "response.event":
        this._backend(event.event || {});
        break;
      case "session.usage.updated":
        this._seconds(event.usage);
        break;
      case "session.closed":
        this._seconds(event.usage);
        this.closed = { reason: event.reason, seconds: this.seconds };
        break;
      case "error":
        this.lastError = event.error || { message: "error" };
        break;
      default:
    }
  }

  _client(event) {
    if (event.type === "response.item.create" && event.item && event.item.type === "message") {
      const text = (event.item.content || []).map((p) => (p && p.text) || "").join("");
      if (text) this._entry({ kind: "text", role: "user", text });
      this._last = null;
    } else if (event.type === "session.thinking.append" && !event.delegation_id && typeof event.content === "string"
               && event.content.startsWith(TYPED_PREFIX)) {
      // typed text in client mode: the user's message, and a card for the app (this page) to answer
      const text = event.content.slice(TYPED_PREFIX.length);
      this._entry({ kind: "text", role: "user", text });
      this._entry({ kind: "delegation", role: "tool", delegationId: null, typed: true, name: "(what you typed)",
        arguments: text, status: "waiting" });
      this._last = null;
    } else if (event.type === "session.commentary.append") {
      // an answer: to the delegation it names, or (no id) to the oldest typed message still waiting
      const card = this.entries.find((e) => e.kind === "delegation" && (event.delegation_id
        ? e.delegationId === event.delegation_id : e.typed && e.status === "waiting"));
      if (card) {
        card.output = event.content;
        card.status = "answered";
      }
    } else if (event.type === "response.item.create" && event.item && event.item.type === "function_call_output") {
      const card = this.calls.get(event.item.call_id);
      if (card) {
        card.output = event.item.output;
        card.status = "answered";
      }
    }
  }

  _fragment(role, event) {
    const text = typeof event.delta === "string" ? event.delta : "";
    if (!text) return;
    const start = Number.isFinite(event.start_ms) ? event.start_ms : 0;
    const end = Number.isFinite(event.end_ms) ? event.end_ms : start;
    const last = this._last;
    if (last && last.role === role && start - last.endMs < TURN_GAP_MS && start >= last.startMs) {
      last.text += text;
      last.endMs = Math.max(last.endMs, end);
      return;
    }
    this._last = this._entry({ kind: "voice", role, text: text.replace(/^\s+/, ""), startMs: start, endMs: end });
  }

  _backend(inner) {
    if (inner.type === "response.output_item.done" && inner.item && inner.item.type === "function_call") {
      const item = inner.item;
      const card = this._entry({ kind: "tool_call", role: "tool", callId: item.call_id, name: item.name,
        arguments: item.arguments, status: "waiting" });
      this.calls.set(item.call_id, card);
    } else if (inner.type === "response.completed" || inner.type === "response.incomplete" || inner.type === "response.failed") {
      const r = inner.response || {};
      const usage = r.usage || {};
      this.delegatedTokens += Number.isInteger(usage.total_tokens) ? usage.total_tokens : 0;
      this.responses.push({ id: r.id, model: r.model, status: r.status, usage });
    }
  }

  _seconds(usage) {
    const s = usage && usage.seconds;
    if (typeof s === "number" && s > this.seconds) this.seconds = Math.floor(s); // cumulative: keep the latest
  }
}
