import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CHUNK_SAMPLES, Chunker, Resampler, base64ToPcm16, bytesToBase64, floatTo16BitPCM, int16ToFloat32,
  pcm16ToBase64, samplesToMs,
} from "../js/audio.js";

test("float to int16 clamps and scales asymmetrically", () => {
  assert.deepEqual([...floatTo16BitPCM(Float32Array.from([0, 1, -1, 2, -2, 0.5]))], [0, 32767, -32768, 32767, -32768, 16383]);
});

test("int16 round-trips through float within one step", () => {
  const input = Int16Array.from([0, 1, -1, 12345, -32768, 32767]);
  const back = floatTo16BitPCM(int16ToFloat32(input));
  input.forEach((v, i) => assert.ok(Math.abs(v - back[i]) <= 1, `${v} vs ${back[i]}`));
});

test("resampling 48k to 24k halves the length and keeps a low tone", () => {
  const r = new Resampler(48000, 24000);
  const out = [];
  // feed a 440 Hz sine in 128-frame quanta, as an AudioWorklet would
  for (let block = 0; block < 375; block++) {
    const q = new Float32Array(128);
    for (let i = 0; i < 128; i++) q[i] = Math.sin((2 * Math.PI * 440 * (block * 128 + i)) / 48000);
    out.push(...r.process(q));
  }
  assert.ok(Math.abs(out.length - 24000) <= 1, `got ${out.length} samples`);
  // compare with the ideal 24 kHz sine (the 2-tap average delays by half an input sample)
  let err = 0;
  for (let i = 100; i < 23900; i++) {
    const ideal = Math.sin(2 * Math.PI * 440 * (i * 2 - 0.5) / 48000) * Math.cos(Math.PI * 440 / 48000);
    err = Math.max(err, Math.abs(out[i] - ideal));
  }
  assert.ok(err < 0.01, `max error ${err}`);
});

test("resampling keeps phase across blocks for any ratio (44.1k)", () => {
  const r = new Resampler(44100, 24000);
  const out = [];
  for (let block = 0; block < 1000; block++) {
    const q = new Float32Array(128);
    for (let i = 0; i < 128; i++) q[i] = Math.sin((2 * Math.PI * 440 * (block * 128 + i)) / 44100);
    out.push(...r.process(q));
  }
  assert.ok(Math.abs(out.length - (128000 * 24000) / 44100) <= 1, `got ${out.length}`);
  // output sample j sits at input position j * 44100/24000 (less the 2-tap average's half sample):
  // a block boundary that lost or repeated a fraction of a sample would show as a jump here
  const step = 44100 / 24000;
  const gain = Math.cos((Math.PI * 440) / 44100);
  let err = 0;
  for (let j = 10; j < out.length - 10; j++) {
    const ideal = Math.sin((2 * Math.PI * 440 * (j * step - 0.5)) / 44100) * gain;
    err = Math.max(err, Math.abs(out[j] - ideal));
  }
  assert.ok(err < 0.01, `max error ${err}`);
});

test("same rate passes through", () => {
  assert.deepEqual([...new Resampler(24000, 24000).process(Float32Array.from([0.5, -0.5]))], [0.5, -0.5]);
});

test("chunker hands out 40 ms chunks across pushes", () => {
  const c = new Chunker();
  assert.equal(CHUNK_SAMPLES, 960);
  assert.equal(c.push(new Int16Array(500)).length, 0);
  const chunks = c.push(Int16Array.from({ length: 1500 }, (_, i) => i));
  assert.equal(chunks.length, 2);
  assert.equal(chunks[0].length, 960);
  assert.equal(chunks[1][0], 460);
});

test("base64 of PCM16 is little-endian and round-trips, also for large buffers", () => {
  assert.equal(pcm16ToBase64(Int16Array.from([1, -2])), Buffer.from([1, 0, 0xfe, 0xff]).toString("base64"));
  const big = Int16Array.from({ length: 200000 }, (_, i) => (i * 7) % 65536 - 32768);
  assert.deepEqual(base64ToPcm16(pcm16ToBase64(big)), big);
  const bytes = Uint8Array.from({ length: 100001 }, (_, i) => i % 256);
  assert.equal(bytesToBase64(bytes), Buffer.from(bytes).toString("base64"));
});

test("samples to milliseconds at 24 kHz", () => {
  assert.equal(samplesToMs(24000), 1000);
  assert.equal(samplesToMs(23999), 999);
});
