"""What one admission costs in each state store, and in the two ways to talk to Redis from trio.

    .venv/bin/python bench/state_store.py [--n 2000]

Starts a throwaway redis-server on a unix socket (and on a loopback TCP port), then times N
admissions + releases, one after another, with: the embedded SQLite store (a worker thread per
call), the Redis store (hiredis's parser over a trio stream, no thread), and redis-py's blocking
client offloaded with trio.to_thread.run_sync (the alternative the Redis store did not take).
Prints microseconds per admission.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rtproxy.state import KeyLimits, SqliteStore  # noqa: E402
from rtproxy.state.redis import _ADMIT, RedisStore  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def time_store(store, n: int) -> float:  # type: ignore[no-untyped-def]
    limits = KeyLimits("bench", max_sessions=10, max_sessions_per_minute=None, max_budget_usd=100.0)
    # seeded as a gateway seeds it at start-up (an empty store refuses: it may have lost its totals)
    await store.rebuild("bench", {}, [], epoch="bench")
    start = time.perf_counter()
    for i in range(n):
        assert await store.admit(f"s{i}", "bench", limits, now=time.time(), lease_s=30) is None
        await store.release(f"s{i}", "bench")
    return (time.perf_counter() - start) / n * 1e6


async def time_redis_py_threads(port: int, n: int) -> float:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    sha = client.script_load(_ADMIT)
    # the Redis store's own keys and arguments (rtproxy/state/redis.py RedisStore.admit), seeded by
    # the runs before this one on the same server
    keys = ["rtproxy:sessions:bench", "rtproxy:sessions", "rtproxy:opens:bench", "rtproxy:spend:bench",
            "rtproxy:spend_seeded"]

    def admit(i: int) -> None:
        now = time.time()
        assert client.evalsha(sha, len(keys), *keys, f"s{i}", repr(now), "30", "10", "", "", "100.0",
                              "60.0") == b"ok"
        pipe = client.pipeline(transaction=False)  # one round trip, as the Redis store's release
        pipe.zrem(keys[0], f"s{i}")
        pipe.zrem(keys[1], f"s{i}")
        pipe.execute()

    start = time.perf_counter()
    for i in range(n):
        await trio.to_thread.run_sync(admit, i)
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        sock, port = Path(d) / "redis.sock", free_port()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--unixsocket", str(sock),
                                 "--save", "", "--appendonly", "no", "--dir", d],
                                stdout=subprocess.DEVNULL)
        try:
            await trio.sleep(0.5)
            rows = [
                ("sqlite (embedded, on the event loop)", await time_store(SqliteStore(Path(d) / "s.sqlite3"), n)),
                ("redis, hiredis over trio, unix socket", await time_store(RedisStore(f"unix://{sock}"), n)),
                ("redis, hiredis over trio, TCP loopback", await time_store(RedisStore(f"redis://127.0.0.1:{port}"), n)),
            ]
            try:
                rows.append(("redis, redis-py in trio.to_thread, TCP", await time_redis_py_threads(port, n)))
            except ImportError:
                rows.append(("redis, redis-py in trio.to_thread (pip install redis)", float("nan")))
        finally:
            proc.terminate()
            proc.wait()
    print(f"| store and client | µs per admission + release ({n} in a row) |\n|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    trio.run(main, parser.parse_args().n)
