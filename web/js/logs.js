// The logs viewer page: the thin DOM layer over logs-model.js and tool-calls.js.

import { authHeaders, el, loadKey, saveKey } from "./common.js";
import { SessionList, TRANSPORT_NAMES, closeText, formatCost, formatDuration, listStatus, sessionDetail, transportOf,
  utcInput, utterances } from "./logs-model.js";
import { prettyArguments } from "./tool-calls.js";
import { barChart, lineChart, seriesOf, totalsOf } from "./charts.js";
import { PROVIDER_NAMES, providerName, recordService } from "./providers.js";

const $ = (id) => document.getElementById(id);
/** Sessions fetched per page. */
const PAGE_SIZE = 50;
/** Follow mode asks for new records this often. */
const FOLLOW_INTERVAL_MS = 2000;
/** Text longer than this folds behind a "more" toggle. */
const FOLD_CHARS = 280;
/** A scan the server refused for now (one at a time per key: 429, the server's all busy: 503) is
 *  asked again after its Retry-After, this many times at most: the list, the follow and the
 *  dashboard may overlap. */
const SCAN_RETRIES = 3;

let list = new SessionList();
let cursor = null;
let endOffset = null;
let fileId = null; // which file endOffset is in: a rotation or truncation restarts the follow
let followTimer = null;
let selected = null;
let shown = null; // the session the detail shows (a new one is shown from its top)

function setStatus(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function filterParams() {
  const p = new URLSearchParams();
  const add = (name, value) => value && p.set(name, value);
  // what a person types: case-insensitive prefixes
  add("key_prefix", $("f-key").value.trim());
  add("model_prefix", $("f-model").value.trim());
  add("provider", $("f-provider").value);
  add("status", $("f-status").value);
  // times are UTC both ways: the list shows UTC, and From/To are read as UTC (labelled so); a
  // time the page cannot read goes as typed, and the API's refusal is shown (never all sessions)
  for (const [name, id] of [["since", "f-since"], ["until", "f-until"]]) {
    const v = utcInput($(id).value);
    $(id).setAttribute("aria-invalid", String(Boolean(v) && !v.endsWith("Z")));
    if (v) add(name, v);
  }
  return p;
}

/** GET a spend-log scan, asked again while the server says "busy, retry after". */
async function fetchScan(path) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, { headers: authHeaders($("key").value.trim()) });
    const retryAfter = Number(res.headers.get("Retry-After"));
    if (![429, 503].includes(res.status) || !retryAfter || attempt >= SCAN_RETRIES) return res;
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
  }
}

async function api(params) {
  const res = await fetchScan(`/spend/logs?${params}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((body.error && body.error.message) || `HTTP ${res.status}`);
  return body;
}

async function loadSessions(reset = true) {
  if (reset) {
    list = new SessionList();
    cursor = null;
  }
  const params = filterParams();
  params.set("record", "session");
  params.set("limit", String(PAGE_SIZE));
  if (!reset && cursor !== null) params.set("cursor", String(cursor));
  try {
    const page = await api(params);
    list.add(page.data);
    cursor = page.next_cursor;
    if (reset) {
      endOffset = page.end_offset;
      fileId = page.file_id;
    }
    $("more").hidden = cursor === null;
    renderSessions();
    loadDashboard();
    showCount();
  } catch (e) {
    // nothing from a previous key (or filter) stays on screen under the error
    list = new SessionList();
    cursor = null;
    endOffset = null;
    $("more").hidden = true;
    renderSessions();
    $("sessions-empty").hidden = true; // the error says why the list is empty
    clearDetail();
    setStatus(`Cannot read the spend log: ${e.message}`, "error");
  }
}

/** The dashboard: the same filters (and key rules) as the list, aggregated by the server. */
async function loadDashboard() {
  if (!$("dashboard").open) return;
  const params = filterParams();
  params.delete("status");
  params.set("bucket", $("dash-bucket").value);
  params.set("split", "provider"); // each row names its provider too: the charts and totals by provider
  const res = await fetchScan(`/spend/summary?${params}`);
  const body = await res.json().catch(() => ({}));
  const boxes = ["chart-spend", "chart-sessions", "chart-latency"];
  if (!res.ok) {
    for (const id of boxes) $(id).replaceChildren();
    $("dash-totals").tBodies[0].replaceChildren();
    return setStatus(`Cannot read the summary: ${(body.error && body.error.message) || res.status}`, "error");
  }
  const by = $("dash-by").value;
  const nameOf = by === "provider" ? providerName : String;
  const charts = [
    barChart(seriesOf(body, "cost_usd", by, nameOf), { title: "Spend (USD)",
      format: (v) => (v === 0 ? "$0" : v >= 0.01 ? `$${v.toFixed(2)}` : `$${v.toPrecision(2)}`) }),
    barChart(seriesOf(body, "sessions", by, nameOf), { title: "Sessions started", format: (v) => String(Math.round(v)) }),
    lineChart({ buckets: body.buckets, hourly: body.bucket !== "day", series: [
      { name: "p50", values: body.latency.map((l) => l.p50_ms) }, { name: "p95", values: body.latency.map((l) => l.p95_ms) }] },
    { title: "Response latency (ms)", format: (v) => `${Math.round(v)} ms` }),
  ];
  boxes.forEach((id, i) => {
    $(id).innerHTML = charts[i]; // markup built by charts.js, every text in it escaped
  });
  $("dash-totals-title").textContent = `Totals by ${{ key_name: "key", model: "model", provider: "provider" }[by]}`;
  $("dash-totals").tBodies[0].replaceChildren(...totalsOf(body, by, nameOf).map((t) =>
    el("tr", { dataset: { name: t.name } }, el("td", { className: "name" }, t.name), el("td", {}, String(t.sessions)),
      el("td", {}, String(t.responses)),
      el("td", { className: "cost" }, t.unpriced ? `${formatCost(t.cost_usd)} + ${t.unpriced} unpriced` : formatCost(t.cost_usd)))));
}

/** The status line: how many sessions are listed (kept current as Follow adds them). */
function showCount() {
  const { text, state } = listStatus(list.rows().length, { following: Boolean(followTimer) });
  setStatus(text, state);
}

function clearDetail() {
  selected = null;
  shown = null;
  $("detail").hidden = true;
  $("detail-empty").hidden = false;
}

async function poll() {
  if (endOffset === null) return;
  const params = filterParams();
  params.delete("status"); // live sessions have no status yet; filtered when shown
  params.set("after", String(endOffset));
  if (fileId) params.set("file_id", fileId); // a rotated or truncated log restarts the follow
  params.set("limit", "1000");
  try {
    const page = await api(params);
    endOffset = page.end_offset;
    fileId = page.file_id;
    const wanted = $("f-status").value;
    list.add(page.data.filter((r) => r.record === "response" || !wanted || r.status === wanted));
    if (page.data.length) {
      renderSessions();
      showCount();
      if (selected && page.data.some((r) => r.session_id === selected)) showSession(selected);
    }
  } catch (e) {
    setStatus(`Follow stopped: ${e.message}`, "error");
  }
}

function setFollow(on) {
  clearInterval(followTimer);
  followTimer = on ? setInterval(poll, FOLLOW_INTERVAL_MS) : null;
  if (endOffset !== null) showCount();
}

function renderSessions() {
  const rows = list.rows().map((r) => {
    const tr = el("tr", { dataset: { session: r.id, status: r.status } },
      el("td", {}, (r.time || "").replace("T", " ").slice(0, 19)),
      el("td", {}, r.key || ""),
      el("td", { className: "model" }, r.model || "", r.provider ? " " : "",
        r.provider ? el("span", { className: "badge provider", title: `provider: ${r.provider}`, dataset: { provider: r.provider } },
          r.service) : "",
        r.transport === "webrtc" ? el("span", { className: "badge transport", title: "a WebRTC call: media browser ↔ model, watched by the gateway" },
          TRANSPORT_NAMES.webrtc) : ""),
      el("td", {}, formatDuration(r.durationMs)),
      el("td", {}, String(r.responses ?? 0)), el("td", {}, String(r.tokens)), el("td", {}, formatCost(r.cost)),
      el("td", { className: "status" }, r.status || ""));
    if (r.id === selected) tr.classList.add("selected");
    tr.addEventListener("click", () => showSession(r.id));
    return tr;
  });
  $("sessions").tBodies[0].replaceChildren(...rows);
  $("sessions-empty").hidden = rows.length > 0 || endOffset === null;
}

/** Text, folded behind its first FOLD_CHARS when longer; `render` turns it into what is shown. */
function fold(text, className = "", render = (s) => s) {
  const s = String(text ?? "");
  if (s.length <= FOLD_CHARS) return el("span", { className }, render(s));
  return el("details", { className: `fold ${className}` }, el("summary", {}, `${s.slice(0, FOLD_CHARS)}…`), el("div", {}, render(s)));
}

/** A spoken turn, an utterance a line. */
function spokenLines(text) {
  return el("span", { className: "utterances" }, ...utterances(text).map((u) => el("span", { className: "utterance" }, u)));
}

function messageNode(m) {
  const kind = m.role === "user" ? m.source || "text" : m.role === "assistant" && m.source === "transcript" ? "said"
    : m.source && m.role !== "assistant" && m.role !== "tool" ? m.source : m.role === "tool" && m.source ? `answer (${m.source})` : m.role;
  const label = { text: "typed", transcript: "spoken", system: "instructions", tool: "tool output", assistant: "assistant" }[kind] || kind;
  return el("li", { className: "message", dataset: { role: m.role, source: m.source || "" } },
    el("span", { className: "badge" }, label), m.tool_call_id ? el("code", {}, `${m.tool_call_id} `) : "",
    fold(m.content, "", m.source === "transcript" ? spokenLines : undefined));
}

function responsesUsageTable(r) {
  // a GPT-Live delegated response: the Responses API's usage (input, cached, output tokens)
  const u = r.usage || {};
  const cached = (u.input_tokens_details && u.input_tokens_details.cached_tokens) || 0;
  const b = r.cost_breakdown || {};
  const cell = (n, c) => el("td", {}, `${n ?? 0}`, c === undefined ? "" : el("small", {}, ` ${formatCost(c)}`));
  return el("table", { className: "usage" },
    el("thead", {}, el("tr", {}, ...[`${r.response_model || "model"} in`, "cached", "out", "total"].map((h) => el("th", {}, h)))),
    el("tbody", {}, el("tr", {}, cell((u.input_tokens ?? 0) - cached, b.input_text), cell(cached, b.cached_text),
      cell(u.output_tokens, b.output_text), el("td", { className: "cost" }, `${u.total_tokens ?? 0} · ${formatCost(r.cost_usd)}`))));
}

function usageTable(r) {
  if (r.call_type === "live") return responsesUsageTable(r);
  const u = r.usage || {};
  const i = u.input_token_details || {};
  const o = u.output_token_details || {};
  const cd = i.cached_tokens_details || {};
  const b = r.cost_breakdown || {};
  const cell = (n, c) => el("td", {}, `${n ?? 0}`, c === undefined ? "" : el("small", {}, ` ${formatCost(c)}`));
  return el("table", { className: "usage" },
    el("thead", {}, el("tr", {}, ...["text in", "audio in", "cached text", "cached audio", "text out", "audio out", "total"].map((h) => el("th", {}, h)))),
    el("tbody", {}, el("tr", {},
      cell((i.text_tokens ?? 0) - (cd.text_tokens ?? 0), b.input_text), cell((i.audio_tokens ?? 0) - (cd.audio_tokens ?? 0), b.input_audio),
      cell(cd.text_tokens ?? i.cached_tokens, b.cached_text), cell(cd.audio_tokens ?? 0, b.cached_audio),
      cell(o.text_tokens, b.output_text), cell(o.audio_tokens, b.output_audio),
      el("td", { className: "cost" }, `${u.total_tokens ?? 0} · ${formatCost(r.cost_usd)}`))));
}

function responseNode(r, index) {
  const resp = r.response || {};
  const parts = [
    el("div", { className: "response-head" }, el("strong", {}, `#${index + 1}`), " ",
      el("span", { className: "status", dataset: { status: r.status } }, r.status), " ",
      el("code", {}, r.response_id || ""), " ", el("small", {}, `${formatDuration(r.duration_ms)} · ${r.start_time || ""}`)),
    usageTable(r),
  ];
  if (Array.isArray(r.messages) && r.messages.length) parts.push(el("ul", { className: "messages" }, ...r.messages.map(messageNode)));
  else if (r.messages === null) parts.push(el("p", { className: "muted" }, "Prompts not stored for this key."));
  const out = resp.output_text || resp.output_transcript;
  if (out) parts.push(el("div", { className: "output" }, el("span", { className: "badge" }, resp.output_transcript ? "said" : "wrote"), fold(out)));
  if (r.error) parts.push(el("p", { className: "error" }, `${r.error.code || r.error.type}: ${r.error.message}`));
  return el("li", { className: "response", dataset: { status: r.status } }, ...parts);
}

async function showSession(id) {
  selected = id;
  renderSessions();
  let records;
  try {
    records = (await api(new URLSearchParams({ session_id: id, limit: "1000" }))).data;
  } catch (e) {
    return setStatus(`Cannot load session: ${e.message}`, "error");
  }
  if (selected !== id) return; // another session was picked meanwhile
  const d = sessionDetail(records);
  $("detail-empty").hidden = true;
  $("detail").hidden = false;
  $("d-id").textContent = id;
  const s = d.session;
  const facts = s
    ? [["key", s.key_name], ["model", s.model], ["provider", `${recordService(s).label} (${s.provider})`], ["started", s.start_time], ["duration", formatDuration(s.duration_ms)],
      ["responses", s.responses], ["tokens", (s.usage && s.usage.total_tokens) || 0], ["cost", formatCost(s.cost_usd)],
      ["status", s.status], ["transport", TRANSPORT_NAMES[transportOf(s)] || transportOf(s)], ["closed by", closeText(s)],
      ["client", `${(s.client && s.client.ip) || ""} ${(s.client && s.client.user_agent) || ""}`]]
    : [["status", "live — no session record yet"]];
  if (s && s.transcriptions) facts.push(["transcriptions", s.transcriptions]);
  if (s && s.api === "live") {
    facts.push(["seconds", `${s.seconds ?? 0} (${s.seconds_source || "not reported"})`],
      ["voice cost", formatCost(s.voice_cost_usd)], ["delegated cost", formatCost(s.delegated_cost_usd)]);
    if (s.closed_reason) facts.push(["session closed", s.closed_reason]);
  } else if (!s && d.usage.length) {
    const last = d.usage[d.usage.length - 1];
    facts.push(["seconds so far", last.seconds], ["voice cost so far", formatCost(last.voice_cost_usd)]);
  }
  if (s && s.error) facts.push(["error", `${s.error.code || s.error.type}: ${s.error.message}`]);
  $("d-summary").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v ?? ""))]));
  $("d-responses-section").hidden = !d.responses.length; // a client-delegated Live session has none
  $("d-responses").replaceChildren(...d.responses.map(responseNode));
  $("d-tool-defs").replaceChildren(...(d.tools.length ? d.tools.map((t) =>
    el("li", { className: "tool-def", dataset: { kind: t.kind || "function" } },
      t.kind === "mcp" ? el("span", { className: "badge" }, "MCP") : "", el("code", { className: "tool-name" }, t.name), " ",
      el("span", {}, t.description || ""), el("pre", { className: "tool-schema" }, JSON.stringify(t.parameters ?? {}, null, 2))))
    : [el("li", { className: "muted" }, "No tools defined.")]));
  $("d-conversation-section").hidden = !d.live;
  $("d-conversation").replaceChildren(...(d.conversation.length ? d.conversation.map(messageNode)
    : [el("li", { className: "muted" }, "Nothing recorded (or prompts not stored for this key).")]));
  $("d-transcriptions-section").hidden = !d.transcriptions.length;
  $("d-transcriptions").replaceChildren(...d.transcriptions.map(transcriptionNode));
  $("d-tool-calls").replaceChildren(...(d.toolCalls.length ? d.toolCalls.map(toolCallNode)
    : [el("li", { className: "muted" }, "No tool calls.")]));
  if (shown !== id) {
    // another session: shown from its top (its header), not where the previous one was scrolled to;
    // the same one refreshed by Follow stays where the reader is
    shown = id;
    $("detail-panel").scrollTop = 0;
    const head = $("d-id").parentElement;
    const top = head.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight - head.offsetHeight) head.scrollIntoView({ block: "start" });
  }
}

const CALL_KINDS = { function: "function", mcp_call: "MCP call", mcp_approval_request: "approval request",
  mcp_approval_response: "approval", mcp_list_tools: "MCP tools", delegation: "delegation" };

function toolCallNode(c) {
  const noResult = c.kind === "mcp_approval_request" ? "awaiting approval" : "no result recorded";
  return el("li", { className: "tool-call", dataset: { kind: c.kind } },
    el("span", { className: "badge tool-kind" }, CALL_KINDS[c.kind] || c.kind), " ",
    c.server ? el("span", { className: "tool-server" }, c.server) : "", c.server ? " · " : "",
    el("code", { className: "tool-name" }, c.name || "?"), " ",
    el("small", { className: "tool-call-id" }, c.id || ""),
    c.arguments ? el("pre", { className: "tool-args" }, prettyArguments(c.arguments)) : "",
    c.error ? el("div", { className: "tool-error error" }, el("span", { className: "badge" }, "error"), fold(c.error))
      : c.output !== null && c.output !== undefined
        ? el("div", { className: "tool-output" }, el("span", { className: "badge" }, "result"), fold(c.output))
        : el("div", { className: "muted" }, noResult));
}

function transcriptionNode(t) {
  const seconds = t.usage && t.usage.type === "duration" ? `${t.usage.seconds} s of audio` : `${(t.usage && t.usage.total_tokens) || 0} tokens`;
  return el("li", { className: "transcription" },
    el("code", {}, t.transcription_model || "?"), " ", el("small", {}, `${seconds} · ${formatCost(t.cost_usd)} · ${t.start_time || ""}`),
    t.transcript ? el("div", { className: "transcript" }, fold(t.transcript))
      : el("div", { className: "muted" }, t.transcript === null ? "Transcript not stored (or silence)." : ""));
}

function init() {
  const key = loadKey();
  if (key) $("key").value = key;
  $("f-provider").append(...Object.entries(PROVIDER_NAMES).map(([value, name]) => el("option", { value }, name)));
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    saveKey($("key").value.trim());
    loadSessions(true);
  });
  $("more").addEventListener("click", () => loadSessions(false));
  $("dashboard").addEventListener("toggle", loadDashboard);
  $("dash-bucket").addEventListener("change", loadDashboard);
  $("dash-by").addEventListener("change", loadDashboard);
  $("follow").addEventListener("change", () => setFollow($("follow").checked));
  $("key").addEventListener("change", () => {
    saveKey($("key").value.trim());
    loadSessions(true);
  });
  // a `#key=…` link pasted into this open tab: take the key at once, as on a fresh load
  window.addEventListener("hashchange", () => {
    const pasted = loadKey();
    if (pasted && pasted !== $("key").value) {
      $("key").value = pasted;
      loadSessions(true);
    }
  });
  if (key) loadSessions(true);
}

init();
