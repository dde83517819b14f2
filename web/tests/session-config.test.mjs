import assert from "node:assert/strict";
import { test } from "node:test";

import { buildSessionUpdate, listenerLabel, parseTools, pickTranscriber, sessionUrl, subprotocols } from "../js/session-config.js";

const settings = {
  instructions: "hi", voice: "marin", modalities: "audio", turn: "server_vad", threshold: "0.6",
  silenceMs: "400", transcription: true, tools: [],
};

test("GA session.update shape", () => {
  const s = buildSessionUpdate(settings, "ga").session;
  assert.equal(s.type, "realtime");
  assert.deepEqual(s.output_modalities, ["audio"]);
  assert.equal(s.audio.input.turn_detection.threshold, 0.6);
  assert.equal(s.audio.input.turn_detection.silence_duration_ms, 400);
  assert.equal(s.audio.output.voice, "marin");
  assert.ok(s.audio.input.transcription);
});

test("beta shape and push-to-talk", () => {
  const s = buildSessionUpdate({ ...settings, turn: "push_to_talk", modalities: "text", transcription: false }, "beta").session;
  assert.deepEqual(s.modalities, ["text"]);
  assert.equal(s.turn_detection, null);
  assert.equal(s.input_audio_transcription, null);
  assert.equal(s.input_audio_format, "pcm16");
});

test("tools are validated before sending", () => {
  assert.deepEqual(parseTools(""), { tools: [] });
  assert.equal(parseTools('{"name":"f"}').tools[0].type, "function");
  assert.match(parseTools("[").error, /not valid JSON/);
  assert.match(parseTools('[{"name":"bad name"}]').error, /tools\[0\]\.name/);
  assert.match(parseTools('[{"name":"f","parameters":[]}]').error, /parameters/);
  assert.match(parseTools('[{"name":"f"},{"name":"f"}]').error, /twice/);
  assert.match(parseTools('[{"name":"f","type":"mcp"}]').error, /function/);
});

test("session URLs and subprotocols", () => {
  assert.equal(sessionUrl("ws://h:8001/v1/realtime", "/v1/realtime", "gpt-realtime"), "ws://h:8001/v1/realtime?model=gpt-realtime");
  assert.equal(sessionUrl("ws://h:8001/v1/realtime", "/openai/realtime", "m"),
    "ws://h:8001/openai/realtime?deployment=m&api-version=2025-04-01-preview");
  assert.deepEqual(subprotocols("k", "ga"), ["realtime", "openai-insecure-api-key.k"]);
  assert.deepEqual(subprotocols("k", "beta"), ["realtime", "openai-insecure-api-key.k", "openai-beta.realtime-v1"]);
});

test("the transcription model: the dialect's usual one when listed, else one the gateway lists (priced), else the usual", () => {
  const listed = (...ids) => [{ id: "gpt-realtime", api: "realtime" }, ...ids.map((id) => ({ id, api: "transcription" }))];
  assert.equal(pickTranscriber("ga", listed("whisper-1", "gpt-4o-mini-transcribe")), "gpt-4o-mini-transcribe");
  assert.equal(pickTranscriber("beta", listed("gpt-4o-mini-transcribe", "whisper-1")), "whisper-1");
  assert.equal(pickTranscriber("ga", listed("gpt-4o-transcribe")), "gpt-4o-transcribe");
  assert.equal(pickTranscriber("ga", listed()), "gpt-4o-mini-transcribe");
  assert.equal(pickTranscriber("beta", []), "whisper-1");
  const picked = { ...settings, transcriptionModel: "gpt-4o-transcribe" };
  assert.deepEqual(buildSessionUpdate(picked, "ga").session.audio.input.transcription, { model: "gpt-4o-transcribe" });
  assert.deepEqual(buildSessionUpdate(picked, "beta").session.input_audio_transcription, { model: "gpt-4o-transcribe" });
});

test("a listener's label is short (name and port); its URL is shown apart", () => {
  assert.equal(listenerLabel({ name: "realtime listener", port: 8001, url: "ws://127.0.0.1:8001/v1/realtime" }),
    "realtime listener · port 8001");
  assert.equal(listenerLabel({ name: "main port", port: null, url: "wss://gw.example/v1/realtime" }), "main port");
});
