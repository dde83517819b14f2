// GPT-Live events → what the playground shows in Live mode: the conversation (user and assistant
// transcript turns, typed text, delegation and tool-call cards), the billed seconds and their
// cost, delegated token usage, and the event log. No DOM; `node --test` drives it.
//
// Turns: Live transcripts are timed fragments with no turn ids. A fragment continues the current
// entry when the same speaker spoke last and it starts within TURN_GAP_MS of the entry's end
// (the SDK's grouper uses 500 ms between turns); otherwise it starts a new entry.

import { MAX_LOG_ENTRIES } from "./session-state.js";

export const TURN_GAP_MS = 500;
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
    } else if (event.type === "session.commentary.append" && !event.delegation_id && event.content) {
      this._entry({ kind: "text", role: "user", text: event.content }); // typed text, told to the voice model
      this._last = null;
    } else if (event.type === "session.commentary.append" && event.delegation_id) {
      const card = this.entries.find((e) => e.kind === "delegation" && e.delegationId === event.delegation_id);
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
