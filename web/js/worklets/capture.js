// AudioWorklet: microphone → mono PCM16 at 24 kHz, posted to the page in CHUNK_MS chunks.
// `sampleRate` is the context's rate (24 kHz where the browser allows it, else the device's, in
// which case the audio is resampled here). Each chunk's ArrayBuffer is transferred, not copied.
import { CHUNK_SAMPLES, Chunker, Resampler, SAMPLE_RATE, floatTo16BitPCM, rms } from "../audio.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.resampler = new Resampler(sampleRate, SAMPLE_RATE);
    this.chunker = new Chunker(CHUNK_SAMPLES);
    this.level = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length && channels[0].length) {
      const n = channels[0].length;
      const mono = new Float32Array(n);
      for (const ch of channels) for (let i = 0; i < n; i++) mono[i] += ch[i] / channels.length;
      const resampled = this.resampler.process(mono);
      this.level = Math.max(rms(resampled), this.level * 0.9);
      for (const chunk of this.chunker.push(floatTo16BitPCM(resampled))) {
        this.port.postMessage({ type: "chunk", pcm: chunk.buffer, level: this.level }, [chunk.buffer]);
      }
    }
    return true;
  }
}

registerProcessor("rtp-capture", CaptureProcessor);
