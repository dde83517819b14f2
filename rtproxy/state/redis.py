"""The Redis state store: the embedded store's rules as Lua scripts, exact across instances.

The client is hiredis's sans-IO RESP parser over a trio stream (TCP, or a unix socket with
``unix://``): no thread hop per call, and a call is cancelled like any trio operation. (Measured
against redis-py's blocking client offloaded to a thread: ``bench/state_store.py``; figures in
docs/performance.md.) One connection per process, one call at a time; a call that
fails, times out or is cancelled drops the connection, and the next call dials again.

Keys (``prefix`` defaults to ``rtproxy:``): ``{p}sessions:{key}`` and ``{p}sessions`` (sorted
sets: session id → lease expiry), ``{p}opens:{key}`` (sorted set of the last minute's opens),
``{p}spend:{key}`` (a float), ``{p}spend_seeded`` (the epoch marker: a Redis that restarted
empty has none, and its scripts refuse to admit or charge until it is rebuilt),
``{p}seeded_by:{epoch}:{contributor}`` (a spend log added in that epoch), ``{p}charged:{id}``
(a record's charge applied, for :data:`~rtproxy.state.store.CHARGE_ID_TTL_S`),
``{p}blob:{name}`` (an ephemeral token's session config, expiring with the token),
``{p}blobs_of:{owner}`` (sorted set: the owner's blob names → expiry) and
``{p}blob_bytes:{owner}`` (hash: blob name → bytes), the owner's quota.

Every script takes its time from Redis (``TIME``), never from the calling server: leases are
stamped on one clock however far the servers' clocks drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
import trio

from .store import (
    CHARGE_ID_TTL_S,
    LEGACY_EPOCH,
    RATE_WINDOW_S,
    Charge,
    KeyLimits,
    Refusal,
    StateStoreError,
    StoreLostData,
    refusal_for,
)

#: Largest reply read per socket read.
RECEIVE_CHUNK_BYTES = 65536

#: The store's clock, or the caller's (tests) when ARGV[1] is not empty.
_NOW = """
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

_ADMIT = _NOW + """
if redis.call('EXISTS', KEYS[5]) == 0 then return 'unseeded' end
local now = clock(ARGV[2])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[8]))
local spent = tonumber(redis.call('GET', KEYS[4]) or '0')
if ARGV[7] ~= '' and spent >= tonumber(ARGV[7]) then return 'budget_exceeded' end
if ARGV[4] ~= '' and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 'too_many_sessions' end
if ARGV[5] ~= '' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 'server_at_capacity' end
if ARGV[6] ~= '' and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return 'rate_limited' end
for i = 6, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i + 3]) then return 'budget:' .. (i - 5) end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  redis.call('EXPIRE', KEYS[3], math.ceil(tonumber(ARGV[8])) * 2)
end
return 'ok'
"""

#: ARGV: prefix, now ('' for Redis's), lease, then (session id, key) pairs. Returns the ids whose
#: lease is gone (swept by another admission while this server stalled): not renewed here.
_RENEW = _NOW + """
local p = ARGV[1]
local expires = clock(ARGV[2]) + tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 2 do
  local sid, per = ARGV[i], p .. 'sessions:' .. ARGV[i + 1]
  if redis.call('ZSCORE', per, sid) then
    redis.call('ZADD', per, expires, sid)
    redis.call('ZADD', p .. 'sessions', expires, sid)
  else
    lost[#lost + 1] = sid
  end
end
return lost
"""

#: ARGV: prefix, charge-id TTL, then (key, cost, id or '') triples. Returns false (nothing done) on
#: a store without its epoch marker, else a flat list of key, new total.
_CHARGE = """
local p = ARGV[1]
if redis.call('EXISTS', p .. 'spend_seeded') == 0 then return false end
local ttl = ARGV[2]
local out = {}
for i = 3, #ARGV, 3 do
  local spend = p .. 'spend:' .. ARGV[i]
  if ARGV[i + 2] == '' or redis.call('SET', p .. 'charged:' .. ARGV[i + 2], '1', 'NX', 'EX', ttl) then
    redis.call('INCRBYFLOAT', spend, ARGV[i + 1])
  end
  out[#out + 1] = ARGV[i]
  out[#out + 1] = redis.call('GET', spend) or '0'
end
return out
"""

#: ARGV: prefix, epoch candidate, contributor, charge-id TTL, the number of per-key sums, the sums
#: as (key, usd) pairs, then (key, cost, id) triples. Returns {epoch, 1 if added else 0}.
_REBUILD = """
local p = ARGV[1]
local epoch = redis.call('GET', p .. 'spend_seeded')
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', p .. 'spend_seeded', epoch)
end
if epoch == '""" + LEGACY_EPOCH + """' then return {epoch, 0} end
if not redis.call('SET', p .. 'seeded_by:' .. epoch .. ':' .. ARGV[3], '1', 'NX') then return {epoch, 0} end
local ttl = ARGV[4]
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('INCRBYFLOAT', p .. 'spend:' .. ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  if redis.call('SET', p .. 'charged:' .. ARGV[i + 2], '1', 'NX', 'EX', ttl) then
    redis.call('INCRBYFLOAT', p .. 'spend:' .. ARGV[i], ARGV[i + 1])
  end
  i = i + 3
end
return {epoch, 1}
"""

#: KEYS: the blob, the owner's names (zset), the owner's sizes (hash). ARGV: name, value, ttl ms,
#: max count, max bytes, size, now ('' for Redis's). Returns 1 (kept) or 0 (over the quota).
_PUT_OWNED = _NOW + """
local now = clock(ARGV[7])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, name in ipairs(stale) do redis.call('HDEL', KEYS[3], name) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local count = redis.call('ZCARD', KEYS[2])
local used = 0
for _, b in ipairs(redis.call('HVALS', KEYS[3])) do used = used + tonumber(b) end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  count = count - 1
  used = used - tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
end
if count + 1 > tonumber(ARGV[4]) or used + tonumber(ARGV[6]) > tonumber(ARGV[5]) then return 0 end
local ttl_ms = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl_ms)
redis.call('ZADD', KEYS[2], now + ttl_ms / 1000, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ttl_ms)
redis.call('PEXPIRE', KEYS[3], ttl_ms)
return 1
"""

#: Charges sent per script call (a long replay after an outage goes in several).
CHARGE_BATCH = 500


def encode_command(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode("utf-8", "surrogatepass")  # never raises
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


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

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float | None = None,
                    lease_s: float) -> Refusal | None:
        k = limits.key
        reply = await self._script(
            _ADMIT, [self._k("sessions", k), self._k("sessions"), self._k("opens", k), self._k("spend", k),
                     self._k("spend_seeded"), *(self._k("spend", a) for a, _, _ in limits.budgets)],
            [session_id, _num(now), repr(lease_s), _num(limits.max_sessions), _num(limits.max_open_sessions),
             _num(limits.max_sessions_per_minute), _num(limits.max_budget_usd), repr(RATE_WINDOW_S)]
            + [repr(float(most)) for _, most, _ in limits.budgets])
        code = _text(reply)
        if code == "unseeded":
            raise StoreLostData(f"redis at {self.where} holds no spend totals (it restarted empty?)")
        if code.startswith("budget:"):
            return Refusal("budget_exceeded", limits.budgets[int(code[7:]) - 1][2])
        return None if code == "ok" else refusal_for(code, limits)

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float | None = None, lease_s: float
                    ) -> list[str]:
        args: list[Any] = [self._prefix, _num(now), repr(lease_s)]
        for sid, key in session_ids:
            args += [sid, key]
        if len(args) == 3:
            return []
        lost = await self._script(_RENEW, [], args)
        return [_text(sid) for sid in lost or []]

    async def release(self, session_id: str, key: str) -> None:
        await self._call([["ZREM", self._k("sessions", key), session_id], ["ZREM", self._k("sessions"), session_id]])

    async def charge_batch(self, charges: Sequence[Charge]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for start in range(0, len(charges), CHARGE_BATCH):
            args: list[Any] = [self._prefix, str(int(CHARGE_ID_TTL_S))]
            for c in charges[start:start + CHARGE_BATCH]:
                args += [c.key, repr(float(c.cost_usd)), c.charge_id or ""]
            reply = await self._script(_CHARGE, [], args)
            if reply is None:
                raise StoreLostData(f"redis at {self.where} holds no spend totals (it restarted empty?)")
            for i in range(0, len(reply), 2):
                totals[_text(reply[i])] = float(reply[i + 1])
        return totals

    async def charge(self, key: str, cost_usd: float, charge_id: str | None = None) -> float:
        return (await self.charge_batch([Charge(key, cost_usd, charge_id)]))[key]

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        wanted = list(keys)
        if not wanted:
            return {}
        values = (await self._call([["MGET", *(self._k("spend", k) for k in wanted)]]))[0]
        return {k: float(v) if v is not None else 0.0 for k, v in zip(wanted, values)}

    async def open_sessions(self, key: str, *, now: float | None = None) -> int:
        if now is None:
            seconds, micros = (await self._call([["TIME"]]))[0]
            now = int(seconds) + int(micros) / 1e6
        return int((await self._call([["ZCOUNT", self._k("sessions", key), f"({now!r}", "+inf"]]))[0])

    async def epoch(self) -> str | None:
        value = (await self._call([["GET", self._k("spend_seeded")]]))[0]
        return None if value is None else _text(value)

    async def rebuild(self, contributor: str, older: Mapping[str, float], recent: Sequence[Charge], *,
                      epoch: str) -> tuple[bool, str]:
        args: list[Any] = [self._prefix, epoch, contributor, str(int(CHARGE_ID_TTL_S)), len(older)]
        for key, usd in older.items():
            args += [key, repr(float(usd))]
        for c in recent:
            if c.charge_id is None:
                args[4] += 1  # no id to count it once by: added as a sum (placed before the triples)
                args[5:5] = [c.key, repr(float(c.cost_usd))]
            else:
                args += [c.key, repr(float(c.cost_usd)), c.charge_id]
        current, added = await self._script(_REBUILD, [], args)
        return bool(added), _text(current)

    async def put_blob(self, name: str, value: str, *, now: float | None = None, ttl_s: float) -> None:
        await self._call([["SET", self._k("blob", name), value, "PX", str(max(1, int(ttl_s * 1000)))]])

    async def put_owned_blob(self, name: str, value: str, owner: str, *, max_count: int, max_bytes: int,
                             now: float | None = None, ttl_s: float) -> bool:
        size = len(value.encode("utf-8", "surrogatepass"))
        kept = await self._script(
            _PUT_OWNED, [self._k("blob", name), self._k("blobs_of", owner), self._k("blob_bytes", owner)],
            [name, value, str(max(1, int(ttl_s * 1000))), str(max_count), str(max_bytes), str(size), _num(now)])
        return bool(kept)

    async def get_blob(self, name: str, *, now: float | None = None) -> str | None:
        value = (await self._call([["GET", self._k("blob", name)]]))[0]
        return value.decode() if isinstance(value, bytes) else None

    async def aclose(self) -> None:
        await self._drop()


class _NoScript(StateStoreError):
    pass
