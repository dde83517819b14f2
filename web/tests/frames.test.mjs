import assert from "node:assert/strict";
import { test } from "node:test";

import { decodeFrame } from "../js/frames.js";

const json = '{"type":"response.done","response":{"id":"r"}}';

test("text frames parse", async () => {
  assert.equal((await decodeFrame(json)).event.type, "response.done");
});

test("ArrayBuffer, typed array and Blob binary frames decode as UTF-8 JSON", async () => {
  const bytes = new TextEncoder().encode('{"type":"x","t":"é✓"}');
  assert.equal((await decodeFrame(bytes.buffer)).event.t, "é✓");
  assert.equal((await decodeFrame(bytes)).event.type, "x");
  assert.equal((await decodeFrame(new Blob([bytes]))).event.t, "é✓");
});

test("bad frames give errors, never throw", async () => {
  assert.match((await decodeFrame("nope")).error, /not JSON/);
  assert.match((await decodeFrame(new Uint8Array([0xff, 0xfe]).buffer)).error, /UTF-8/);
  assert.match((await decodeFrame("[1,2]")).error, /no type/);
  assert.match((await decodeFrame(42)).error, /unsupported/);
});
