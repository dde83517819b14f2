import assert from "node:assert/strict";
import { test } from "node:test";

import { PROVIDER_NAMES, modelLabel, modelNote, providerName, recordService, serviceLabel, speaksGemini, supportsWebRTC } from "../js/providers.js";

const GEMINI_LOCAL = { id: "gemini-live", provider: "local", api: "realtime", upstream_api: "gemini" };
const OPENAI_LOCAL = { id: "gpt-realtime", provider: "local", api: "realtime", upstream_api: "realtime" };

test("the model list names who serves each model, and whether it is the offline model", () => {
  assert.equal(modelLabel("gemini-live", GEMINI_LOCAL), "gemini-live — Gemini Live (offline)");
  assert.equal(modelLabel("gpt-realtime", OPENAI_LOCAL), "gpt-realtime — OpenAI (offline)");
  assert.equal(modelLabel("gpt-live-1", { provider: "local", api: "live", upstream_api: "realtime" }), "gpt-live-1 — GPT-Live (offline)");
  assert.equal(modelLabel("g", { provider: "gemini", upstream_api: "gemini" }), "g — Gemini Live (AI Studio)");
  assert.equal(modelLabel("v", { provider: "vertex" }), "v — Gemini Live (Vertex AI)");
  assert.equal(modelLabel("o", { provider: "openai", upstream_api: "realtime" }), "o — OpenAI");
  assert.equal(modelLabel("a", { provider: "azure", upstream_api: "realtime" }), "a — Azure OpenAI");
  assert.equal(modelLabel("x", { provider: "acme" }), "x — acme");
  assert.equal(modelLabel("bare", undefined), "bare"); // no endpoints info (yet): the id alone
});

test("a Gemini Live upstream is known by its upstream_api, else by its provider; it takes no WebRTC call", () => {
  assert.equal(speaksGemini(GEMINI_LOCAL), true);
  assert.equal(speaksGemini(OPENAI_LOCAL), false);
  assert.equal(speaksGemini({ provider: "vertex" }), true); // a server without upstream_api
  assert.equal(speaksGemini(null), false);
  assert.equal(supportsWebRTC(GEMINI_LOCAL), false);
  assert.equal(supportsWebRTC(OPENAI_LOCAL), true);
  assert.equal(supportsWebRTC(undefined), true); // unknown: the server decides
});

test("a record's badge: its provider, and Gemini Live when it spoke Gemini's protocol", () => {
  const base = "ws://127.0.0.1:1/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";
  assert.deepEqual(recordService({ provider: "local", api_base: base }), { provider: "local", label: "Gemini Live (offline)" });
  assert.deepEqual(recordService({ provider: "local", api_base: "ws://127.0.0.1:1/v1/realtime" }), { provider: "local", label: "OpenAI (offline)" });
  assert.equal(recordService({ provider: "local", call_type: "gemini" }).label, "Gemini Live (offline)"); // a native google-genai session
  assert.equal(recordService({ provider: "local", api: "live" }).label, "GPT-Live (offline)");
  assert.equal(recordService({ provider: "vertex" }).label, "Gemini Live (Vertex AI)");
  assert.deepEqual(recordService({}), { provider: null, label: "unknown provider" });
});

test("providers in words for the filter and the dashboard", () => {
  assert.deepEqual(Object.keys(PROVIDER_NAMES), ["openai", "azure", "gemini", "vertex", "local"]);
  assert.equal(providerName("local"), "offline model");
  assert.equal(providerName("gemini"), "Gemini (AI Studio)");
  assert.equal(providerName("acme"), "acme");
  assert.equal(providerName(""), "unknown");
  assert.equal(serviceLabel(undefined), "unknown provider");
});

test("the note under the model list says who serves it, and what a Gemini Live upstream leaves out", () => {
  assert.equal(modelNote(OPENAI_LOCAL), "Served by OpenAI (offline).");
  assert.equal(modelNote(GEMINI_LOCAL),
    "Served by Gemini Live (offline), translated by the gateway: WebSocket only; instructions are per session.");
  assert.equal(modelNote(undefined), "");
});
