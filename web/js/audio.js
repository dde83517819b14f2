// Audio conversions for the realtime API's PCM16 / 24 kHz / mono format. No DOM: used by the
// capture worklet, the player and the page, and tested with `node --test`.

export const SAMPLE_RATE = 24000;
/** Microphone audio is sent in chunks of this many milliseconds (the API takes 20–100 ms). */
export const CHUNK_MS = 40;
export const CHUNK_SAMPLES = (SAMPLE_RATE * CHUNK_MS) / 1000;
/** btoa() is fed at most this many bytes at a time (String.fromCharCode argument limits). */
const BASE64_SLICE_BYTES = 0x8000;

/** Float samples in [-1, 1] → Int16, clamped; negatives scale by 0x8000, positives by 0x7fff. */
export function floatTo16BitPCM(input) {
  const out = new Int16Array(input.length);
  for (let i = 0; i < input.length; i++) {
    const s = Math.max(-1, Math.min(1, input[i]));
    out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
  }
  return out;
}

/** Int16 samples → floats in [-1, 1). */
export function int16ToFloat32(input) {
  const out = new Float32Array(input.length);
  for (let i = 0; i < input.length; i++) out[i] = input[i] / 0x8000;
  return out;
}

/** Root mean square of float samples, 0..1. */
export function rms(samples) {
  if (!samples.length) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / samples.length);
}

/**
 * Streaming linear resampler that keeps its phase across calls (audio arrives in 128-frame
 * render quanta). When downsampling it first averages each input sample with its predecessor,
 * a cheap low-pass that keeps the worst aliasing out of 48 k → 24 k.
 */
export class Resampler {
  constructor(inRate, outRate) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    this.pos = 0; // position of the next output sample, relative to the current block's start
    this.last = 0; // the previous block's last (filtered) sample, for interpolation across blocks
    this.prevRaw = 0;
  }

  process(input) {
    if (this.inRate === this.outRate) return Float32Array.from(input);
    let src = input;
    if (this.step > 1) {
      src = new Float32Array(input.length);
      let prev = this.prevRaw;
      for (let i = 0; i < input.length; i++) {
        src[i] = 0.5 * (input[i] + prev);
        prev = input[i];
      }
      this.prevRaw = prev;
    }
    const out = [];
    // sample k of this block sits at index k; index -1 is `this.last`
    while (this.pos < src.length - 1 + 1e-9) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i < 0 ? this.last : src[i];
      const b = i + 1 < src.length ? src[i + 1] : src[i];
      out.push(a + (b - a) * frac);
      this.pos += this.step;
    }
    this.pos -= src.length;
    this.last = src.length ? src[src.length - 1] : this.last;
    return Float32Array.from(out);
  }
}

/** Collects Int16 samples and hands them out in chunks of `size` samples. */
export class Chunker {
  constructor(size = CHUNK_SAMPLES) {
    this.size = size;
    this.buffer = new Int16Array(size);
    this.filled = 0;
  }

  push(samples) {
    const chunks = [];
    let offset = 0;
    while (offset < samples.length) {
      const n = Math.min(this.size - this.filled, samples.length - offset);
      this.buffer.set(samples.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === this.size) {
        chunks.push(this.buffer);
        this.buffer = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return chunks;
  }
}

/** Bytes → base64, in slices so large buffers do not overflow the argument list. */
export function bytesToBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += BASE64_SLICE_BYTES) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + BASE64_SLICE_BYTES));
  }
  return btoa(binary);
}

export function base64ToBytes(b64) {
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Int16 samples → base64 of their little-endian bytes. */
export function pcm16ToBase64(samples) {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, samples[i], true);
  return bytesToBase64(bytes);
}

/** base64 of little-endian PCM16 → Int16 samples (an odd trailing byte is dropped). */
export function base64ToPcm16(b64) {
  const bytes = base64ToBytes(b64);
  const n = bytes.length >> 1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/** Milliseconds of audio in `samples` samples at 24 kHz, rounded down. */
export function samplesToMs(samples) {
  return Math.floor((samples * 1000) / SAMPLE_RATE);
}
