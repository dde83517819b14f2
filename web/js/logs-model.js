// Spend records → what the logs viewer shows. No DOM.

import { recordService } from "./providers.js";
import { extractToolCalls } from "./tool-calls.js";

const time = (r) => r.start_time || r.end_time || "";

/** A sessions-list row from a session record (or, for a live session, its response records). */
export function sessionRow(session, responses = []) {
  if (session) {
    return {
      id: session.session_id,
      live: false,
      time: session.start_time,
      key: session.key_name,
      model: session.model,
      provider: session.provider || null,
      service: recordService(session).label,
      durationMs: session.duration_ms,
      responses: session.responses,
      tokens: (session.usage && session.usage.total_tokens) || 0,
      cost: session.cost_usd,
      status: session.status,
      transport: transportOf(session),
      closedBy: session.close ? closeText(session) : "",
    };
  }
  const first = responses[0] || {};
  let tokens = 0;
  let cost = 0;
  let priced = true;
  for (const r of responses) {
    tokens += (r.usage && r.usage.total_tokens) || 0;
    if (typeof r.cost_usd === "number") cost += r.cost_usd;
    else priced = false;
  }
  return {
    id: first.session_id, live: true, time: time(first), key: first.key_name, model: first.model,
    provider: first.provider || null, service: recordService(first).label,
    durationMs: null, responses: responses.filter((r) => r.record === "response").length, tokens, cost: priced ? cost : null, status: "live",
    transport: transportOf(first), closedBy: "",
  };
}

/**
 * Keeps the sessions the viewer lists: session records as fetched, plus sessions still running
 * (response records whose session record has not been written yet), newest first.
 */
export class SessionList {
  constructor() {
    this.sessions = new Map(); // id → session record
    this.live = new Map(); // id → [response records]
  }

  add(records) {
    for (const r of records) {
      if (!r || !r.session_id) continue;
      if (r.record === "session") {
        this.sessions.set(r.session_id, r);
        this.live.delete(r.session_id);
      } else if (["response", "transcription", "usage"].includes(r.record) && !this.sessions.has(r.session_id)) {
        const list = this.live.get(r.session_id) || [];
        if (!list.some((x) => x.id === r.id)) list.push(r);
        this.live.set(r.session_id, list);
      }
    }
  }

  rows() {
    const rows = [...this.sessions.values()].map((s) => sessionRow(s));
    for (const responses of this.live.values()) rows.push(sessionRow(null, responses));
    return rows.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  }
}

/** Tool definitions across a session's responses: the latest definition of each name wins. */
export function toolDefinitions(responses, session) {
  const byName = new Map();
  const lists = responses.map((r) => (r.proxy_server_request && r.proxy_server_request.tools) || []);
  if (session && Array.isArray(session.tools)) lists.push(session.tools);
  for (const list of lists) {
    for (const t of Array.isArray(list) ? list : []) {
      if (t && typeof t === "object" && t.type === "mcp" && typeof t.server_label === "string") {
        // an MCP server: its tools are listed by the provider (see the calls); show what it is
        byName.set(`mcp:${t.server_label}`, { name: t.server_label, kind: "mcp",
          description: `MCP server ${t.server_url || t.connector_id || ""}`.trim(),
          parameters: { require_approval: t.require_approval ?? "always", allowed_tools: t.allowed_tools ?? null } });
      } else if (t && typeof t === "object" && typeof t.name === "string") byName.set(t.name, t);
    }
  }
  return [...byName.values()];
}

/** Everything the session detail shows, from all of one session's records (any order). */
export function sessionDetail(records) {
  const byTime = (a, b) => (time(a) < time(b) ? -1 : 1);
  const responses = records.filter((r) => r.record === "response").sort(byTime);
  const transcriptions = records.filter((r) => r.record === "transcription").sort(byTime);
  const usage = records.filter((r) => r.record === "usage").sort((a, b) => (a.seconds ?? 0) - (b.seconds ?? 0));
  const session = records.find((r) => r.record === "session") || null;
  const outputs = new Map(); // tool_call_id → output
  // a GPT-Live session's messages are in whichever record came next: responses, usage checkpoints, the session
  // (a Realtime session's "usage" records bill measured audio no response carried: not checkpoints)
  const live = session ? session.api === "live" : usage.some((u) => u.seconds != null);
  // when a record was written (its messages are those before it): a checkpoint's time, a response's end, the session's end
  const writtenAt = (r) => (r.record === "usage" ? r.time : r.end_time || r.start_time) || "\uffff";
  const withMessages = live ? [...responses, ...usage, ...(session ? [session] : [])]
    .sort((a, b) => (writtenAt(a) < writtenAt(b) ? -1 : writtenAt(a) > writtenAt(b) ? 1 : 0)) : responses;
  const conversation = live ? withMessages.flatMap((r) => (Array.isArray(r.messages) ? r.messages : [])) : [];
  for (const r of withMessages) {
    for (const m of Array.isArray(r.messages) ? r.messages : []) {
      if (m && m.role === "tool" && m.tool_call_id && !outputs.has(m.tool_call_id)) outputs.set(m.tool_call_id, m.content);
    }
  }
  const toolCalls = [];
  for (const r of responses) {
    for (const call of extractToolCalls(r.response)) {
      // an MCP call carries its own output; a function call's comes back as a tool message
      const output = call.kind !== "function" ? call.output ?? null : call.id && outputs.has(call.id) ? outputs.get(call.id) : null;
      toolCalls.push({ ...call, responseId: r.response_id, output });
    }
  }
  // a GPT-Live client delegation is a call the app answers with the appends that name it
  for (const d of session && Array.isArray(session.delegations) ? session.delegations : []) {
    if (!d || d.target !== "client") continue;
    toolCalls.push({ id: d.id, kind: "delegation", name: "(client delegation)", arguments: d.offset_ms != null ? `at ${d.offset_ms} ms` : "",
      server: null, error: null, responseId: null, output: d.id && outputs.has(d.id) ? outputs.get(d.id) : null });
  }
  return { session, responses, transcriptions, usage, live, conversation, tools: toolDefinitions(responses, session), toolCalls };
}

/** "1.2 s", "3 min 4 s" */
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function formatCost(v) {
  return typeof v === "number" ? `$${v.toFixed(6)}` : "n/a";
}

/** What the From/To fields read: a date, a time to the minute or second (with a fraction), and an optional zone. */
const TIME_INPUT = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * A From/To value ("2026-01-01T10:00", or a time copied from the list, "2026-01-01 10:00:00") as
 * UTC ISO. Anything else is passed on as typed, for the API to refuse with its own message: a
 * filter the page cannot read is never silently dropped (that would list every session).
 */
export function utcInput(value) {
  const raw = (value || "").trim();
  const v = raw.replace(" ", "T");
  if (!v) return "";
  const m = TIME_INPUT.exec(v);
  if (!m) return raw;
  const [, y, mo, d, h = "00", mi = "00", sec = "00"] = m;
  // a real calendar time: no 31 February, no 25:00 (Date would roll them over)
  const check = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +sec));
  if (check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d || check.getUTCHours() !== +h
      || check.getUTCMinutes() !== +mi || check.getUTCSeconds() !== +sec) return raw;
  const t = new Date(m[7] ? v : `${v}${v.includes("T") ? "" : "T00:00"}Z`);
  return Number.isNaN(t.getTime()) ? raw : t.toISOString();
}

/** The status line under the filters: how many sessions are listed; none is neutral, not a success. */
export function listStatus(count, { following = false } = {}) {
  if (!count) return { text: following ? "No sessions match (following: new ones appear here)." : "No sessions match.", state: "idle" };
  return { text: `${count} session(s)${following ? ", following" : ""}.`, state: "ok" };
}

/** How a record's session reached the model: "webrtc", or "websocket" (records mark only the former). */
export function transportOf(record) {
  return (record && record.transport) || "websocket";
}

export const TRANSPORT_NAMES = { websocket: "WebSocket", webrtc: "WebRTC" };

/**
 * Who closed a session, in words. A WebRTC call is watched through the gateway's sideband: the
 * provider closing that sideband normally (1000) is the call ending — hung up by the caller (the
 * playground's Disconnect, a POST …/hangup) or by the model — not an upstream failure.
 */
export function closeText(session) {
  const close = (session && session.close) || {};
  const code = close.code ?? "";
  const reason = close.reason ? ` ${close.reason}` : "";
  if (transportOf(session) === "webrtc" && close.by === "upstream" && close.code === 1000) {
    const more = close.reason && close.reason !== "call ended" ? `: ${close.reason}` : ""; // the gateway's "call ended" says no more
    return `the call was hung up (1000${more})`;
  }
  const by = { client: "the client", upstream: "upstream", proxy: "the gateway" }[close.by] || close.by || "?";
  return `${by} ${code}${reason}`.trim();
}

/**
 * A recorded turn's text, an utterance a line. A turn is what the SDK's grouper joined (speech
 * less than 2 s apart: a holding line and the answer after it); its sentences are the utterances.
 */
export function utterances(text) {
  return String(text ?? "").split(/(?<=[.!?…])\s+(?=\S)/).map((u) => u.trim()).filter(Boolean);
}
