// The playground page: the thin DOM layer. Logic lives in DOM-free modules (session-state.js,
// session-config.js, audio.js, frames.js); this file wires them to the socket, the microphone,
// the player and the page.

import { CHUNK_MS, base64ToPcm16, pcm16ToBase64, samplesToMs } from "./audio.js";
import { decodeFrame } from "./frames.js";
import { TRANSPORT_NOTES, buildSessionUpdate, listenerLabel, parseTools, pickTranscriber, sessionUrl,
  subprotocols } from "./session-config.js";
import { SessionState, errorText, heardText, normalizeType } from "./session-state.js";
import { DELEGATION_HELP, LiveState, answerEvent, liveSessionStart, typedTextEvents } from "./live-state.js";
import { authHeaders, el, isScrolledToEnd, loadKey, noKeyHint, saveKey } from "./common.js";
import { modelLabel, modelNote, speaksGemini, supportsWebRTC } from "./providers.js";

const $ = (id) => document.getElementById(id);
const EXAMPLE_TOOLS = [
  {
    type: "function",
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
];
/** How many event-log lines the panel shows (the state keeps more). */
const LOG_LINES_SHOWN = 200;
/** Lifetime of the token minted per connection: it only has to open the socket. */
const TOKEN_TTL_S = 60;

let ws = null;
let rtc = null; // {pc, channel, location, stream} while a WebRTC call is up (transport "webrtc")
let state = new SessionState();
let live = null; // a LiveState while a GPT-Live session is open (GPT-Live mode)
let liveDelegation = "client"; // the open Live session's delegation type (it cannot change mid-session)
let models = []; // [{id, api}] the key may use
let prices = {}; // model → price per 1M tokens
let modelInfo = {}; // model → {provider, api, upstream_api}, from /v1/realtime/endpoints
let listeners = [];
let mic = null; // {ctx, stream, node}
let player = null; // {ctx, node}
let pttDown = false;
const received = new Map(); // assistant item id → samples received
const interrupted = new Set();
let interruptSeq = 0;
const pendingInterrupts = new Map();
let renderQueued = false;
let lastRendered = -1;
const entryNodes = new Map();

/** The key check's result, beside the key: the connection status above keeps its own message. */
function setKeyStatus(text, kind) {
  $("key-status").textContent = text;
  $("key-status").dataset.state = kind;
}

function setStatus(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function settings() {
  const parsed = parseTools($("tools").value);
  return {
    parsed,
    values: {
      instructions: $("instructions").value,
      voice: $("voice").value,
      modalities: $("modalities").value,
      turn: $("turn").value,
      threshold: $("vad-threshold").value,
      silenceMs: $("vad-silence").value,
      transcription: $("transcription").checked,
      // one the gateway lists for this key when it can: the page then knows its price
      transcriptionModel: pickTranscriber($("dialect").value, Object.values(modelInfo)),
      tools: parsed.tools || [],
    },
  };
}

function validateTools() {
  const { parsed } = settings();
  $("tools-error").hidden = !parsed.error;
  $("tools-error").textContent = parsed.error || "";
  return !parsed.error;
}

// -- talking to the server ----------------------------------------------------------------------

function send(event) {
  if (rtc) {
    if (rtc.channel.readyState !== "open") return false;
    rtc.channel.send(JSON.stringify(event));
  } else if (!ws || ws.readyState !== WebSocket.OPEN) {
    return false;
  } else {
    ws.send(JSON.stringify(event));
  }
  if (live) live.apply(event.type === "session.input_audio.append" ? { type: event.type } : event, "client");
  else if (event.type !== "input_audio_buffer.append") state.apply(event, "client");
  else state.apply({ type: event.type, audio: event.audio }, "client");
  scheduleRender();
  return true;
}

function applySettings() {
  if (!validateTools()) return false;
  const { values } = settings();
  document.body.dataset.turn = values.turn;
  return send(buildSessionUpdate(values, $("dialect").value));
}

async function fetchJSON(path) {
  const res = await fetch(path, { headers: authHeaders($("key").value.trim()) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

async function loadServerInfo() {
  try {
    const ep = await fetchJSON("/v1/realtime/endpoints");
    listeners = ep.listeners || [];
    fillSelect($("listener"), listeners.map((l) => [l.url, listenerLabel(l)]));
    showListenerUrl();
    fillSelect($("path"), (ep.paths || ["/v1/realtime"]).map((p) => [p, p]), "/v1/realtime");
    prices = Object.fromEntries((ep.models || []).map((m) => [m.id, m.price_per_million_tokens]));
    modelInfo = Object.fromEntries((ep.models || []).map((m) => [m.id, m]));
  } catch (e) {
    setStatus(`Cannot reach the gateway: ${e.message}`, "error");
  }
  if (!$("key").value.trim()) {
    models = [];
    fillModels();
    setKeyStatus("Enter a key (make run prints one).", "idle");
    return;
  }
  try {
    models = (await fetchJSON("/v1/models")).data;
    fillModels();
    setKeyStatus(`Key accepted: ${models.length} model(s).`, "ok");
  } catch (e) {
    models = [];
    fillModels(e.message.includes("401") ? "(the key was refused: no models)" : "(no models: the key could not be checked)");
    setKeyStatus(e.message.includes("401") ? "That key is not valid for this gateway." : e.message, "error");
  }
}

/** Under the listener: its full URL (the option says its name and port only, so nothing is cut). */
function showListenerUrl() {
  $("listener-url").textContent = $("listener").value;
}

function showTransportNote() {
  $("transport-note").textContent = TRANSPORT_NOTES[$("transport").value] || "";
}

/** With no key the page has nothing to list or talk to: say where the key comes from. */
function showKeyHint() {
  const noKey = !$("key").value.trim();
  $("conversation-hint").hidden = !noKey;
  $("conversation-hint").textContent = noKey ? noKeyHint(location.origin) : "";
}

/** The models of the chosen API (transcription models route transcription sessions, not this page),
 *  each with who serves it: "gemini-live — Gemini Live (offline)". */
function fillModels(why = null) {
  const api = $("api").value;
  const options = models.filter((m) => (m.api || "realtime") === api).map((m) => [m.id, modelLabel(m.id, modelInfo[m.id])]);
  fillSelect($("model"), options);
  if (!options.length) {
    // an empty list says why: no key yet, a refused key, or no model of this API for the key
    const placeholder = why || (!$("key").value.trim() ? "(enter a key to list your models)"
      : `(this key may use no ${api === "live" ? "GPT-Live" : "Realtime"} model)`);
    $("model").append(el("option", { value: "", disabled: true, selected: true }, placeholder));
  }
  showKeyHint();
  onModelChange();
}

/** A Gemini Live upstream (translated by the gateway) has no WebRTC calls: the transport is the socket. */
function onModelChange() {
  const info = modelInfo[$("model").value];
  const webrtc = $("transport").querySelector('option[value="webrtc"]');
  webrtc.disabled = !supportsWebRTC(info);
  if (webrtc.disabled && $("transport").value === "webrtc") $("transport").value = "websocket";
  showTransportNote();
  document.body.dataset.upstream = speaksGemini(info) ? "gemini" : "realtime";
  $("model-note").textContent = modelNote(info);
  $("model-note").hidden = !modelNote(info);
  $("model").title = info ? modelLabel($("model").value, info) : "";
}

function fillSelect(select, options, preferred) {
  const previous = select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value }, label)));
  const keep = options.find(([v]) => v === previous) || options.find(([v]) => v === preferred);
  if (keep) select.value = keep[0];
}

/**
 * Mint a short-lived ephemeral token for this model: the long-lived key stays in this tab (it is
 * only sent, same-origin, to mint), and only the token travels in the WebSocket handshake.
 */
async function mintToken(key, model) {
  const res = await fetch("/v1/realtime/client_secrets", {
    method: "POST",
    headers: { ...authHeaders(key), "Content-Type": "application/json" },
    body: JSON.stringify({ expires_after: { anchor: "created_at", seconds: TOKEN_TTL_S }, session: { type: "realtime", model } }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error((body.error && body.error.message) || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return body.value;
}

async function connect() {
  const key = $("key").value.trim();
  if (!key) return setStatus("Enter a key first.", "error");
  if (!validateTools()) return setStatus("Fix the tools JSON first.", "error");
  const model = $("model").value || "gpt-realtime";
  let token;
  try {
    setStatus("Minting a session token …", "busy");
    token = await mintToken(key, model);
  } catch (e) {
    const why = e.status === 401 ? "that key is not valid for this gateway" : e.message;
    return setStatus(`Refused (${e.status || "network"}): ${why}`, "error");
  }
  const listenerUrl = $("listener").value || `ws://${location.host}/v1/realtime`;
  if ($("api").value === "live") return connectLive(listenerUrl, model, token);
  if ($("transport").value === "webrtc") {
    $("dialect").value = "ga"; // WebRTC calls speak the GA API
    return connectWebRTC(model, token);
  }
  live = null;
  const url = sessionUrl(listenerUrl, $("path").value || "/v1/realtime", model);
  state = newSessionState(model);
  entryNodes.clear();
  $("transcript").replaceChildren();
  received.clear();
  interrupted.clear();
  ensurePlayer();
  setStatus(`Connecting to ${url} …`, "busy");
  let opened = false;
  const socket = new WebSocket(url, subprotocols(token, $("dialect").value));
  ws = socket;
  socket.binaryType = "blob"; // both Blob and ArrayBuffer frames are decoded (frames.js)
  socket.onopen = () => {
    opened = true;
    setStatus(`Connected (${socket.protocol || "no subprotocol"}) to ${model}.`, "ok");
    setConnected(true);
    applySettings();
  };
  socket.onmessage = async (msg) => {
    const { event, error } = await decodeFrame(msg.data);
    if (error) {
      state.apply({ type: "rtproxy.bad_frame", error }, "server");
      return scheduleRender();
    }
    onEvent(event);
  };
  socket.onclose = (e) => {
    if (ws === socket) ws = null;
    setConnected(false);
    const why = state.lastError ? state.lastError.message : e.reason;
    if (!opened) setStatus(`Could not connect (${e.code}). ${why || "The gateway refused or is unreachable."}`, "error");
    else if (e.code >= 4000 || (state.lastError && e.code !== 1000)) setStatus(`Refused (${e.code}): ${why}`, "error");
    else setStatus(`Disconnected (${e.code}${e.reason ? `: ${e.reason}` : ""}).`, e.code === 1000 ? "idle" : "error");
    scheduleRender();
  };
}

/** A Realtime session's state, pricing its responses and its input transcriptions with the server's prices. */
function newSessionState(model) {
  return new SessionState({ price: prices[model] || null, priceOf: (name) => prices[name] || null });
}

/** A GPT-Live session: the model goes in the first frame (session.start), never in the URL. */
function connectLive(listenerUrl, model, token) {
  live = new LiveState({ voicePerHour: (prices[model] && prices[model].audio_per_hour) ?? null });
  entryNodes.clear();
  $("transcript").replaceChildren();
  ensurePlayer();
  const url = listenerUrl.replace(/\/v1\/realtime$/, "") + "/v1/live/sessions";
  setStatus(`Connecting to ${url} …`, "busy");
  let opened = false;
  const socket = new WebSocket(url, ["realtime", `openai-insecure-api-key.${token}`]);
  ws = socket;
  socket.binaryType = "blob";
  liveDelegation = $("delegation").value;
  socket.onopen = () => {
    opened = true;
    const { values } = settings();
    send(liveSessionStart({ model, instructions: values.instructions, voice: values.voice, delegation: liveDelegation,
      backendModel: $("backend-model").value.trim(), tools: values.tools }));
  };
  socket.onmessage = async (msg) => {
    const { event, error } = await decodeFrame(msg.data);
    if (error) return;
    live.apply(event, "server");
    if (event.type === "session.started") {
      setStatus(`Connected (GPT-Live ${event.session.id}) to ${model}.`, "ok");
      setConnected(true);
    } else if (event.type === "session.output_audio.delta") {
      playDelta({ item_id: "live", delta: event.delta });
    } else if (event.type === "error") {
      setStatus(`Server error: ${event.error && event.error.message}`, "error");
    }
    scheduleRender();
  };
  socket.onclose = (e) => {
    if (ws === socket) ws = null;
    setConnected(false);
    const why = live && live.lastError ? live.lastError.message : e.reason;
    if (!opened || e.code >= 4000) setStatus(`Refused (${e.code}): ${why || "the gateway refused or is unreachable"}`, "error");
    else setStatus(`Disconnected (${e.code}); ${live ? live.seconds : 0} s billed.`, e.code === 1000 ? "idle" : "error");
    scheduleRender();
  };
}

/**
 * A WebRTC call, as OpenAI's WebRTC guide makes one: the microphone as a track, events on the
 * "oai-events" data channel, the SDP offer posted (with the ephemeral token) to the gateway's
 * /v1/realtime/calls, which authorizes it, forwards it, and bills the call through its own
 * sideband. Audio flows browser ↔ model directly; the page sees no audio deltas.
 */
async function connectWebRTC(model, token) {
  live = null;
  state = newSessionState(model);
  entryNodes.clear();
  $("transcript").replaceChildren();
  received.clear();
  interrupted.clear();
  setStatus("Starting a WebRTC call …", "busy");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (e) {
    return setStatus(`Microphone unavailable: ${e.message}`, "error");
  }
  const pc = new RTCPeerConnection();
  const track = stream.getAudioTracks()[0];
  track.enabled = false; // "Start microphone" turns it on
  pc.addTrack(track, stream);
  const channel = pc.createDataChannel("oai-events");
  const call = { pc, channel, stream, location: null };
  rtc = call;
  pc.ontrack = (e) => {
    const audio = $("remote-audio");
    audio.srcObject = e.streams[0] || new MediaStream([e.track]);
    audio.play().catch(() => {});
  };
  channel.onopen = () => {
    setStatus(`Connected over WebRTC to ${model} (${call.location ? call.location.split("/").pop() : "call"}).`, "ok");
    setConnected(true);
    applySettings();
  };
  channel.onmessage = (msg) => {
    try {
      onEvent(JSON.parse(msg.data));
    } catch {
      state.apply({ type: "rtproxy.bad_frame", error: "not JSON" }, "server");
      scheduleRender();
    }
  };
  const ended = () => {
    if (rtc !== call) return;
    rtc = null;
    stopMic();
    stream.getTracks().forEach((t) => t.stop());
    setConnected(false);
    const why = state.lastError ? ` ${state.lastError.message}` : "";
    if (call.hangingUp) setStatus("Hung up.", "idle");
    else setStatus(`The call ended.${why}`, state.lastError ? "error" : "idle");
    scheduleRender();
  };
  channel.onclose = ended;
  pc.onconnectionstatechange = () => {
    if (["failed", "closed"].includes(pc.connectionState)) ended();
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(`/v1/realtime/calls?model=${encodeURIComponent(model)}`, {
      method: "POST", body: pc.localDescription.sdp,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/sdp" },
    });
    if (res.status !== 201) {
      const body = await res.json().catch(() => ({}));
      throw new Error(`Refused (${res.status}): ${(body.error && body.error.message) || "the gateway refused the call"}`);
    }
    call.location = res.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    setStatus("Connecting the call …", "busy");
  } catch (e) {
    rtc = null;
    pc.close();
    stream.getTracks().forEach((t) => t.stop());
    setStatus(e.message, "error");
  }
}

/** Hang the call up through the gateway (with the key: the token may have expired), then close. */
async function hangUp(call) {
  call.hangingUp = true;
  if (call.location) {
    await fetch(`${call.location}/hangup`, { method: "POST", headers: authHeaders($("key").value.trim()) })
      .catch(() => {});
  }
  call.pc.close();
  if (rtc === call) {
    rtc = null;
    stopMic();
    call.stream.getTracks().forEach((t) => t.stop());
    setConnected(false);
    setStatus("Hung up.", "idle");
  }
}

/** The WebRTC call's media figures (for the status and for tests): audio bytes each way. */
async function rtcStats() {
  if (!rtc) return null;
  const out = { sent: 0, received: 0 };
  (await rtc.pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "audio") out.sent += r.bytesSent || 0;
    if (r.type === "inbound-rtp" && r.kind === "audio") out.received += r.bytesReceived || 0;
  });
  return out;
}

function disconnect() {
  if (rtc) return hangUp(rtc);
  // GPT-Live: ask for the session's end (its final seconds come back), then the server closes
  if (live && ws && send({ type: "session.close" })) return;
  if (ws) ws.close(1000, "user closed the playground session");
}

function setConnected(on) {
  $("connect").disabled = on;
  $("disconnect").disabled = !on;
  $("apply").disabled = !on;
  $("text-input").disabled = !on;
  $("send").disabled = !on;
  $("mic").disabled = !on;
  $("delegation").disabled = on; // a Live session's delegation type is fixed at its start
  $("ptt").disabled = !on || $("turn").value !== "push_to_talk";
}

// -- events -------------------------------------------------------------------------------------

function onEvent(event) {
  state.apply(event, "server");
  const type = normalizeType(event.type);
  if (type === "response.output_audio.delta") playDelta(event);
  else if (type === "input_audio_buffer.speech_started") interrupt({ cancel: false });
  else if (type === "error") setStatus(`Server error: ${errorText(event.error)}`, "error");
  scheduleRender();
}

// -- audio out ----------------------------------------------------------------------------------

function ensurePlayer() {
  if (player) {
    player.ctx.resume();
    return;
  }
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 24000 }); // a 24 kHz context plays the API's audio without resampling
  } catch {
    ctx = new AudioContext();
  }
  player = { ctx, node: null, ready: null };
  player.ready = ctx.audioWorklet.addModule("/js/worklets/player.js").then(() => {
    player.node = new AudioWorkletNode(ctx, "rtp-player");
    player.node.connect(ctx.destination);
    player.node.port.onmessage = (e) => {
      const msg = e.data;
      if (msg.type === "interrupted" && pendingInterrupts.has(msg.requestId)) {
        pendingInterrupts.get(msg.requestId)(msg);
        pendingInterrupts.delete(msg.requestId);
      }
    };
  });
}

async function playDelta(event) {
  if (!player || interrupted.has(event.item_id)) return;
  await player.ready;
  const pcm = base64ToPcm16(event.delta);
  received.set(event.item_id, (received.get(event.item_id) || 0) + pcm.length);
  player.node.port.postMessage({ type: "write", itemId: event.item_id, pcm: pcm.buffer }, [pcm.buffer]);
}

/**
 * Stop playback at once; tell the server what was actually heard. With server VAD the server
 * cancels its own response on speech (interrupt_response), so only push-to-talk cancels here.
 */
async function interrupt({ cancel }) {
  if (!player || !player.node) return;
  const requestId = ++interruptSeq;
  const reply = await new Promise((resolve) => {
    pendingInterrupts.set(requestId, resolve);
    player.node.port.postMessage({ type: "interrupt", requestId });
  });
  const itemId = reply.itemId;
  if (cancel && state.responding) send({ type: "response.cancel" });
  if (!itemId || interrupted.has(itemId) || !received.has(itemId)) return;
  const got = received.get(itemId);
  if (reply.playedSamples >= got) return; // everything was heard
  interrupted.add(itemId);
  send({
    type: "conversation.item.truncate",
    item_id: itemId,
    content_index: 0,
    audio_end_ms: Math.min(samplesToMs(reply.playedSamples), samplesToMs(got)),
  });
}

// -- audio in -----------------------------------------------------------------------------------

async function startMic() {
  if (mic) return stopMic();
  if (rtc) rtc.stream.getAudioTracks().forEach((t) => { t.enabled = true; });
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    let ctx = new AudioContext({ sampleRate: 24000 });
    let source;
    try {
      source = ctx.createMediaStreamSource(stream);
    } catch {
      // Firefox cannot connect a mic to a context at another rate: capture at the device's
      // rate and let the worklet resample to 24 kHz.
      await ctx.close();
      ctx = new AudioContext();
      source = ctx.createMediaStreamSource(stream);
    }
    await ctx.audioWorklet.addModule("/js/worklets/capture.js");
    const node = new AudioWorkletNode(ctx, "rtp-capture");
    const sink = ctx.createGain();
    sink.gain.value = 0; // keeps the capture node pulled without playing the mic back
    source.connect(node).connect(sink).connect(ctx.destination);
    node.port.onmessage = (e) => onMicChunk(e.data);
    mic = { ctx, stream, node };
    $("mic").textContent = "Stop microphone";
    document.body.dataset.mic = "on";
  } catch (e) {
    setStatus(`Microphone unavailable: ${e.message}`, "error");
  }
}

function stopMic() {
  if (rtc) rtc.stream.getAudioTracks().forEach((t) => { t.enabled = false; });
  if (!mic) return;
  mic.stream.getTracks().forEach((t) => t.stop());
  mic.ctx.close();
  mic = null;
  $("mic").textContent = "Start microphone";
  $("level").style.width = "0%";
  document.body.dataset.mic = "off";
}

function onMicChunk(msg) {
  $("level").style.width = `${Math.min(100, Math.round(msg.level * 300))}%`;
  if (rtc) return; // the call's own track carries the microphone; this capture only drives the meter
  if (live) return send({ type: "session.input_audio.append", audio: pcm16ToBase64(new Int16Array(msg.pcm)) });
  const streaming = $("turn").value === "server_vad" || pttDown;
  if (streaming) send({ type: "input_audio_buffer.append", audio: pcm16ToBase64(new Int16Array(msg.pcm)) });
}

function pttStart() {
  if (!ws && !rtc) return;
  pttDown = true;
  $("ptt").classList.add("active");
  interrupt({ cancel: true });
}

function pttEnd() {
  if (!pttDown) return;
  pttDown = false;
  $("ptt").classList.remove("active");
  send({ type: "input_audio_buffer.commit" });
  send({ type: "response.create" });
}

// -- text and tools -----------------------------------------------------------------------------

function sendText(e) {
  e.preventDefault();
  const text = $("text-input").value.trim();
  if (!text) return;
  if (live) {
    // Responses: the backend model answers; client: the text comes back here as a card to answer
    $("text-input").value = "";
    for (const event of typedTextEvents(text, liveDelegation)) send(event);
    return;
  }
  interrupt({ cancel: true });
  send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text }] } });
  send({ type: "response.create" });
  $("text-input").value = "";
}

function sendToolResult(callId, output) {
  if (live) {
    send({ type: "response.item.create", item: { type: "function_call_output", call_id: callId, output } });
    send({ type: "response.create" });
    return;
  }
  send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: callId, output } });
  send({ type: "response.create" });
}

function sendDelegationAnswer(card, content) {
  send(answerEvent(card, content));
}

// -- rendering ----------------------------------------------------------------------------------

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    if (live || state.version !== lastRendered) render();
  });
}

function prettyArgs(args) {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args || "";
  }
}

function entryNode(entry) {
  let node = entryNodes.get(entry.id);
  if (node) return node;
  if (entry.kind === "tool_call" || entry.kind === "delegation") {
    const delegation = entry.kind === "delegation";
    const result = el("textarea", { className: "tool-result", rows: 2,
      placeholder: delegation ? "the answer the voice model should say" : "result (JSON or text)" });
    const button = el("button", { type: "button", className: "tool-send" }, delegation ? "Send answer" : "Send result");
    button.addEventListener("click", () => {
      if (!result.value.trim()) return;
      if (delegation) sendDelegationAnswer(entry, result.value.trim());
      else sendToolResult(entry.callId, result.value.trim());
      button.disabled = true;
    });
    node = el("li", { className: "entry tool-card" },
      el("div", { className: "tool-head" }, delegation ? "Delegated to you " : "Tool call ", el("code", { className: "tool-name" }), " ",
        el("small", { className: "tool-call-id" })),
      el("pre", { className: "tool-args" }),
      el("div", { className: "tool-answer" }, result, button),
      el("pre", { className: "tool-output", hidden: true }));
  } else {
    node = el("li", { className: "entry" }, el("span", { className: "who" }), el("span", { className: "text" }));
  }
  node.dataset.role = entry.role;
  node.dataset.kind = entry.kind;
  entryNodes.set(entry.id, node);
  $("transcript").append(node);
  return node;
}

function renderEntry(entry) {
  const node = entryNode(entry);
  node.dataset.status = entry.status;
  if (entry.kind === "tool_call" || entry.kind === "delegation") {
    node.querySelector(".tool-name").textContent = entry.name || (entry.kind === "delegation" ? "(the last turn)" : "…");
    node.querySelector(".tool-call-id").textContent = entry.callId || entry.delegationId || "";
    node.querySelector(".tool-args").textContent = prettyArgs(entry.arguments);
    const out = node.querySelector(".tool-output");
    if (entry.output !== undefined) {
      out.hidden = false;
      out.textContent = `→ ${entry.output}`;
      node.querySelector(".tool-answer").hidden = true;
    }
    return;
  }
  const who = { user: entry.kind === "voice" ? "You (voice)" : "You", assistant: "Assistant",
    system: entry.kind === "error" ? "Server error" : "System" };
  node.querySelector(".who").textContent = who[entry.role] || entry.role;
  if (entry.kind === "error") {
    node.querySelector(".text").textContent = entry.count > 1 ? `${entry.text} ×${entry.count}` : entry.text;
    return;
  }
  if (entry.status === "interrupted") {
    // what was heard, marked: the rest of the reply was never played
    node.querySelector(".text").textContent = heardText(entry);
    node.querySelector(".text").title = `interrupted after ${(entry.heardMs / 1000).toFixed(1)} s: ${entry.text}`;
    return;
  }
  node.querySelector(".text").textContent = entry.text || (entry.kind === "voice" ? "…" : "");
}

function money(v) {
  return v === null || v === undefined ? "n/a" : `$${v.toFixed(6)}`;
}

/** Renders into a scrolling list, then keeps it at its end if it was there (the reader scrolled up: left alone). */
function following(box, renderInto) {
  const atEnd = isScrolledToEnd(box);
  renderInto();
  if (atEnd) box.scrollTop = box.scrollHeight;
}

function renderLive() {
  following($("transcript"), () => live.entries.forEach(renderEntry));
  $("live-seconds").textContent = String(live.seconds);
  $("live-voice-cost").textContent = money(live.voiceCost);
  $("live-tokens").textContent = String(live.delegatedTokens);
  renderLog(live.log);
}

function renderLog(log) {
  // follow new events, unless the reader scrolled up to look at older ones
  following($("event-log"), () => renderLogLines(log));
}

function renderLogLines(log) {
  const filter = $("log-filter").value.trim().toLowerCase();
  const lines = log.filter((l) => !filter || l.type.toLowerCase().includes(filter)).slice(-LOG_LINES_SHOWN);
  $("event-log").replaceChildren(...lines.map((l) => {
    const details = el("details", { className: "log-entry", dataset: { direction: l.direction, type: l.type } },
      el("summary", {}, el("span", { className: "log-dir" }, l.direction === "client" ? "↑" : "↓"), " ",
        el("span", { className: "log-type" }, l.type),
        l.count > 1 ? el("span", { className: "log-count" }, ` ×${l.count}`) : ""),
      el("pre", {}, JSON.stringify(l.event, null, 2)));
    return el("li", {}, details);
  }));
}

function render() {
  if (live) return renderLive();
  lastRendered = state.version;
  following($("transcript"), () => state.entries.forEach(renderEntry));

  // each response, and each input transcription (billed apart, at its model's rates), as it ended
  let n = 0;
  const rows = state.billed.map((r) => {
    const s = r.split || {};
    const transcription = r.kind === "transcription";
    return el("tr", { dataset: { status: r.status, kind: r.kind }, title: transcription ? `input transcription (${r.model || "?"})` : "" },
      el("td", {}, transcription ? "tr" : String(++n)), el("td", {}, r.status),
      el("td", {}, String(s.input_text ?? "")),
      el("td", {}, r.seconds !== null && r.seconds !== undefined ? `${r.seconds} s` : String(s.input_audio ?? "")),
      el("td", {}, String((s.cached_text ?? 0) + (s.cached_audio ?? 0))),
      el("td", {}, String(s.output_text ?? "")), el("td", {}, String(s.output_audio ?? "")),
      el("td", {}, money(r.cost)));
  });
  $("usage-table").tBodies[0].replaceChildren(...rows);
  $("session-cost").textContent = !state.price ? "n/a (no price for this model)"
    : state.unpriced ? `${money(state.totalCost)} + ${state.unpriced} unpriced` : money(state.totalCost);
  $("session-tokens").textContent = String(state.totalTokens);
  renderLog(state.log);
}

// -- start-up -----------------------------------------------------------------------------------

function init() {
  const key = loadKey();
  if (key) $("key").value = key;
  $("tools").value = JSON.stringify(EXAMPLE_TOOLS, null, 2);
  document.body.dataset.turn = $("turn").value;
  document.body.dataset.api = $("api").value;
  $("api").addEventListener("change", () => {
    document.body.dataset.api = $("api").value;
    fillModels();
  });
  const onDelegation = () => {
    document.body.dataset.delegation = $("delegation").value;
    $("delegation-help").textContent = DELEGATION_HELP[$("delegation").value] || "";
  };
  onDelegation();
  $("delegation").addEventListener("change", onDelegation);
  showTransportNote();
  $("transport").addEventListener("change", showTransportNote);
  $("listener").addEventListener("change", showListenerUrl);
  showKeyHint();
  $("model").addEventListener("change", onModelChange);
  $("key").addEventListener("change", () => {
    saveKey($("key").value.trim());
    showKeyHint();
    loadServerInfo();
  });
  $("connect").addEventListener("click", connect);
  $("disconnect").addEventListener("click", disconnect);
  $("apply").addEventListener("click", applySettings);
  $("tools").addEventListener("input", validateTools);
  $("turn").addEventListener("change", () => {
    document.body.dataset.turn = $("turn").value;
    $("ptt").disabled = !ws || $("turn").value !== "push_to_talk";
  });
  $("text-form").addEventListener("submit", sendText);
  $("mic").addEventListener("click", startMic);
  $("ptt").addEventListener("pointerdown", pttStart);
  $("ptt").addEventListener("pointerup", pttEnd);
  $("ptt").addEventListener("pointerleave", pttEnd);
  $("log-filter").addEventListener("input", () => render());
  loadServerInfo();
}

window.rtproxyPlayground = { state: () => state, live: () => live, chunkMs: CHUNK_MS, rtcStats };
init();
