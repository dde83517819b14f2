"""The upstream dialed while the state store decides (relay/predial.py): a refused client leaves
no upstream connection behind, and a key just refused is not dialed early again."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionRejected

from rtproxy.auth.keys import VirtualKey
from rtproxy.server import limits as limits_module
from rtproxy.server.limits import MAX_REMEMBERED_REFUSALS, PREDIAL_AFTER_REFUSAL_S, Limits

from .conftest import LIMITED_KEY, USER_KEY, make_config
from .fakes import FakeUpstream
from .helpers import auth_headers, events_until, server_with_fake, ws_connect


async def _until(predicate: object, timeout_s: float = 5.0) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.01)


async def test_a_client_refused_after_its_predial_leaves_no_upstream_connection(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, keys=[
        {"name": "limited", "key": LIMITED_KEY, "models": ["fake"], "max_sessions": 1}])
    url = srv.ws_url(listener, query="model=fake")
    dials: list[object] = []
    real_dial = srv.gateway.dial

    dialed = trio.Event()
    real_check = srv.gateway.check_admission

    async def counted_dial(target: object) -> object:
        dials.append(target)
        try:
            return await real_dial(target)  # type: ignore[arg-type]
        finally:
            dialed.set()

    async def check_after_the_dial(*args: object, **kwargs: object) -> object:
        # deterministic order: the upstream is open before the refusal (the common case is the
        # other way round; a dial still in flight is cancelled, see the next test)
        with trio.fail_after(5):
            await dialed.wait()
        return await real_check(*args)  # type: ignore[arg-type]
    srv.gateway.dial = counted_dial  # type: ignore[method-assign]
    srv.gateway.check_admission = check_after_the_dial  # type: ignore[method-assign]
    async with ws_connect(url, headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        assert len(fake_upstream.requests) == 1
        dialed = trio.Event()
        with pytest.raises(ConnectionRejected) as info:
            async with ws_connect(url, headers=auth_headers(LIMITED_KEY)):
                pass
        assert info.value.status_code == 429 and len(dials) == 2
        # the second client's upstream was dialed while the cap was checked, then closed unused
        await _until(lambda: len(fake_upstream.closes) == 1)
        assert len(fake_upstream.requests) == 2 and fake_upstream.closes == [(1000, None)]
        assert fake_upstream.received == []  # nothing was sent on it
        # a key refused a moment ago is checked before its upstream is dialed
        with pytest.raises(ConnectionRejected):
            async with ws_connect(url, headers=auth_headers(LIMITED_KEY)):
                pass
        assert len(dials) == 2 and len(fake_upstream.requests) == 2
        assert len(srv.gateway.sessions) == 1
    records = [r for r in srv.records() if r["record"] == "session"]
    assert len(records) <= 1  # refusals write no session record; the admitted one may still be closing


async def test_a_refusal_does_not_wait_for_a_slow_predial(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    fake_upstream.accept_delay_s = 30
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, keys=[
        {"name": "b", "key": LIMITED_KEY, "models": ["fake"], "max_budget_usd": 1.0}])
    dials: list[object] = []
    real_dial = srv.gateway.dial

    async def counted_dial(target: object) -> object:
        dials.append(target)
        return await real_dial(target)  # type: ignore[arg-type]
    srv.gateway.dial = counted_dial  # type: ignore[method-assign]
    await srv.gateway.limits.store.charge("b", 2.0)  # spent, but this process has not refreshed yet
    assert srv.gateway.limits.expects_admission(srv.gateway.keys.lookup(LIMITED_KEY))
    with trio.fail_after(3), pytest.raises(ConnectionRejected) as info:
        async with ws_connect(srv.ws_url("realtime", query="model=fake"), headers=auth_headers(LIMITED_KEY)):
            pass
    assert info.value.status_code == 429 and b"budget" in info.value.body
    assert len(dials) == 1  # it was dialed, and abandoned mid-handshake (the fake holds its answer 30 s)
    assert not srv.gateway.sessions


async def test_an_unreachable_upstream_after_a_predial_is_the_clients_502(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    dead = FakeUpstream(port=sock.getsockname()[1])
    sock.close()
    srv = await server_with_fake(nursery, tmp_path, dead)
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(srv.ws_url("realtime", query="model=fake"), headers=auth_headers(USER_KEY)):
            pass
    assert info.value.status_code == 502
    assert b"Connection refused" in info.value.body  # the IP-literal connect's own error, named


def test_a_key_is_expected_in_unless_over_budget_or_refused_in_the_last_seconds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(make_config(tmp_path))
    key = VirtualKey("b", "0" * 64, ("*",), "user", max_budget_usd=1.0, max_sessions=None,
                     max_sessions_per_minute=None, store_prompts=None)
    assert limits.expects_admission(key)
    limits.spent["b"] = 1.0
    assert not limits.expects_admission(key)  # at its budget, as last refreshed
    limits.spent["b"] = 0.5
    now = [1000.0]
    monkeypatch.setattr(limits_module.time, "monotonic", lambda: now[0])
    limits._note_refusal("b")
    assert not limits.expects_admission(key)
    now[0] += PREDIAL_AFTER_REFUSAL_S - 0.01
    assert not limits.expects_admission(key)
    now[0] += 0.01
    assert limits.expects_admission(key)
    # the memory of refusals is bounded: the oldest key is forgotten first
    for i in range(MAX_REMEMBERED_REFUSALS + 1):
        limits._note_refusal(f"k{i}")
    assert len(limits._refused_at) == MAX_REMEMBERED_REFUSALS
    assert "b" not in limits._refused_at and "k0" not in limits._refused_at and "k1" in limits._refused_at
