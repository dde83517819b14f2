"""The Redis state store: the embedded store's rules as Lua scripts, exact across instances.

The client is hiredis's sans-IO RESP parser over a trio stream (TCP, or a unix socket with
``unix://``): no thread hop per call, and a call is cancelled like any trio operation. (Measured
against redis-py's blocking client offloaded to a thread: ``bench/state_store.py``; figures in
the README's Performance section.) One connection per process, one call at a time; a call that
fails, times out or is cancelled drops the connection, and the next call dials again.

Keys (``prefix`` defaults to ``rtproxy:``): ``{p}sessions:{key}`` and ``{p}sessions`` (sorted
sets: session id → lease expiry), ``{p}opens:{key}`` (sorted set of the last minute's opens),
``{p}spend:{key}`` (a float), ``{p}spend_seeded``, ``{p}blob:{name}`` (an ephemeral token's
session config, expiring with the token).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import trio

from .store import RATE_WINDOW_S, KeyLimits, Refusal, StateStoreError, refusal_for

#: Largest reply read per socket read.
RECEIVE_CHUNK_BYTES = 65536

_ADMIT = """
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[8]))
local spent = tonumber(redis.call('GET', KEYS[4]) or '0')
if ARGV[7] ~= '' and spent >= tonumber(ARGV[7]) then return 'budget_exceeded' end
if ARGV[4] ~= '' and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 'too_many_sessions' end
if ARGV[5] ~= '' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 'server_at_capacity' end
if ARGV[6] ~= '' and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return 'rate_limited' end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('EXPIRE', KEYS[3], math.ceil(tonumber(ARGV[8])) * 2)
end
return 'ok'
"""

_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i - 1]) end
redis.call('SET', KEYS[1], '1')
return 1
"""


def encode_command(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


class RedisStore:
    name = "redis"

    def __init__(self, url: str, *, prefix: str = "rtproxy:", timeout_s: float = 1.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "unix"):
            raise ValueError("the Redis URL must start with redis:// or unix://")
        self._unix = parts.path if parts.scheme == "unix" else None
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._password = unquote(parts.password) if parts.password else None
        self._username = unquote(parts.username) if parts.username else None
        db = parts.path.strip("/") if parts.scheme == "redis" else ""
        self._db = int(db) if db.isdigit() else 0
        #: For messages and /health: where, never the password.
        self.where = self._unix or f"{self._host}:{self._port}"
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._stream: trio.abc.Stream | None = None
        self._reader: Any = None
        self._lock = trio.Lock()
        self._shas: dict[str, str] = {}

    # -- the connection ------------------------------------------------------------------------

    async def _connect(self) -> trio.abc.Stream:
        if self._stream is None:
            if self._unix is not None:
                stream: trio.abc.Stream = await trio.open_unix_socket(self._unix)
            else:
                stream = await trio.open_tcp_stream(self._host, self._port)
            self._stream, self._reader = stream, hiredis.Reader()
            if self._password is not None:
                auth = ["AUTH", self._username, self._password] if self._username else ["AUTH", self._password]
                await self._roundtrip([auth])
            if self._db:
                await self._roundtrip([["SELECT", self._db]])
        return self._stream

    async def _roundtrip(self, commands: list[list[Any]]) -> list[Any]:
        stream = self._stream
        assert stream is not None
        await stream.send_all(b"".join(encode_command(c) for c in commands))
        replies: list[Any] = []
        while len(replies) < len(commands):
            reply = self._reader.gets()
            if reply is False:
                data = await stream.receive_some(RECEIVE_CHUNK_BYTES)
                if not data:
                    raise StateStoreError(f"redis at {self.where} closed the connection")
                self._reader.feed(data)
                continue
            replies.append(reply)
        return replies

    async def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                try:
                    await stream.aclose()
                except (OSError, trio.BrokenResourceError):
                    pass

    async def _call(self, commands: list[list[Any]]) -> list[Any]:
        async with self._lock:
            try:
                with trio.fail_after(self._timeout_s):
                    await self._connect()
                    replies = await self._roundtrip(commands)
            except trio.TooSlowError:
                await self._drop()
                raise StateStoreError(f"redis at {self.where} did not answer within {self._timeout_s:g} s") from None
            except (OSError, trio.BrokenResourceError, hiredis.ProtocolError) as exc:
                await self._drop()
                detail = getattr(exc, "strerror", None) or type(exc).__name__
                raise StateStoreError(f"redis at {self.where} is unreachable: {detail}") from None
            except BaseException:
                await self._drop()  # cancelled mid-call: the connection's state is unknown
                raise
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                if str(reply).startswith("NOSCRIPT"):
                    raise _NoScript()
                raise StateStoreError(f"redis at {self.where} answered an error: {str(reply)[:200]}")
        return replies

    async def _script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        sha = self._shas.get(source)
        if sha is not None:
            try:
                return (await self._call([["EVALSHA", sha, len(keys), *keys, *args]]))[0]
            except _NoScript:
                pass  # a restarted or new Redis: load it again
        reply = (await self._call([["SCRIPT", "LOAD", source]]))[0]
        self._shas[source] = reply.decode() if isinstance(reply, bytes) else str(reply)
        return (await self._call([["EVALSHA", self._shas[source], len(keys), *keys, *args]]))[0]

    # -- the store -----------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float, lease_s: float
                    ) -> Refusal | None:
        k = limits.key
        reply = await self._script(
            _ADMIT, [self._k("sessions", k), self._k("sessions"), self._k("opens", k), self._k("spend", k)],
            [session_id, repr(now), repr(now + lease_s), _num(limits.max_sessions), _num(limits.max_open_sessions),
             _num(limits.max_sessions_per_minute), _num(limits.max_budget_usd), repr(RATE_WINDOW_S)])
        code = reply.decode() if isinstance(reply, bytes) else str(reply)
        return None if code == "ok" else refusal_for(code, limits)

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float, lease_s: float) -> None:
        expires = repr(now + lease_s)
        commands: list[list[Any]] = []
        for sid, key in session_ids:
            commands.append(["ZADD", self._k("sessions", key), "XX", "CH", expires, sid])
            commands.append(["ZADD", self._k("sessions"), "XX", "CH", expires, sid])
        if commands:
            await self._call(commands)

    async def release(self, session_id: str, key: str) -> None:
        await self._call([["ZREM", self._k("sessions", key), session_id], ["ZREM", self._k("sessions"), session_id]])

    async def charge(self, key: str, cost_usd: float) -> float:
        reply = (await self._call([["INCRBYFLOAT", self._k("spend", key), repr(float(cost_usd))]]))[0]
        return float(reply)

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        wanted = list(keys)
        if not wanted:
            return {}
        values = (await self._call([["MGET", *(self._k("spend", k) for k in wanted)]]))[0]
        return {k: float(v) if v is not None else 0.0 for k, v in zip(wanted, values)}

    async def open_sessions(self, key: str, *, now: float) -> int:
        return int((await self._call([["ZCOUNT", self._k("sessions", key), f"({now!r}", "+inf"]]))[0])

    async def seed_spend(self, totals: Mapping[str, float]) -> bool:
        keys = [self._k("spend_seeded")] + [self._k("spend", k) for k in totals]
        return bool(await self._script(_SEED, keys, [repr(float(v)) for v in totals.values()]))

    async def put_blob(self, name: str, value: str, *, now: float, ttl_s: float) -> None:
        await self._call([["SET", self._k("blob", name), value, "PX", str(max(1, int(ttl_s * 1000)))]])

    async def get_blob(self, name: str, *, now: float) -> str | None:
        value = (await self._call([["GET", self._k("blob", name)]]))[0]
        return value.decode() if isinstance(value, bytes) else None

    async def aclose(self) -> None:
        await self._drop()


class _NoScript(StateStoreError):
    pass
