"""xAI billed by what it charges (issue #28, the billing half): per minute of audio sent and
received plus per text item, measured by the gateway from the bytes it relayed, since xAI reports
`usage: {}`. Real servers over loopback, the offline model playing xAI, both listeners: the
record's cost is the measured minutes at xAI's rate (± one 20 ms frame) plus its text items; a
client that leaves mid-answer pays for the audio it was sent; a key over its audio minutes is
cut off mid-session."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import trio

from rtproxy.spend.pricing import database_price

from .audio_fixtures import append_events, said
from .conftest import USER_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, events_until, expect_error_then_close, send_event, user_text, ws_connect

GROK = "grok-voice-think-fast-1.0"
#: One 20 ms frame of PCM16 24 kHz, the measure's tolerance.
FRAME_MS = 20
PRICE = database_price("x-ai", GROK)


def config(tmp_path: Path, **key: Any) -> Any:
    return make_config(tmp_path, models=[{"name": "xai-voice", "provider": "local", "dialect": "xai",
                                          "upstream_model": GROK}],
                       keys=[{"name": "user", "key": USER_KEY, "models": ["xai-voice"], **key}])


def ms_of(b64_chunks: list[str]) -> float:
    return sum(len(base64.b64decode(c)) for c in b64_chunks) / 48  # PCM16 24 kHz: 48 bytes a ms


async def records(srv: RunningServer, kind: str, n: int) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while len(found := [r for r in srv.records() if r["record"] == kind]) < n:
            await trio.sleep(0.02)
    return found


def test_xais_rates_are_in_the_price_database() -> None:
    assert PRICE is not None and PRICE.audio_in_per_minute == pytest.approx(0.05)
    assert PRICE.per_text_item == pytest.approx(0.004)


async def test_a_spoken_and_a_typed_turn_cost_the_minutes_measured_and_the_text_item(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    assert PRICE is not None
    srv = await start_server(nursery, config(tmp_path))
    sent: list[str] = []
    heard: list[str] = []
    async with ws_connect(srv.ws_url(listener, query="model=xai-voice"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        for event in append_events(said("what time is it in tokyo")):
            sent.append(event["audio"])
            await send_event(ws, event)
        for event in await events_until(ws, "response.done", timeout_s=20):
            if event["type"] == "response.output_audio.delta":
                heard.append(event["delta"])
        await send_event(ws, user_text("and in paris"))
        await send_event(ws, {"type": "response.create"})
        for event in await events_until(ws, "response.done", timeout_s=20):
            if event["type"] == "response.output_audio.delta":
                heard.append(event["delta"])
    spoken, typed = await records(srv, "response", 2)
    for r in (spoken, typed):
        assert r["usage_source"] == "metered" and r["billing_unit"] == "audio_seconds+items"
        assert r["provider"] == "local" and r["upstream_model"] == GROK
        expected = (r["audio_in_ms"] + r["audio_out_ms"]) / 60_000 * 0.05 + r["text_items"] * 0.004
        assert r["cost_usd"] == pytest.approx(expected, abs=1e-9)
    # the measure is what was relayed: the audio the client sent, the audio it was sent
    assert abs(spoken["audio_in_ms"] + typed["audio_in_ms"] - ms_of(sent)) <= FRAME_MS
    assert abs(spoken["audio_out_ms"] + typed["audio_out_ms"] - ms_of(heard)) <= FRAME_MS
    assert (spoken["text_items"], typed["text_items"]) == (0, 1)
    (session,) = await records(srv, "session", 1)
    billed = sum(r["cost_usd"] for r in srv.records() if r["record"] in ("response", "usage", "transcription"))
    assert session["cost_usd"] == pytest.approx(billed) and billed > 0.004
    # xAI transcribes every turn unasked: included in the minutes, never priced as another model
    for t in [r for r in srv.records() if r["record"] == "transcription"]:
        assert t["cost_usd"] == 0 and t["usage_source"] == "metered"


async def test_a_client_that_leaves_mid_answer_is_billed_the_audio_relayed(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, config(tmp_path))
    heard: list[str] = []
    async with ws_connect(srv.ws_url("realtime", query="model=xai-voice"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, user_text("tell me a joke"))
        await send_event(ws, {"type": "response.create"})
        with trio.fail_after(20):
            while len(heard) < 3:
                event = await ws.get_message()
                if '"response.output_audio.delta"' in event:
                    heard.append(json.loads(event)["delta"])
    # gone mid-answer: the response is settled or estimated, and billed for what was relayed
    (response,) = await records(srv, "response", 1)
    assert response["usage_source"] == "metered"
    assert response["audio_out_ms"] >= ms_of(heard) - FRAME_MS
    assert response["cost_usd"] == pytest.approx(
        (response["audio_in_ms"] + response["audio_out_ms"]) / 60_000 * 0.05 + response["text_items"] * 0.004,
        abs=1e-9)


async def test_an_xai_session_over_its_keys_audio_minutes_is_cut_off(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, config(tmp_path, max_audio_minutes=0.02))
    async with ws_connect(srv.ws_url("realtime", query="model=xai-voice"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        for event in append_events(said("what time is it in tokyo")):
            await send_event(ws, event)
        await events_until(ws, "response.done", timeout_s=20)
        await expect_error_then_close(ws, "audio_minutes_exceeded", 4429)
    (response,) = await records(srv, "response", 1)
    assert response["audio_in_ms"] + response["audio_out_ms"] > 1200
