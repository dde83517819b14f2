"""Run by tests in a subprocess: a WebRTC client (aiortc) making a call the way OpenAI's WebRTC
guide does — an SDP offer POSTed to /v1/realtime/calls, the microphone as an Opus track, events
on the ``oai-events`` data channel — then a spoken tool request, the tool's answer, a hang-up.
Prints one JSON line with what happened.

Usage: python rtc_client.py BASE_URL KEY MODE [MODEL]
  raw        the offer as application/sdp with ?model= (a key, or an ek_ token with no model)
  multipart  the offer as multipart sdp + session (the SDKs' shape)
  offer      only the offer: print the status, headers and body the server answered
  live       a GPT-Live session over WebRTC (POST /v1/live/sessions): a spoken question, a client
             delegation answered on the data channel, billed seconds, a hang-up
"""

import asyncio
import fractions
import json
import sys
import time
from pathlib import Path

import aioice.ice
import av
import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import said

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []

RATE = 24000
FRAME = 480  # 20 ms
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


class Microphone(MediaStreamTrack):
    """Silence until :meth:`say`, then that speech, then silence; 20 ms frames at real-time pace."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.pending = bytearray()
        self.start = None
        self.pts = 0

    def say(self, pcm):
        self.pending += pcm

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.pts += FRAME
            await asyncio.sleep(max(0, self.start + self.pts / RATE - time.monotonic()))
        chunk = bytes(self.pending[:FRAME * 2]).ljust(FRAME * 2, b"\0")
        del self.pending[:FRAME * 2]
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.pts, frame.sample_rate, frame.time_base = self.pts, RATE, fractions.Fraction(1, RATE)
        return frame


async def offer_and_answer(base, key, mode, model, pc):
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=30) as http:
        if mode == "live":
            r = await http.post(f"{base}/v1/live/sessions", headers=headers, json={
                "session": {"model": model, "delegation": {"type": "client"}},
                "transport": {"type": "webrtc", "sdp": sdp}})
        elif mode == "multipart":
            session = {"type": "realtime", "model": model, "tools": [WEATHER_TOOL],
                       "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
            r = await http.post(f"{base}/v1/realtime/calls", headers=headers,
                                files={"sdp": (None, sdp, "application/sdp"),
                                       "session": (None, json.dumps(session), "application/json")})
        else:
            params = {"model": model} if model else {}
            r = await http.post(f"{base}/v1/realtime/calls", params=params, content=sdp,
                                headers={**headers, "Content-Type": "application/sdp"})
    return r


class CallEnded(Exception):
    """The other side ended the call (the gateway hung it up) before the awaited event."""


async def main(base, key, mode, model):
    pc = RTCPeerConnection()
    mic = Microphone()
    pc.addTrack(mic)
    channel = pc.createDataChannel("oai-events")
    events = []
    arrived = asyncio.Event()
    opened = asyncio.Event()
    heard_audio = {"frames": 0, "loud": 0}

    ended = asyncio.Event()

    @channel.on("open")
    def on_open():
        opened.set()

    @channel.on("close")
    def on_close():
        ended.set()
        arrived.set()

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState in ("failed", "closed"):
            ended.set()
            arrived.set()

    @channel.on("message")
    def on_message(message):
        events.append(json.loads(message))
        arrived.set()

    @pc.on("track")
    def on_track(track):
        async def play():
            try:
                while True:
                    frame = await track.recv()
                    heard_audio["frames"] += 1
                    samples = frame.to_ndarray()
                    if abs(samples).max() > 1000:
                        heard_audio["loud"] += 1
            except MediaStreamError:
                pass
        asyncio.ensure_future(play())

    r = await offer_and_answer(base, key, mode, model, pc)
    if mode == "offer" or r.status_code not in (200, 201):
        print(json.dumps({"status": r.status_code, "location": r.headers.get("location"),
                          "content_type": r.headers.get("content-type"), "body": r.text[:2000]}))
        await pc.close()
        return
    if mode == "live":
        answered = r.json()
        location = f"/v1/live/sessions/{answered['session']['id']}"
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answered["transport"]["sdp"], type="answer"))
    else:
        location = r.headers["location"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    await asyncio.wait_for(opened.wait(), 20)

    async def until(etype, after=0, timeout=30):
        """The first ``etype`` event from index ``after`` on (no await between the scan and the
        clear, so no message slips in unseen)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in events[after:]:
                if e.get("type") == etype:
                    return e
            if ended.is_set():
                raise CallEnded(etype)
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"no {etype} after event {after}; saw {[e.get('type') for e in events]}") from None

    def send(event):
        channel.send(json.dumps(event))

    if mode == "live":
        await until("session.started")
        mic.say(said("What is the weather in Paris?"))
        try:
            await live_conversation(until, send, events, heard_audio, base, key, location, pc)
        except CallEnded as exc:
            await pc.close()
            print(json.dumps({"status": r.status_code, "location": location, "ended_before": str(exc)}))
        return
    await until("session.created")
    if mode != "multipart":
        send({"type": "session.update", "session": {
            "type": "realtime", "tools": [WEATHER_TOOL],
            "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}})
        await until("session.updated")
    mic.say(said("What is the weather in Paris?"))
    try:
        await conversation(until, send, events, heard_audio, base, key, r, location, pc)
    except CallEnded as exc:
        await pc.close()
        print(json.dumps({"status": r.status_code, "location": location, "ended_before": str(exc),
                          "types": [e["type"] for e in events]}))


async def live_conversation(until, send, events, heard_audio, base, key, location, pc):
    delegation = await until("session.delegation.created", timeout=60)
    heard = "".join(e["delta"] for e in events if e["type"] == "session.input_transcript.delta")
    send({"type": "session.commentary.append", "delegation_id": delegation["delegation"]["id"],
          "content": "It is sunny in Paris."})
    appended = await until("session.commentary.appended", after=events.index(delegation))
    await until("session.usage.updated", after=events.index(appended), timeout=30)
    deadline = time.monotonic() + 20
    said_back = ""
    while "It is sunny in Paris." not in said_back and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        said_back = "".join(e["delta"] for e in events[events.index(appended):]
                            if e["type"] == "session.output_transcript.delta")
    await asyncio.sleep(1.5)  # let the voice play out on the track
    async with httpx.AsyncClient(timeout=30) as http:
        hung = await http.post(f"{base}{location}/hangup", headers={"Authorization": f"Bearer {key}"})
    await pc.close()
    print(json.dumps({
        "status": 200, "location": location, "session_id": location.rsplit("/", 1)[1], "heard": heard,
        "said": said_back.strip(), "audio_frames": heard_audio["frames"], "loud_frames": heard_audio["loud"],
        "hangup": hung.status_code, "types": sorted({e["type"] for e in events}),
    }))


async def conversation(until, send, events, heard_audio, base, key, r, location, pc):
    first = await until("response.done", timeout=60)
    heard = next((e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"), {})
    call = first["response"]["output"][0]
    send({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call["call_id"],
                                                       "output": "sunny"}})
    send({"type": "response.create"})
    done = await until("response.done", after=events.index(first) + 1, timeout=60)
    stopped = await until("output_audio_buffer.stopped", after=events.index(done) - 1, timeout=30)
    async with httpx.AsyncClient(timeout=30) as http:
        hung = await http.post(f"{base}{location}/hangup", headers={"Authorization": f"Bearer {key}"})
    await pc.close()
    print(json.dumps({
        "status": r.status_code, "location": location, "content_type": r.headers.get("content-type"),
        "transcript": heard.get("transcript"),
        "call": {"name": call.get("name"), "arguments": call.get("arguments")},
        "reply": done["response"]["output"][0]["content"][0].get("transcript"),
        "audio_frames": heard_audio["frames"], "loud_frames": heard_audio["loud"],
        "stopped": stopped.get("response_id") == done["response"]["id"], "hangup": hung.status_code,
        "types": sorted({e["type"] for e in events}),
    }))


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "gpt-realtime"))
