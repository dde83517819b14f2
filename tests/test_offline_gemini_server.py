"""The offline model's Gemini Live front-end through its server (serve_offline_model), with a real
WebSocket client on a loopback socket: Google's paths and credentials, binary frames, a turn
streamed at the model's pace, and a connection limit's goAway, close and resumption. Time is
trio's mock clock: the connection limit passes without waiting for it."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from rtproxy.offline.server import serve_offline_model

from .test_offline_gemini import MODEL

SECRET = "local-secret-0123456789"
PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
#: The connection limit of these tests' server (goAway half of it before: 10 s).
LIMIT_S = 20.0


@pytest.fixture
async def port(nursery: trio.Nursery) -> int:
    return await nursery.start(functools.partial(serve_offline_model, "127.0.0.1", 0, SECRET, 0.01, speech="off",
                                                 gemini_connection_limit_s=LIMIT_S))


@asynccontextmanager
async def connect(port: int, *, version: str = "v1beta", key: str | None = SECRET, in_query: bool = False,
                  path: str | None = None) -> AsyncIterator[WebSocketConnection]:
    url = f"ws://127.0.0.1:{port}{path or PATH.format(version=version)}"
    headers = []
    if key is not None and in_query:
        url += f"?key={key}"
    elif key is not None:
        headers.append((b"x-goog-api-key", key.encode()))
    async with open_websocket_url(url, extra_headers=headers, max_message_size=2**20) as ws:
        yield ws


async def send(ws: WebSocketConnection, message: dict[str, Any]) -> None:
    await ws.send_message(json.dumps(message))


async def receive(ws: WebSocketConnection) -> dict[str, Any]:
    message = await ws.get_message()
    assert isinstance(message, bytes)  # binary frames of UTF-8 JSON, as Google sends them
    frame: dict[str, Any] = json.loads(message.decode())
    return frame


async def until(ws: WebSocketConnection, key: str) -> list[dict[str, Any]]:
    """Frames up to the first with ``key`` (a server message kind or a serverContent field)."""
    frames = []
    while True:
        frame = await receive(ws)
        frames.append(frame)
        if key in frame or key in frame.get("serverContent", {}):
            return frames


async def closed(ws: WebSocketConnection) -> tuple[int, str | None]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await receive(ws)
    return info.value.reason.code, info.value.reason.reason


@pytest.mark.parametrize("version, in_query, path", [
    ("v1beta", False, None), ("v1", False, None), ("v1alpha", True, None),
    ("v1beta", False, "//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"),
])
async def test_a_text_turn_on_each_of_googles_paths_with_either_credential(
        port: int, autojump_clock: trio.testing.MockClock, version: str, in_query: bool, path: str | None) -> None:
    async with connect(port, version=version, in_query=in_query, path=path) as ws:
        await send(ws, {"setup": {"model": MODEL, "generation_config": {"response_modalities": ["TEXT"]}}})
        assert await receive(ws) == {"setupComplete": {}}
        await send(ws, {"realtime_input": {"text": "Hello"}})
        frames = await until(ws, "turnComplete")
        text = "".join(p["text"] for f in frames for p in f["serverContent"].get("modelTurn", {}).get("parts", []))
        assert text == "You said: Hello"
        assert frames[-2] == {"serverContent": {"generationComplete": True}}


@pytest.mark.parametrize("key, in_query", [("wrong", False), ("wrong", True), (None, False)])
async def test_a_wrong_or_missing_key_is_answered_with_a_close_1008_like_google(
        port: int, autojump_clock: trio.testing.MockClock, key: str | None, in_query: bool) -> None:
    async with connect(port, key=key, in_query=in_query) as ws:  # the handshake succeeds
        await send(ws, {"setup": {"model": MODEL}})
        assert await closed(ws) == (1008, "API key not valid. Please pass a valid API key.")


async def test_an_unknown_path_is_refused_before_the_upgrade(port: int, autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(ConnectionRejected) as refused:
        async with connect(port, path="/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent"):
            pass
    assert refused.value.status_code == 404


async def test_refusals_close_with_googles_codes(port: int, autojump_clock: trio.testing.MockClock) -> None:
    async with connect(port) as ws:
        await send(ws, {"setup": {"model": "gemini-live-2.5-flash"}})
        code, reason = await closed(ws)
        assert code == 1008 and reason == ("gemini-live-2.5-flash is not found for API version v1beta, or is not "
                                           "supported for bidiGenerateContent.")
    async with connect(port) as ws:
        await send(ws, {"setup": {"model": MODEL}})
        assert await receive(ws) == {"setupComplete": {}}
        await send(ws, {"setup": {"model": MODEL}})
        assert await closed(ws) == (1007, "Request contains an invalid argument.")
    async with connect(port) as ws:
        await send(ws, {"setup": {"model": MODEL, "session_resumption": {"handle": "nobody"}}})
        assert await closed(ws) == (1008, "BidiGenerateContent session not found")


async def test_a_spoken_turn_is_streamed_at_the_models_pace(port: int, autojump_clock: trio.testing.MockClock) -> None:
    async with connect(port) as ws:
        await send(ws, {"setup": {"model": MODEL, "outputAudioTranscription": {}}})
        await receive(ws)
        start = trio.current_time()
        await send(ws, {"realtimeInput": {"text": "Hello"}})
        frames = await until(ws, "turnComplete")
        said = "".join(f["serverContent"]["outputTranscription"]["text"] for f in frames
                       if "outputTranscription" in f.get("serverContent", {}))
        assert said == "You said: Hello"
        assert trio.current_time() - start >= 3 * 0.01  # a word a step, one step every stream delay
        assert frames[-1]["usageMetadata"]["responseTokensDetails"][0]["modality"] == "AUDIO"


async def test_the_connection_limit_sends_go_away_closes_and_the_session_resumes_on_a_new_connection(
        port: int, autojump_clock: trio.testing.MockClock) -> None:
    setup = {"model": MODEL, "sessionResumption": {}, "generationConfig": {"responseModalities": ["TEXT"]}}
    async with connect(port) as ws:
        opened = trio.current_time()
        await send(ws, {"setup": setup})
        assert await receive(ws) == {"setupComplete": {}}
        await send(ws, {"realtimeInput": {"text": "Remember the number 42."}})
        frames = await until(ws, "turnComplete")
        update = await receive(ws)
        handle = update["sessionResumptionUpdate"]["newHandle"]
        assert update["sessionResumptionUpdate"]["resumable"] is True
        first_prompt = frames[-1]["usageMetadata"]["promptTokenCount"]
        assert await receive(ws) == {"goAway": {"timeLeft": "10s"}}
        assert trio.current_time() - opened == pytest.approx(LIMIT_S - 10, abs=0.5)
        assert await closed(ws) == (1011, "Deadline expired before operation could complete.")
        assert trio.current_time() - opened == pytest.approx(LIMIT_S, abs=0.5)
    async with connect(port) as ws:
        await send(ws, {"setup": {**setup, "sessionResumption": {"handle": handle}}})
        assert await receive(ws) == {"setupComplete": {}}
        fresh = await receive(ws)  # a new handle at once; the conversation is not replayed
        assert fresh["sessionResumptionUpdate"]["newHandle"] != handle
        await send(ws, {"realtimeInput": {"text": "Remember the number 42."}})
        frames = await until(ws, "turnComplete")
        # the earlier turn and its reply are in the prompt: "Remember the number 42." (6), its reply (9)
        assert frames[-1]["usageMetadata"]["promptTokenCount"] == first_prompt + 6 + 9
