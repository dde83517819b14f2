import assert from "node:assert/strict";
import { test } from "node:test";

import { LiveState } from "../js/live-state.js";

const frag = (type, delta, start_ms, end_ms) => ({ type, event_id: `e${start_ms}${type}`, delta, start_ms, end_ms });

test("transcript fragments become turns: same speaker within 500 ms continues, otherwise a new entry", () => {
  const s = new LiveState();
  s.apply(frag("session.input_transcript.delta", "Hello", 0, 300), "server");
  s.apply(frag("session.input_transcript.delta", " there", 300, 500), "server");
  s.apply(frag("session.output_transcript.delta", " Hi!", 900, 1200), "server");
  s.apply(frag("session.output_transcript.delta", " More.", 4000, 4300), "server");
  assert.deepEqual(s.entries.map((e) => [e.role, e.text]), [["user", "Hello there"], ["assistant", "Hi!"], ["assistant", "More."]]);
});

test("seconds are cumulative: the latest wins, never summed; the cost follows them", () => {
  const s = new LiveState({ voicePerHour: 3 });
  s.apply({ type: "session.usage.updated", usage: { seconds: 4 } }, "server");
  s.apply({ type: "session.usage.updated", usage: { seconds: 9 } }, "server");
  s.apply({ type: "session.usage.updated", usage: { seconds: 7 } }, "server");
  assert.equal(s.seconds, 9);
  assert.equal(s.voiceCost, (9 * 3) / 3600);
  s.apply({ type: "session.closed", reason: "close_requested", usage: { seconds: 10 } }, "server");
  assert.deepEqual(s.closed, { reason: "close_requested", seconds: 10 });
  assert.equal(new LiveState().voiceCost, null);
});

test("delegations and tool calls become cards answered by the client's events", () => {
  const s = new LiveState();
  s.apply({ type: "session.delegation.created", delegation: { id: "d1", target: "client" }, offset_ms: 10 }, "server");
  s.apply({ type: "session.commentary.append", delegation_id: "d1", content: "Sunny." }, "client");
  s.apply({ type: "response.event", event: { type: "response.output_item.done", item: {
    type: "function_call", call_id: "c1", name: "get_weather", arguments: "{}" } } }, "server");
  s.apply({ type: "response.item.create", item: { type: "function_call_output", call_id: "c1", output: "18" } }, "client");
  s.apply({ type: "response.event", event: { type: "response.completed", response: {
    id: "r1", model: "m", usage: { total_tokens: 12 } } } }, "server");
  assert.deepEqual(s.entries.map((e) => [e.kind, e.status, e.output]), [["delegation", "answered", "Sunny."],
    ["tool_call", "answered", "18"]]);
  assert.equal(s.delegatedTokens, 12);
  s.apply({ type: "session.output_audio.delta", delta: "x".repeat(500) }, "server");
  s.apply({ type: "session.output_audio.delta", delta: "y" }, "server");
  assert.equal(s.log[s.log.length - 1].count, 2);
  assert.ok(s.log[s.log.length - 1].event.delta.length <= 121);
});
