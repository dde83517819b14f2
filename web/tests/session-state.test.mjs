import assert from "node:assert/strict";
import { test } from "node:test";

import { SessionState, costOf, errorText, tokenSplit } from "../js/session-state.js";

const PRICE = { input_text: 4, input_audio: 32, cached_text: 0.4, cached_audio: 0.4, output_text: 16, output_audio: 64 };
const USAGE = {
  total_tokens: 1700, input_tokens: 1200, output_tokens: 500,
  input_token_details: { text_tokens: 1000, audio_tokens: 200, cached_tokens: 640,
    cached_tokens_details: { text_tokens: 600, audio_tokens: 40 } },
  output_token_details: { text_tokens: 100, audio_tokens: 400 },
};

test("usage split and cost match the server's pricing", () => {
  assert.deepEqual(tokenSplit(USAGE), { input_text: 400, input_audio: 160, input_image: 0, cached_text: 600,
    cached_audio: 40, cached_image: 0, output_text: 100, output_audio: 400 });
  assert.ok(Math.abs(costOf(USAGE, PRICE) - 0.034176) < 1e-9);
  assert.equal(costOf(USAGE, null), null);
});

// an input transcription's usage, as the provider reports it (no output_token_details)
const TRANSCRIBED = { type: "tokens", input_tokens: 120, output_tokens: 9, total_tokens: 129,
  input_token_details: { text_tokens: 0, audio_tokens: 120 } };
const TRANSCRIBER = { input_text: 2.5, input_audio: 6, cached_text: 2.5, cached_audio: 6, output_text: 10, output_audio: 10,
  audio_per_hour: 0.36 };

test("an input transcription is priced as the server prices it: its output is the transcript's text tokens", () => {
  assert.deepEqual(tokenSplit(TRANSCRIBED), { input_text: 0, input_audio: 120, input_image: 0, cached_text: 0,
    cached_audio: 0, cached_image: 0, output_text: 9, output_audio: 0 });
  assert.equal(costOf(TRANSCRIBED, TRANSCRIBER), 0.00081); // 120 × $6/M + 9 × $10/M
  // whisper-1 reports a duration: priced by the hour
  assert.equal(costOf({ type: "duration", seconds: 2.5 }, TRANSCRIBER), 0.00025);
  assert.equal(costOf({ type: "duration", seconds: 2.5 }, PRICE), null); // no hourly rate: unpriced, not $0
});

test("the session cost includes each input transcription, at its model's price (the spend log's session cost)", () => {
  const prices = { "gpt-4o-transcribe": TRANSCRIBER };
  const s = new SessionState({ price: PRICE, priceOf: (name) => prices[name] || null });
  s.apply({ type: "session.updated", session: { type: "realtime", audio: { input: { transcription: { model: "gpt-4o-transcribe" } } } } });
  s.apply({ type: "conversation.item.added", item: { id: "v1", type: "message", role: "user", content: [{ type: "input_audio" }] } });
  s.apply({ type: "conversation.item.input_audio_transcription.completed", item_id: "v1", transcript: "Hi", usage: TRANSCRIBED });
  textTurn(s);
  assert.deepEqual(s.billed.map((r) => [r.kind, r.cost]), [["transcription", 0.00081], ["response", 0.034176]]);
  assert.equal(s.totalCost, 0.034986);
  assert.equal(s.unpriced, 0);
  // beta names the model elsewhere; a model the page has no price for is counted as unpriced, never as $0
  const beta = new SessionState({ price: PRICE });
  beta.apply({ type: "session.updated", session: { input_audio_transcription: { model: "whisper-1" } } });
  assert.equal(beta.transcriptionModel, "whisper-1");
  beta.apply({ type: "conversation.item.input_audio_transcription.completed", item_id: "v1", transcript: "Hi",
    usage: { type: "duration", seconds: 1 } });
  assert.equal(beta.unpriced, 1);
  assert.equal(beta.totalCost, 0);
});

function textTurn(s, names = "ga") {
  const beta = names === "beta";
  s.apply({ type: beta ? "conversation.item.created" : "conversation.item.added",
    item: { id: "u1", type: "message", role: "user", content: [{ type: "input_text", text: "Hi" }] } });
  s.apply({ type: "response.created", response: { id: "r1" } });
  s.apply({ type: "response.output_item.added", response_id: "r1", item: { id: "a1", type: "message", role: "assistant" } });
  if (!beta) s.apply({ type: "conversation.item.added", item: { id: "a1", type: "message", role: "assistant", content: [] } });
  for (const d of ["Hel", "lo"]) s.apply({ type: beta ? "response.text.delta" : "response.output_text.delta", item_id: "a1", delta: d });
  s.apply({ type: "response.done", response: { id: "r1", status: "completed", usage: USAGE, output: [] } });
}

test("a text turn: typed text, streamed reply, usage and running cost", () => {
  for (const names of ["ga", "beta"]) {
    const s = new SessionState({ price: PRICE });
    textTurn(s, names);
    assert.deepEqual(s.entries.map((e) => [e.role, e.kind, e.text]), [["user", "text", "Hi"], ["assistant", "assistant", "Hello"]]);
    assert.equal(s.responses.length, 1);
    assert.equal(s.responding, false);
    assert.ok(Math.abs(s.totalCost - 0.034176) < 1e-9);
    assert.equal(s.totalTokens, 1700);
  }
});

test("voice transcript fills the user's voice entry; audio transcript the assistant's", () => {
  const s = new SessionState();
  s.apply({ type: "conversation.item.added", item: { id: "v1", type: "message", role: "user", content: [{ type: "input_audio", transcript: null }] } });
  s.apply({ type: "conversation.item.input_audio_transcription.completed", item_id: "v1", transcript: "What time is it?" });
  s.apply({ type: "response.audio_transcript.delta", item_id: "a2", delta: "Noon" });
  assert.deepEqual(s.entries.map((e) => [e.kind, e.text]), [["voice", "What time is it?"], ["assistant", "Noon"]]);
  assert.equal(s.entries[1].audio, true);
});

test("tool calls become cards and pick up their output", () => {
  const s = new SessionState();
  s.apply({ type: "response.output_item.added", item: { id: "f1", type: "function_call", call_id: "c1", name: "get_weather", arguments: "" } });
  s.apply({ type: "response.function_call_arguments.delta", item_id: "f1", call_id: "c1", delta: '{"city":' });
  s.apply({ type: "response.function_call_arguments.delta", item_id: "f1", call_id: "c1", delta: '"Paris"}' });
  s.apply({ type: "response.done", response: { output: [{ id: "f1", type: "function_call", call_id: "c1", name: "get_weather", arguments: '{"city":"Paris"}', status: "completed" }] } });
  const card = s.entries[0];
  assert.equal(card.kind, "tool_call");
  assert.equal(card.arguments, '{"city":"Paris"}');
  assert.deepEqual(s.pendingToolCalls(), [card]);
  s.apply({ type: "conversation.item.added", item: { id: "o1", type: "function_call_output", call_id: "c1", output: "18C" } });
  assert.equal(card.output, "18C");
  assert.deepEqual(s.pendingToolCalls(), []);
  assert.equal(s.entries.length, 1);
});

test("repeated events collapse in the log with a count; audio payloads are shortened", () => {
  const s = new SessionState();
  for (let i = 0; i < 5; i++) s.apply({ type: "response.output_audio.delta", item_id: "a", delta: "A".repeat(5000) });
  s.apply({ type: "input_audio_buffer.append", audio: "B".repeat(5000) }, "client");
  s.apply({ type: "input_audio_buffer.append", audio: "B".repeat(5000) }, "client");
  assert.deepEqual(s.log.map((l) => [l.type, l.direction, l.count]), [
    ["response.output_audio.delta", "server", 5], ["input_audio_buffer.append", "client", 2]]);
  assert.ok(s.log[0].event.delta.length < 200);
});

test("errors are kept for the status line; odd events do not throw", () => {
  const s = new SessionState();
  s.apply({ type: "error", error: { code: "invalid_api_key", message: "the API key is not valid" } });
  assert.deepEqual(s.lastError, { code: "invalid_api_key", message: "the API key is not valid" });
  for (const e of [{ type: "response.done" }, { type: "conversation.item.added" }, { type: "response.output_item.added" },
    { type: "conversation.item.added", item: { id: "x", type: "message", content: "nope" } }, { type: "unknown.thing" }]) {
    s.apply(e);
  }
});

test("an error is put in words: its message, then the parameter and code it is about", () => {
  const err = { type: "invalid_request_error", code: "unsupported_parameter", param: "response.instructions",
    message: "Gemini Live fixes instructions for the whole session: a response cannot change it (use session.update)" };
  assert.equal(errorText(err),
    "Gemini Live fixes instructions for the whole session: a response cannot change it (use session.update) (response.instructions; unsupported_parameter)");
  assert.equal(errorText({ message: "Cancellation failed", code: "response_cancel_not_active" }), "Cancellation failed (response_cancel_not_active)");
  assert.equal(errorText({ message: "bad value for session.voice", param: "session.voice" }), "bad value for session.voice"); // not said twice
  assert.equal(errorText(undefined), "The server reported an error.");
  assert.equal(errorText({ message: "  " }), "The server reported an error.");
});

test("an error event shows in the conversation where it happened; the same one again only counts", () => {
  const s = new SessionState();
  textTurn(s);
  const error = { type: "error", error: { code: "unsupported_parameter", param: "response.instructions", message: "Gemini Live fixes instructions" } };
  s.apply(error);
  s.apply(error);
  const last = s.entries[s.entries.length - 1];
  assert.deepEqual({ role: last.role, kind: last.kind, text: last.text, count: last.count },
    { role: "system", kind: "error", text: "Gemini Live fixes instructions (response.instructions; unsupported_parameter)", count: 2 });
  assert.equal(s.entries.filter((e) => e.kind === "error").length, 1);
  assert.deepEqual(s.lastError, { code: "unsupported_parameter", message: "Gemini Live fixes instructions" });
  s.apply({ type: "error", error: { code: "other", message: "Another" } });
  assert.equal(s.entries.filter((e) => e.kind === "error").length, 2);
});
