// Decoding WebSocket frames into realtime events. Text frames carry JSON; some servers send the
// same JSON as binary frames, which a browser hands over as a Blob or an ArrayBuffer. No DOM.

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Resolve to `{event}` or `{error}`; never throws. */
export async function decodeFrame(data) {
  let text;
  try {
    if (typeof data === "string") {
      text = data;
    } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      text = decoder.decode(data);
    } else if (data && typeof data.arrayBuffer === "function") {
      text = decoder.decode(await data.arrayBuffer()); // Blob
    } else {
      return { error: "unsupported frame type" };
    }
  } catch {
    return { error: "binary frame is not valid UTF-8" };
  }
  let event;
  try {
    event = JSON.parse(text);
  } catch {
    return { error: `frame is not JSON: ${text.slice(0, 80)}` };
  }
  if (!event || typeof event !== "object" || typeof event.type !== "string") {
    return { error: "frame is not a realtime event (no type)" };
  }
  return { event };
}
