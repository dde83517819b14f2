// Who serves a model, in words: the playground's model list, the logs viewer's provider badges,
// filter and dashboard legend. No DOM.
//
// A model's `provider` is its `[[models]] provider`: "openai", "azure", "gemini" (Google AI
// Studio), "vertex" (Vertex AI) or "local" (the offline model, which speaks OpenAI's Realtime
// API or, with `dialect = "gemini"`, Google's Gemini Live). The gateway translates a Gemini Live
// upstream for Realtime clients, so the page uses every model the same way; what differs is
// what the upstream can do (no WebRTC calls, no per-response instructions: those come back as
// `error` events).

/** Each provider's name in words; the filter offers them in this order. */
export const PROVIDER_NAMES = {
  openai: "OpenAI",
  azure: "Azure OpenAI",
  gemini: "Gemini (AI Studio)",
  vertex: "Gemini (Vertex AI)",
  local: "offline model",
};

/** A provider's name in words (an unknown one as it is, a missing one as "unknown"). */
export function providerName(provider) {
  return PROVIDER_NAMES[provider] || provider || "unknown";
}

/** Whether a model's upstream speaks Gemini Live, from its `/v1/realtime/endpoints` entry. */
export function speaksGemini(model) {
  if (!model) return false;
  if (model.upstream_api) return model.upstream_api === "gemini";
  return model.provider === "gemini" || model.provider === "vertex";
}

/**
 * What serves a model, e.g. "Gemini Live (offline)", "OpenAI (offline)", "Gemini Live (Vertex AI)",
 * "Azure OpenAI". `info`: {provider, upstream_api?, api?}.
 */
export function serviceLabel(info) {
  const provider = info && info.provider;
  const gemini = speaksGemini(info);
  const family = gemini ? "Gemini Live" : info && info.api === "live" ? "GPT-Live" : "OpenAI";
  switch (provider) {
    case "local":
      return `${family} (offline)`;
    case "gemini":
      return "Gemini Live (AI Studio)";
    case "vertex":
      return "Gemini Live (Vertex AI)";
    case "azure":
      return "Azure OpenAI";
    case "openai":
      return family === "GPT-Live" ? "OpenAI GPT-Live" : "OpenAI";
    default:
      return provider ? String(provider) : "unknown provider";
  }
}

/** The model list's option text: "gemini-live — Gemini Live (offline)" (the id alone without info). */
export function modelLabel(id, info) {
  return info && info.provider ? `${id} — ${serviceLabel(info)}` : id;
}

/**
 * The line under the model list: who serves the chosen model (the list may cut its label short),
 * and for a Gemini Live upstream what the translation leaves out. Empty without info.
 */
export function modelNote(info) {
  if (!info || !info.provider) return "";
  const served = `Served by ${serviceLabel(info)}`;
  return speaksGemini(info) ? `${served}, translated by the gateway: WebSocket only; instructions are per session.` : `${served}.`;
}

/** Whether the page may open a WebRTC call to a model: calls are OpenAI's, Gemini Live has none. */
export function supportsWebRTC(info) {
  return !speaksGemini(info);
}

/**
 * What a spend record says about its upstream, for its badge: its `provider`, and whether the
 * upstream spoke Gemini Live — a native google-genai session (`call_type: "gemini"`), a Gemini
 * provider, or an upstream dialled at Gemini Live's BidiGenerateContent endpoint (the offline
 * model with `dialect = "gemini"` records `provider: "local"`, and that endpoint as `api_base`).
 */
export function recordService(record) {
  const r = record || {};
  const gemini = r.call_type === "gemini" || r.provider === "gemini" || r.provider === "vertex"
    || (typeof r.api_base === "string" && /BidiGenerateContent/.test(r.api_base));
  return { provider: r.provider || null, label: serviceLabel({ provider: r.provider, api: r.api, upstream_api: gemini ? "gemini" : "realtime" }) };
}
