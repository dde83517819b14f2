"""Prometheus metrics after real sessions, read back with prometheus-client's own text parser:
the counts match the spend log; admin keys only on the main port; a scraper's port of its own;
whole figures across `--workers`."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ADMIN_KEY, USER_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, text_turn, ws_connect


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(got: dict[tuple[str, Any], float], name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in got.items() if n == name and all(dict(lbl).get(k) == x for k, x in labels.items()))


async def scrape(server: RunningServer, key: str = ADMIN_KEY) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(server.http + "/metrics", headers={"Authorization": f"Bearer {key}"})


async def test_metrics_after_real_sessions_match_the_spend_log(server: RunningServer) -> None:
    for listener in ("realtime", "main"):
        async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
            await text_turn(ws)
            if listener == "realtime":  # a session still open shows as open, by listener
                got = samples((await scrape(server)).text)
                assert total(got, "rtproxy_sessions_open", listener="realtime", api="realtime") == 1
    with trio.fail_after(10):
        while sum(r["record"] == "session" for r in server.records()) < 2:
            await trio.sleep(0.02)
    response = await scrape(server)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    records = server.records()
    responses = [r for r in records if r["record"] == "response"]
    assert total(got, "rtproxy_sessions_open") == 0
    assert total(got, "rtproxy_sessions_ended_total", status="success", closed_by="client") == 2
    assert total(got, "rtproxy_responses_total", status="completed", model="gpt-realtime") == len(responses) == 2
    assert total(got, "rtproxy_spend_usd_total", key="user") == pytest.approx(sum(r["cost_usd"] for r in responses))
    out_text = sum(r["usage"]["output_token_details"]["text_tokens"] for r in responses)
    assert total(got, "rtproxy_tokens_total", key="user", modality="output_text") == out_text
    assert total(got, "rtproxy_frames_total", direction="client_to_upstream") >= 6  # update, item, create ×2
    assert total(got, "rtproxy_bytes_total", direction="upstream_to_client") > 1000
    assert total(got, "rtproxy_upstream_connect_seconds_count", provider="local") == 2
    assert total(got, "rtproxy_spend_log_write_failures_total") == 0
    assert total(got, "rtproxy_state_store_errors_total") == 0
    assert USER_KEY not in response.text and ADMIN_KEY not in response.text


async def test_metrics_are_for_admin_keys_on_the_main_port(server: RunningServer) -> None:
    assert (await scrape(server, USER_KEY)).status_code == 403
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http + "/metrics")).status_code == 401


async def test_a_scraper_port_of_its_own_needs_no_key_and_serves_only_metrics(nursery: trio.Nursery,
                                                                             tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={"metrics_port": 0}))
    port = srv.gateway.metrics_port
    assert port
    async with httpx.AsyncClient() as http:
        ok = await http.get(f"http://127.0.0.1:{port}/metrics")
        missing = await http.get(f"http://127.0.0.1:{port}/spend/logs")
    assert ok.status_code == 200 and "rtproxy_sessions_open" in ok.text
    assert missing.status_code == 404
    srv.stop.set()


async def test_metrics_are_whole_across_worker_processes(tmp_path: Path) -> None:
    from .test_processes import BIN, free_port, server_process, write_config

    port, rt_port = free_port(), free_port()
    cfg = write_config(tmp_path, port, rt_port)
    argv = [str(BIN / "rtproxy"), "serve", "--config", str(cfg), "--workers", "2"]
    async with server_process(argv, tmp_path, port) as proc:
        for _ in range(6):  # spread over both workers by the kernel (SO_REUSEPORT)
            async with ws_connect(f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime",
                                  headers=auth_headers(USER_KEY)) as ws:
                await text_turn(ws)
        with trio.fail_after(10):
            while sum(json.loads(line)["record"] == "session"
                      for line in (tmp_path / "spend.jsonl").read_text().splitlines()) < 6:
                await trio.sleep(0.05)
        async with httpx.AsyncClient() as http:
            seen = set()
            for _ in range(8):  # whichever worker answers, the figures are the sum of both
                r = await http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
                got = samples(r.text)
                seen.add(total(got, "rtproxy_sessions_ended_total"))
                assert total(got, "rtproxy_responses_total") == 6
        assert seen == {6.0}
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            await proc.wait()
    leftovers = [p for p in (tmp_path / ".rtproxy").glob("prometheus-*")] if (tmp_path / ".rtproxy").exists() else []
    assert leftovers == []  # the run's metrics directory is removed when it stops
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None  # the test process was never in that mode


async def test_the_time_to_first_audio_is_observed_once_per_spoken_reply(server: RunningServer) -> None:
    from .helpers import events_until, send_event, user_text

    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"]}})
        for text in ("Hello there", "And again"):
            await send_event(ws, user_text(text))
            await send_event(ws, {"type": "response.create"})
            await events_until(ws, "response.done")
    got = samples((await scrape(server)).text)
    assert total(got, "rtproxy_time_to_first_audio_seconds_count", model="gpt-realtime") == 2
    assert 0 < total(got, "rtproxy_time_to_first_audio_seconds_sum", model="gpt-realtime") < 10
