"""The Vertex AI provider's credentials (issue #27): a real google-auth service account, signed
with a throwaway key, against a fake token endpoint on loopback that checks the assertion the way
Google does. Tokens are fetched at start-up, refreshed ahead of expiry (a fake wall clock; trio's
MockClock for ``maintain``), failures are one clear line naming the model, and no secret reaches
an error, a log line or a repr."""

from __future__ import annotations

import datetime
import itertools
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from rtproxy.config import ModelConfig
from rtproxy.providers import vertex
from rtproxy.providers.base import LocalEndpoint, RealtimeRequest, Unsupported
from rtproxy.providers.vertex import REFRESH_AHEAD_S, VertexProvider

from .fake_google import (
    CLOUD_PLATFORM,
    LIVE_PATH,
    TOKEN_AUDIENCE,
    FakeTokenEndpoint,
    ServiceAccount,
    fake_token_endpoint,
    write_service_account,
)

LOCAL = LocalEndpoint(url=None, secret="s")


def vertex_model(sa: ServiceAccount | Path | None, *, location: str = "us-central1", name: str = "vx",
                 api_base: str | None = None) -> ModelConfig:
    path = sa.path if isinstance(sa, ServiceAccount) else sa
    return ModelConfig(name, "vertex", upstream_model="gemini-live-2.5-flash", project="proj", location=location,
                       credentials_file=None if path is None else str(path), api_base=api_base)


@pytest.fixture
def endpoint() -> Iterator[FakeTokenEndpoint]:
    with fake_token_endpoint() as fake:
        yield fake
    assert fake.rejected == []  # every assertion google-auth signed passed Google's checks


@pytest.fixture
def account(tmp_path: Path, endpoint: FakeTokenEndpoint) -> ServiceAccount:
    sa = write_service_account(tmp_path / "sa.json", endpoint.url)
    endpoint.accept(sa)
    return sa


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """The provider's wall clock, moved by hand: ``clock(s)`` moves it ``s`` seconds on."""
    offset = [0.0]
    monkeypatch.setattr(vertex, "_now", lambda: time.time() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds
    return advance


def header(target: Any, name: str) -> str | None:
    return next((v for k, v in target.headers if k.lower() == name.lower()), None)


def assert_no_secret(text: str, sa: ServiceAccount, endpoint: FakeTokenEndpoint) -> None:
    key_body = "".join(sa.private_key_pem.splitlines()[1:-1])
    assert "PRIVATE KEY" not in text and key_body[:40] not in text and key_body[-40:] not in text
    assert "ya29." not in text and "eyJ" not in text
    assert all(token not in text for token in endpoint.issued)


async def test_prepare_fetches_a_token_with_the_service_account_and_the_target_carries_it(
        endpoint: FakeTokenEndpoint, account: ServiceAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-proj")
    provider, model = VertexProvider(), vertex_model(account)
    with pytest.raises(Unsupported, match="no Vertex AI access token for model 'vx' yet"):
        provider.realtime_target(model, RealtimeRequest(), LOCAL)
    await provider.prepare(model)
    (claims,) = endpoint.claims
    assert claims["iss"] == account.client_email and claims["scope"] == CLOUD_PLATFORM
    assert claims["aud"] == TOKEN_AUDIENCE
    (token,) = endpoint.issued
    target = provider.realtime_target(model, RealtimeRequest(), LOCAL)
    assert target.url == target.api_base == "wss://us-central1-aiplatform.googleapis.com" + LIVE_PATH
    assert header(target, "Authorization") == f"Bearer {token}" and token.startswith("ya29.test-")
    assert header(target, "x-goog-user-project") == "billing-proj"  # the quota project google-auth reads
    assert target.provider == "vertex"
    assert provider.setup_model(model) == \
        "projects/proj/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
    # a fresh token is not fetched again, and the secret is in no repr
    await provider.prepare(model)
    assert len(endpoint.issued) == 1
    assert token not in repr(target) and token not in repr(provider._tokens)


async def test_the_host_follows_the_location_and_api_base_replaces_it(
        tmp_path: Path, endpoint: FakeTokenEndpoint) -> None:
    sa = write_service_account(tmp_path / "sa.json", endpoint.url)
    endpoint.accept(sa)
    provider = VertexProvider()
    glob, europe, fake = (vertex_model(sa, location="global"), vertex_model(sa, location="europe-west4"),
                          vertex_model(sa, api_base="http://127.0.0.1:9/"))
    for model in (glob, europe, fake):
        await provider.prepare(model)
    assert len(endpoint.issued) == 1  # models with the same credentials share one token
    assert provider.realtime_target(glob, RealtimeRequest(), LOCAL).url == \
        "wss://aiplatform.googleapis.com" + LIVE_PATH
    assert provider.realtime_target(europe, RealtimeRequest(), LOCAL).url == \
        "wss://europe-west4-aiplatform.googleapis.com" + LIVE_PATH
    target = provider.realtime_target(fake, RealtimeRequest(), LOCAL)
    assert target.url == "ws://127.0.0.1:9" + LIVE_PATH
    # no quota project: no x-goog-user-project (a service account bills its own project; Google's SDK does the same)
    assert header(target, "x-goog-user-project") is None
    assert provider.setup_model(glob) == "projects/proj/locations/global/publishers/google/models/gemini-live-2.5-flash"


async def test_a_token_within_refresh_ahead_of_its_expiry_is_refreshed(
        endpoint: FakeTokenEndpoint, account: ServiceAccount, clock: Callable[[float], None]) -> None:
    provider, model = VertexProvider(), vertex_model(account)
    await provider.prepare(model)
    clock(3600 - REFRESH_AHEAD_S - 5)  # not yet due
    await provider.prepare(model)
    assert len(endpoint.issued) == 1
    clock(10)  # now within REFRESH_AHEAD_S of the expiry
    await provider.prepare(model)
    assert len(endpoint.issued) == 2
    assert header(provider.realtime_target(model, RealtimeRequest(), LOCAL), "Authorization") == \
        f"Bearer {endpoint.issued[1]}"


async def test_a_short_lived_token_is_refreshed_at_half_its_life(
        endpoint: FakeTokenEndpoint, account: ServiceAccount, clock: Callable[[float], None]) -> None:
    endpoint.expires_in = 200  # shorter than REFRESH_AHEAD_S: not refreshed in a loop
    provider, model = VertexProvider(), vertex_model(account)
    await provider.prepare(model)
    await provider.prepare(model)
    clock(95)
    await provider.prepare(model)
    assert len(endpoint.issued) == 1
    clock(10)
    await provider.prepare(model)
    assert len(endpoint.issued) == 2


def test_google_auths_naive_utc_expiry_is_read_as_utc_whatever_the_local_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    aware = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    try:
        naive = aware.replace(tzinfo=None)
        assert naive.timestamp() != aware.timestamp()  # the trap: naive means local time to Python
        assert vertex.expiry_timestamp(naive, 0.0) == aware.timestamp()
        assert vertex.expiry_timestamp(aware, 0.0) == aware.timestamp()
        assert vertex.expiry_timestamp(None, 1000.0) == 1000.0 + vertex.DEFAULT_LIFETIME_S
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


async def test_the_expiry_google_auth_reports_is_an_hour_from_now_in_a_zone_west_of_utc(
        endpoint: FakeTokenEndpoint, account: ServiceAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    try:
        provider, model = VertexProvider(), vertex_model(account)
        await provider.prepare(model)
        (held,) = provider._tokens.values()
        assert held.expires_at - time.time() == pytest.approx(3600, abs=30)
        assert held.refresh_at - time.time() == pytest.approx(3600 - REFRESH_AHEAD_S, abs=30)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


async def test_a_refused_assertion_is_one_line_naming_the_model_and_the_cause_with_no_secret(
        endpoint: FakeTokenEndpoint, account: ServiceAccount) -> None:
    endpoint.fail = 400
    provider, model = VertexProvider(), vertex_model(account, name="vertex-live")
    with pytest.raises(Unsupported) as caught:
        await provider.prepare(model)
    message = str(caught.value)
    assert message.startswith("cannot get a Vertex AI access token for model 'vertex-live' "
                              f"(service account file {account.path}): ")
    assert "invalid_grant" in message and "\n" not in message
    assert_no_secret(message, account, endpoint)
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # google-auth's error is not kept


async def test_an_unreachable_or_silent_token_endpoint_fails_within_the_timeout(
        tmp_path: Path, endpoint: FakeTokenEndpoint, account: ServiceAccount,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    nowhere = write_service_account(tmp_path / "nowhere.json", f"http://127.0.0.1:{closed}/token")
    provider = VertexProvider()
    with pytest.raises(Unsupported, match=r"for model 'vx' .*TransportError") as caught:
        await provider.prepare(vertex_model(nowhere))
    assert_no_secret(str(caught.value), nowhere, endpoint)

    monkeypatch.setattr(vertex, "TOKEN_TIMEOUT_S", 0.5)
    endpoint.hang = True
    started = trio.current_time()
    with pytest.raises(Unsupported, match=r"for model 'vx' .*: no answer within 0.5 s$"):
        await provider.prepare(vertex_model(account))
    assert trio.current_time() - started < 5
    endpoint.release.set()


@pytest.mark.parametrize("problem", ["missing", "not-json", "not-a-service-account", "bad-key"])
async def test_a_credentials_file_that_cannot_be_used_names_the_file_and_not_its_key(
        tmp_path: Path, endpoint: FakeTokenEndpoint, problem: str) -> None:
    sa = write_service_account(tmp_path / "sa.json", endpoint.url)
    text = sa.path.read_text()
    if problem == "missing":
        sa.path.unlink()
    elif problem == "not-json":
        sa.path.write_text(sa.private_key_pem)  # the key pasted alone
    elif problem == "not-a-service-account":
        sa.path.write_text(text.replace('"client_email"', '"email"'))
    else:  # the key mangled
        sa.path.write_text(text.replace(sa.private_key_pem.splitlines()[5], "A" * 64))
    with pytest.raises(Unsupported) as caught:
        await VertexProvider().prepare(vertex_model(sa))
    message = str(caught.value)
    assert message.startswith(f"cannot get a Vertex AI access token for model 'vx' (service account file {sa.path}): ")
    assert "\n" not in message and len(message) < 500
    assert_no_secret(message, sa, endpoint)
    expected = {"missing": f"{sa.path}: No such file or directory", "not-json": "JSONDecodeError",
                "not-a-service-account": "client_email", "bad-key": "ValueError"}[problem]
    assert expected in message
    assert endpoint.requests == 0


async def test_application_default_credentials_come_from_google_application_credentials(
        endpoint: FakeTokenEndpoint, account: ServiceAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account.path))
    provider, model = VertexProvider(), vertex_model(None)
    await provider.prepare(model)
    (token,) = endpoint.issued
    assert header(provider.realtime_target(model, RealtimeRequest(), LOCAL), "Authorization") == f"Bearer {token}"

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account.path.with_name("gone.json")))
    with pytest.raises(Unsupported, match=r"for model 'vx' \(Application Default Credentials\): "
                                          r"DefaultCredentialsError: .*gone.json"):
        await provider.prepare(model)


def test_scrub_removes_what_looks_like_a_secret() -> None:
    text = ("key -----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n, "
            "token ya29.a0AfH6SMB-xyz_123, assertion eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln, "
            "refresh 1//0gabcdefghijklmnop, known s3cr3t-value\nsecond line")
    out = vertex.scrub(text, "s3cr3t-value")
    assert out == ("key [redacted]\\n, token [redacted], assertion [redacted], refresh [redacted], "
                   "known [redacted] second line")
    assert vertex.scrub("-----BEGIN RSA PRIVATE KEY-----\nMIIE truncated") == "[redacted]"
    missing = ModuleNotFoundError("No module named 'google'", name="google")
    assert vertex.describe(missing) == "google-auth is not installed (pip install 'google-auth[requests]')"
    # google-auth's errors: the message, not the response data after it
    data = {"error": "invalid_grant", "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"}
    assert vertex.describe(ValueError("invalid_grant: bad", data)) == "ValueError: invalid_grant: bad"


@pytest.fixture
def mock_wall(endpoint: FakeTokenEndpoint, monkeypatch: pytest.MonkeyPatch,
              autojump_clock: trio.testing.MockClock) -> tuple[float, list[float]]:
    """trio's MockClock drives ``maintain``; the wall clock (the provider's, google-auth's, the
    token endpoint's) follows it. The fetch runs inline: in a worker thread, the autojump clock
    would leap to the fetch's timeout while the thread works. Gives the wall clock at trio time
    0, and the trio time of every fetch. (A test using it names ``autojump_clock`` itself too:
    pytest-trio takes the clock from the test's own arguments.)"""
    import google.auth._helpers

    start = time.time()
    monkeypatch.setattr(vertex, "_now", lambda: start + trio.current_time())
    at_fetch = [start]  # the wall clock during a fetch (read from google-auth's and the endpoint's threads)
    monkeypatch.setattr(google.auth._helpers, "utcnow", lambda: datetime.datetime.fromtimestamp(
        at_fetch[0], datetime.UTC).replace(tzinfo=None))
    endpoint.now = lambda: at_fetch[0]
    fetch_times: list[float] = []

    async def inline(fn: Callable[..., Any], *args: Any, abandon_on_cancel: bool = False) -> Any:
        fetch_times.append(trio.current_time())
        at_fetch[0] = start + trio.current_time()
        return fn(*args)
    monkeypatch.setattr(trio.to_thread, "run_sync", inline)
    return start, fetch_times


async def test_maintain_refreshes_ahead_of_expiry_and_keeps_the_old_token_through_failures(
        endpoint: FakeTokenEndpoint, account: ServiceAccount, mock_wall: tuple[float, list[float]],
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    start, fetch_times = mock_wall
    caplog.set_level(logging.INFO, logger="rtproxy.providers")

    provider, model = VertexProvider(), vertex_model(account)
    await provider.prepare(model)
    expires = provider._tokens[f"file:{account.path}"].expires_at - start  # ≈ 3600 (trio seconds)

    def bearer() -> str | None:
        return header(provider.realtime_target(model, RealtimeRequest(), LOCAL), "Authorization")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(provider.maintain, model)
        while len(endpoint.issued) < 2:
            await trio.sleep(1)
        # refreshed REFRESH_AHEAD_S before the expiry, not before
        assert expires - REFRESH_AHEAD_S <= fetch_times[1] <= expires - REFRESH_AHEAD_S + 1
        assert bearer() == f"Bearer {endpoint.issued[1]}"
        expires = provider._tokens[f"file:{account.path}"].expires_at - start

        # the token endpoint starts refusing: the old token serves until it expires
        endpoint.fail = 400
        while len(endpoint.claims) < 3:
            await trio.sleep(1)
        assert bearer() == f"Bearer {endpoint.issued[1]}"
        await trio.sleep_until(expires - vertex.EXPIRY_MARGIN_S - 1)
        assert bearer() == f"Bearer {endpoint.issued[1]}"
        await trio.sleep(2)
        with pytest.raises(Unsupported, match="has expired and could not be refreshed"):
            bearer()
        # the retries back off: 10, 20, 40, then every 60 s
        gaps = [b - a for a, b in itertools.pairwise(fetch_times[2:])]
        assert gaps[:4] == pytest.approx([10, 20, 40, 60], abs=0.01) and max(gaps) <= 60.01

        refused = len(endpoint.claims)
        while len(endpoint.claims) == refused:  # one more refusal, with no token left
            await trio.sleep(1)

        # it answers again: the next retry gets a token, and sessions are served again
        endpoint.fail = None
        while len(endpoint.issued) < 3:
            await trio.sleep(1)
        await trio.testing.wait_all_tasks_blocked()
        assert bearer() == f"Bearer {endpoint.issued[2]}"
        nursery.cancel_scope.cancel()

    messages = [r.getMessage() for r in caplog.records if r.name == "rtproxy.providers"]
    failures = [m for m in messages if "cannot get a Vertex AI access token for model 'vx'" in m]
    assert failures and all("invalid_grant" in m for m in failures)
    assert any("the current token expires in" in m for m in failures)
    assert any("sessions on model 'vx' are refused meanwhile" in m for m in failures)
    assert sum("refreshed the Vertex AI access token for model 'vx'" in m for m in messages) == 2
    for record in caplog.records:
        assert_no_secret(record.getMessage(), account, endpoint)


async def test_models_sharing_credentials_share_one_refresh_and_one_failure_report(
        endpoint: FakeTokenEndpoint, account: ServiceAccount, mock_wall: tuple[float, list[float]],
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    _start, fetch_times = mock_wall
    caplog.set_level(logging.INFO, logger="rtproxy.providers")
    provider = VertexProvider()
    models = [vertex_model(account, name="a"), vertex_model(account, name="b", location="global")]
    for model in models:
        await provider.prepare(model)
    async with trio.open_nursery() as nursery:
        for model in models:
            nursery.start_soon(provider.maintain, model)
        while len(endpoint.issued) < 2:
            await trio.sleep(1)
        endpoint.fail = 400
        await trio.sleep(3400)  # past the next refresh, with its retries
        nursery.cancel_scope.cancel()
    assert len(fetch_times) == len(set(fetch_times))  # never two fetches at once for one key
    messages = [r.getMessage() for r in caplog.records if r.name == "rtproxy.providers"]
    assert sum("refreshed the Vertex AI access token" in m for m in messages) == 1
    failures = [m for m in messages if "cannot get a Vertex AI access token" in m]
    assert len(failures) == len(endpoint.claims) - 2  # one line per refused fetch, whichever model tried
    assert len(failures) >= 4
