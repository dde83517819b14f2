import assert from "node:assert/strict";
import { test } from "node:test";

import { SessionList, closeText, formatDuration, listStatus, sessionDetail, transportOf, utterances } from "../js/logs-model.js";

const tools = [{ type: "function", name: "get_weather", description: "d", parameters: { type: "object" } }];
const r1 = { record: "response", id: "rec1", session_id: "s1", response_id: "r1", start_time: "2026-01-01T00:00:01Z",
  usage: { total_tokens: 10 }, cost_usd: 0.001, proxy_server_request: { tools },
  response: { tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] } };
const r2 = { record: "response", id: "rec2", session_id: "s1", response_id: "r2", start_time: "2026-01-01T00:00:02Z",
  usage: { total_tokens: 5 }, cost_usd: 0.002, messages: [{ role: "tool", tool_call_id: "c1", content: '{"t":18}' }],
  response: { tool_calls: [] } };
const s1 = { record: "session", session_id: "s1", start_time: "2026-01-01T00:00:00Z", responses: 2, usage: { total_tokens: 15 },
  cost_usd: 0.003, status: "success", close: { by: "client", code: 1000 }, tools, duration_ms: 3000, key_name: "k", model: "m" };

test("session detail joins tool calls with the outputs that answered them", () => {
  const d = sessionDetail([s1, r2, r1]);
  assert.deepEqual(d.responses.map((r) => r.response_id), ["r1", "r2"]);
  assert.deepEqual(d.tools.map((t) => t.name), ["get_weather"]);
  assert.deepEqual(d.toolCalls, [{ id: "c1", kind: "function", name: "get_weather", arguments: '{"city":"Paris"}', responseId: "r1", output: '{"t":18}' }]);
});

test("session detail lists transcriptions, MCP servers as tools, and an MCP call's own output", () => {
  const mcpTool = { type: "mcp", server_label: "docs", server_url: "https://mcp.example/sse", require_approval: "never" };
  const r = { ...r1, proxy_server_request: { tools: [mcpTool] }, response: { tool_calls: [
    { id: "m1", type: "mcp_call", mcp: { server_label: "docs", name: "echo", arguments: "{}", output: "hi" } }] } };
  const t = { record: "transcription", id: "rec3", session_id: "s1", start_time: "2026-01-01T00:00:00.5Z",
    transcription_model: "whisper-1", transcript: "Hello", usage: { type: "duration", seconds: 1 }, cost_usd: 0.0001 };
  const d = sessionDetail([t, r]);
  assert.deepEqual(d.transcriptions.map((x) => x.transcript), ["Hello"]);
  assert.deepEqual(d.tools.map((x) => [x.kind, x.name]), [["mcp", "docs"]]);
  assert.deepEqual(d.toolCalls.map((c) => [c.kind, c.server, c.name, c.output]), [["mcp_call", "docs", "echo", "hi"]]);
  const list = new SessionList();
  list.add([t, r]);
  assert.deepEqual(list.rows().map((x) => [x.id, x.responses]), [["s1", 1]]);
});

test("live sessions show until their session record arrives, newest first", () => {
  const list = new SessionList();
  list.add([r1, { ...r1, id: "rec9", session_id: "s2", start_time: "2026-01-01T00:05:00Z" }]);
  assert.deepEqual(list.rows().map((r) => [r.id, r.status, r.responses]), [["s2", "live", 1], ["s1", "live", 1]]);
  list.add([s1]);
  assert.deepEqual(list.rows().map((r) => [r.id, r.status]), [["s2", "live"], ["s1", "success"]]);
  assert.equal(list.rows()[1].cost, 0.003);
});

test("durations read well", () => {
  assert.equal(formatDuration(250), "250 ms");
  assert.equal(formatDuration(1500), "1.5 s");
  assert.equal(formatDuration(125000), "2 min 5 s");
  assert.equal(formatDuration(null), "—");
});

test("a GPT-Live session's detail: its conversation across records, seconds and client delegations", () => {
  const base = { session_id: "l1", call_type: "live" };
  const u1 = { ...base, record: "usage", id: "u1", time: "2026-01-01T00:00:02Z", seconds: 2, cost_usd: 0.0016,
    messages: [{ role: "user", content: "Hello", source: "transcript" }] };
  const resp = { ...base, record: "response", id: "r1", start_time: "2026-01-01T00:00:03Z", response_id: "resp_1",
    usage: { input_tokens: 10, output_tokens: 2 }, cost_usd: 0.00001, messages: [{ role: "user", content: "typed", source: "text" }],
    response: { tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{}" } }] } };
  const u2 = { ...base, record: "usage", id: "u2", time: "2026-01-01T00:00:05Z", seconds: 5, cost_usd: 0.0025,
    messages: [{ role: "tool", tool_call_id: "call_1", content: "sunny" }, { role: "tool", tool_call_id: "d1", content: "It is sunny.", source: "commentary" }] };
  const s = { ...base, record: "session", api: "live", start_time: "2026-01-01T00:00:00Z", end_time: "2026-01-01T00:00:06Z",
    seconds: 5, delegations: [{ id: "d1", target: "client", offset_ms: 1200 }],
    messages: [{ role: "assistant", content: "It is sunny.", source: "transcript" }] };
  const d = sessionDetail([s, u2, resp, u1]);
  assert.equal(d.live, true);
  assert.deepEqual(d.usage.map((x) => x.seconds), [2, 5]);
  assert.deepEqual(d.conversation.map((m) => m.content), ["Hello", "typed", "sunny", "It is sunny.", "It is sunny."]);
  assert.deepEqual(d.toolCalls.map((c) => [c.kind, c.name, c.output]),
    [["function", "get_weather", "sunny"], ["delegation", "(client delegation)", "It is sunny."]]);
  const list = new SessionList();
  list.add([u1, resp]);
  assert.deepEqual(list.rows().map((r) => [r.id, r.responses, r.status]), [["l1", 1, "live"]]);
  assert.equal(list.rows()[0].cost, 0.0016 + 0.00001);
});

test("From/To are read as UTC, in the list's own format or the ISO one", async () => {
  const { utcInput } = await import("../js/logs-model.js");
  assert.equal(utcInput("2026-01-31 09:00:05"), "2026-01-31T09:00:05.000Z");
  assert.equal(utcInput("2026-01-31T09:00"), "2026-01-31T09:00:00.000Z");
  assert.equal(utcInput("2026-01-31T09:00:00+02:00"), "2026-01-31T07:00:00.000Z");
  assert.equal(utcInput("2026-01-31"), "2026-01-31T00:00:00.000Z");
  assert.equal(utcInput(""), "");
  // what the page cannot read goes as typed: the API refuses it with its own message, and the
  // page shows that, never every session as if there were no filter
  for (const typed of ["yesterday", "2026-13-45", "2026-02-30", "2026-01-31 25:00", "1"]) assert.equal(utcInput(typed), typed);
});

test("the list's status: a count (kept current while following); none matching is said, and neutral", () => {
  assert.deepEqual(listStatus(0), { text: "No sessions match.", state: "idle" });
  assert.equal(listStatus(0, { following: true }).state, "idle");
  assert.deepEqual(listStatus(3), { text: "3 session(s).", state: "ok" });
  assert.deepEqual(listStatus(4, { following: true }), { text: "4 session(s), following.", state: "ok" });
});

test("a WebRTC call is labelled, and its normal end reads as a hang-up, not as closed by upstream", () => {
  // what the gateway records for a call the user hung up (tests/test_webrtc.py): its sideband closed by the provider
  const call = { ...s1, transport: "webrtc", close: { by: "upstream", code: 1000, reason: "" } };
  assert.equal(transportOf(call), "webrtc");
  assert.equal(transportOf(s1), "websocket");
  assert.equal(closeText(call), "the call was hung up (1000)");
  assert.equal(closeText({ ...call, close: { by: "upstream", code: 1000, reason: "call ended" } }), "the call was hung up (1000)");
  assert.equal(closeText({ ...call, close: { by: "proxy", code: 4429, reason: "budget exceeded" } }), "the gateway 4429 budget exceeded");
  assert.equal(closeText(s1), "the client 1000");
  assert.equal(closeText({ ...s1, close: { by: "upstream", code: 1011, reason: "" } }), "upstream 1011");
  const list = new SessionList();
  list.add([call, { ...r1, session_id: "s3", id: "rec8", transport: "webrtc" }]);
  assert.deepEqual(list.rows().map((r) => [r.id, r.transport]).sort(), [["s1", "webrtc"], ["s3", "webrtc"]]);
});

test("a spoken turn shows an utterance a line", () => {
  assert.deepEqual(utterances("One moment. It is sunny in Paris."), ["One moment.", "It is sunny in Paris."]);
  assert.deepEqual(utterances("It is 18.5 degrees! Really?"), ["It is 18.5 degrees!", "Really?"]);
  assert.deepEqual(utterances("(spoken, 1.2 seconds)"), ["(spoken, 1.2 seconds)"]);
  assert.deepEqual(utterances(""), []);
});

test("a session row names its provider, finished or still live", () => {
  const gemini = "ws://127.0.0.1:1/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";
  const list = new SessionList();
  list.add([{ ...s1, provider: "local", api_base: gemini },
    { ...r1, session_id: "s2", id: "rec9", provider: "openai", api_base: "wss://api.openai.com/v1/realtime" }]);
  const rows = Object.fromEntries(list.rows().map((r) => [r.id, [r.provider, r.service, r.live]]));
  assert.deepEqual(rows, { s1: ["local", "Gemini Live (offline)", false], s2: ["openai", "OpenAI", true] });
});

test("a Realtime session's metered usage record does not make it a GPT-Live session", () => {
  const session = { record: "session", session_id: "s", api: undefined, end_time: "2026-01-01T00:00:09Z" };
  const response = { record: "response", session_id: "s", response_id: "r1", end_time: "2026-01-01T00:00:05Z",
    messages: [{ role: "user", content: "hi" }] };
  const metered = { record: "usage", session_id: "s", time: "2026-01-01T00:00:08Z", source: "session_end",
    usage_source: "metered", audio_in_ms: 1200, audio_out_ms: 0, cost_usd: 0 };
  const d = sessionDetail([session, response, metered]);
  assert.equal(d.live, false);
  assert.deepEqual(d.conversation, []);
  const checkpoint = { record: "usage", session_id: "l", time: "2026-01-01T00:00:03Z", seconds: 3, voice_cost_usd: 0.0025 };
  assert.equal(sessionDetail([checkpoint]).live, true);
});
