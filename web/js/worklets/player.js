// AudioWorklet: plays queued PCM16 (24 kHz) without gaps and counts, per item, how many samples
// were actually played, so an interruption can truncate the conversation at what was heard.
// Messages in: {type:"write", itemId, pcm: ArrayBuffer} | {type:"interrupt", requestId}
// Messages out: {type:"interrupted", requestId, itemId, playedSamples} | {type:"idle"}
import { Resampler, SAMPLE_RATE, int16ToFloat32 } from "../audio.js";

class PlayerProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // {itemId, samples: Float32Array, offset}
    this.played = new Map(); // itemId → samples played, counted at 24 kHz
    this.current = null;
    this.ratio = SAMPLE_RATE / sampleRate; // 1 when the context runs at 24 kHz
    this.resampler = sampleRate === SAMPLE_RATE ? null : new Resampler(SAMPLE_RATE, sampleRate);
    this.busy = false;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === "write") {
      let samples = int16ToFloat32(new Int16Array(msg.pcm));
      if (this.resampler) samples = this.resampler.process(samples);
      this.queue.push({ itemId: msg.itemId, samples, offset: 0 });
    } else if (msg.type === "interrupt") {
      const itemId = this.queue.length ? this.queue[0].itemId : this.current;
      this.queue = [];
      this.port.postMessage({
        type: "interrupted",
        requestId: msg.requestId,
        itemId,
        playedSamples: Math.floor(this.played.get(itemId) || 0),
      });
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.queue.length) {
      const head = this.queue[0];
      const n = Math.min(out.length - i, head.samples.length - head.offset);
      out.set(head.samples.subarray(head.offset, head.offset + n), i);
      head.offset += n;
      i += n;
      this.current = head.itemId;
      this.played.set(head.itemId, (this.played.get(head.itemId) || 0) + n * this.ratio);
      if (head.offset >= head.samples.length) this.queue.shift();
    }
    // an underrun leaves the rest of `out` silent; the node keeps running
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    const busy = this.queue.length > 0;
    if (this.busy && !busy) this.port.postMessage({ type: "idle" });
    this.busy = busy;
    return true;
  }
}

registerProcessor("rtp-player", PlayerProcessor);
