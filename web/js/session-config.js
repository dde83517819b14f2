// Playground settings → the `session.update` event (GA or beta shape), and the tools editor's
// validation. No DOM.

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Parse the tools editor's text: a JSON array of function definitions (or one definition).
 * Returns `{tools}` or `{error}` naming what is wrong; an empty editor means no tools.
 */
export function parseTools(text) {
  if (!text || !text.trim()) return { tools: [] };
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: `tools: not valid JSON (${e.message})` };
  }
  const list = Array.isArray(value) ? value : [value];
  const tools = [];
  for (const [i, tool] of list.entries()) {
    const where = `tools[${i}]`;
    if (!tool || typeof tool !== "object" || Array.isArray(tool)) return { error: `${where}: must be an object` };
    if (tool.type !== undefined && tool.type !== "function") return { error: `${where}.type: must be "function"` };
    if (typeof tool.name !== "string" || !TOOL_NAME.test(tool.name)) {
      return { error: `${where}.name: letters, digits, _ or -, at most 64` };
    }
    if (tool.description !== undefined && typeof tool.description !== "string") {
      return { error: `${where}.description: must be a string` };
    }
    const params = tool.parameters === undefined ? { type: "object", properties: {} } : tool.parameters;
    if (!params || typeof params !== "object" || Array.isArray(params)) {
      return { error: `${where}.parameters: must be a JSON schema object` };
    }
    tools.push({ type: "function", name: tool.name, description: tool.description || "", parameters: params });
  }
  const names = tools.map((t) => t.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) return { error: `tools: the name ${dup} is used twice` };
  return { tools };
}

/** The input-transcription model each dialect usually names. */
export const USUAL_TRANSCRIBER = { ga: "gpt-4o-mini-transcribe", beta: "whisper-1" };

/**
 * The input-transcription model the page asks for: the dialect's usual one when the gateway lists
 * it for this key, else the first transcription model it lists (the page then knows its price and
 * the key may use it), else the usual one. `listed`: the key's models, [{id, api}].
 */
export function pickTranscriber(dialect, listed) {
  const usual = USUAL_TRANSCRIBER[dialect] || USUAL_TRANSCRIBER.ga;
  const ids = (listed || []).filter((m) => m && m.api === "transcription").map((m) => m.id);
  return ids.includes(usual) ? usual : ids[0] || usual;
}

/**
 * settings: {instructions, voice, modalities: "text"|"audio", turn: "server_vad"|"push_to_talk",
 * threshold, silenceMs, transcription: bool, transcriptionModel?: string, tools: [...]}
 */
export function buildSessionUpdate(settings, dialect = "ga") {
  const vad = settings.turn === "server_vad";
  const turnDetection = vad
    ? {
        type: "server_vad",
        threshold: Number(settings.threshold),
        prefix_padding_ms: 300,
        silence_duration_ms: Number(settings.silenceMs),
        create_response: true,
        interrupt_response: true,
      }
    : null;
  const audio = settings.modalities === "audio";
  if (dialect === "beta") {
    return {
      type: "session.update",
      session: {
        modalities: audio ? ["text", "audio"] : ["text"],
        instructions: settings.instructions,
        voice: settings.voice,
        input_audio_format: "pcm16",
        output_audio_format: "pcm16",
        input_audio_transcription: settings.transcription ? { model: settings.transcriptionModel || USUAL_TRANSCRIBER.beta } : null,
        turn_detection: turnDetection,
        tools: settings.tools,
        tool_choice: "auto",
      },
    };
  }
  return {
    type: "session.update",
    session: {
      type: "realtime",
      instructions: settings.instructions,
      output_modalities: audio ? ["audio"] : ["text"],
      audio: {
        input: {
          format: { type: "audio/pcm", rate: 24000 },
          transcription: settings.transcription ? { model: settings.transcriptionModel || USUAL_TRANSCRIBER.ga } : null,
          turn_detection: turnDetection,
        },
        output: { format: { type: "audio/pcm", rate: 24000 }, voice: settings.voice },
      },
      tools: settings.tools,
      tool_choice: "auto",
    },
  };
}

/** The realtime URL for a listener base URL, route and model. */
export function sessionUrl(listenerUrl, path, model) {
  const url = new URL(listenerUrl);
  url.pathname = path;
  url.search = "";
  if (path === "/openai/realtime") {
    url.searchParams.set("deployment", model);
    url.searchParams.set("api-version", "2025-04-01-preview");
  } else {
    url.searchParams.set("model", model);
  }
  return url.toString();
}

/** Subprotocols a browser sends: `realtime`, the key token, and the beta marker if wanted. */
export function subprotocols(key, dialect) {
  const list = ["realtime", `openai-insecure-api-key.${key}`];
  if (dialect === "beta") list.push("openai-beta.realtime-v1");
  return list;
}

/** What each transport means, shown under the Transport setting. */
export const TRANSPORT_NOTES = {
  websocket: "Through the gateway: it relays every event and the audio.",
  webrtc: "Media straight to the model; the gateway authorizes, watches and bills the call.",
};

/** A listener's option label: short (its name and port); its full URL is shown under the setting. */
export function listenerLabel(listener) {
  return listener.port ? `${listener.name} · port ${listener.port}` : listener.name;
}
