import assert from "node:assert/strict";
import { test } from "node:test";

import { DELEGATION_HELP, LiveState, TYPED_PREFIX, answerEvent, liveSessionStart, typedTextEvents } from "../js/live-state.js";

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

test("typed text in client mode is a task for this page: silent context for the voice, a card, and the answer spoken", () => {
  const [context, ...more] = typedTextEvents("What is the weather in Paris?", "client");
  // never commentary: the voice model would read the question back instead of answering it
  assert.deepEqual(more, []);
  assert.deepEqual(context, { type: "session.thinking.append", delegation_id: null,
    content: `${TYPED_PREFIX}What is the weather in Paris?` });
  const s = new LiveState();
  s.apply(context, "client");
  const card = s.entries.find((e) => e.kind === "delegation");
  assert.deepEqual(s.entries.map((e) => [e.kind, e.role, e.text ?? e.arguments]),
    [["text", "user", "What is the weather in Paris?"], ["delegation", "tool", "What is the weather in Paris?"]]);
  assert.equal(card.status, "waiting");
  const answer = answerEvent(card, "It is sunny in Paris.");
  assert.deepEqual(answer, { type: "session.commentary.append", delegation_id: null, content: "It is sunny in Paris." });
  s.apply(answer, "client");
  assert.deepEqual([card.status, card.output], ["answered", "It is sunny in Paris."]);
  // a voice turn's delegation is answered with its id
  s.apply({ type: "session.delegation.created", delegation: { id: "d1", target: "client" } }, "server");
  const voiceCard = s.entries[s.entries.length - 1];
  assert.deepEqual(answerEvent(voiceCard, "Yes."), { type: "session.commentary.append", delegation_id: "d1", content: "Yes." });
});

test("typed text under Responses delegation asks the backend model", () => {
  assert.deepEqual(typedTextEvents("Hi", "responses"), [
    { type: "response.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text: "Hi" }] } },
    { type: "response.create" }]);
});

test("the session start sends the tools to a Responses backend only; each mode has its line of help", () => {
  const common = { model: "gpt-live-1", instructions: "Be brief.", voice: "marin", backendModel: "gpt-5.6-luna",
    tools: [{ type: "function", name: "get_weather", parameters: {} }] };
  const client = liveSessionStart({ ...common, delegation: "client" });
  assert.deepEqual(client.session.delegation, { type: "client" });
  assert.equal(JSON.stringify(client).includes("get_weather"), false);
  const responses = liveSessionStart({ ...common, delegation: "responses" });
  assert.deepEqual(responses.session.delegation, { type: "responses", responses: { model: "gpt-5.6-luna", tools: common.tools } });
  assert.deepEqual(responses.session.audio, { format: { type: "audio/pcm", rate: 24000 }, output: { voice: "marin" } });
  for (const mode of ["client", "responses"]) assert.match(DELEGATION_HELP[mode], /^[A-Z].{20,130}\.$/);
});
