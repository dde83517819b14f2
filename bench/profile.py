"""Profile the proxy with py-spy during one scenario and summarise where its CPU goes.

    .venv/bin/python bench/profile.py s2 realtime          # or: s3 realtime --sessions 200
    .venv/bin/python bench/profile.py g3 translated --sessions 200   # S3 translated to Gemini Live

Prints self time by function (leaf frames) and by area (trio, websockets, rtproxy, ...).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BENCH_KEY, Stack, loadgen  # noqa: E402

AREAS = [
    ("socket send/recv (trio wrappers + kernel)", ("trio/_socket.py", "trio/_highlevel_socket.py")),
    ("trio run loop, epoll, scopes, locks", ("trio/",)),
    ("websockets framing + masking", ("websockets/",)),
    ("hypercorn / wsproto / h11", ("hypercorn/", "wsproto/", "h11/")),
    ("quart / werkzeug", ("quart", "werkzeug/")),
    ("translation: translator", ("rtproxy/translate/realtime_gemini.py", "rtproxy/translate/gemini_usage.py",
                                 "rtproxy/relay/translated.py")),
    ("translation: audio (resampler, numpy)", ("rtproxy/translate/audio.py", "numpy/")),
    ("json, base64, secrets", ("json/", "base64.py", "secrets.py", "random.py")),
    ("rtproxy collector + spend log", ("rtproxy/collector.py", "rtproxy/spendlog.py", "rtproxy/pricing.py",
                                       "rtproxy/spend/")),
    ("rtproxy pumps, legs, transport", ("rtproxy/",)),
    ("other", ("",)),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["s1", "s2", "s3", "s5", "g3"])
    ap.add_argument("target", choices=["realtime", "main", "translated"])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=12)
    ap.add_argument("--events", type=int, default=60000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), gemini=a.scenario == "g3")
        raw = Path(tmp) / "profile.txt"
        try:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(stack.proxy.pid), "-r", "250", "-f", "raw",
                                    "-o", str(raw), "--nonblocking", "-d", str(int(a.seconds) + 8)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            opts = {"sessions": a.sessions, "seconds": a.seconds} if a.scenario in ("s3", "g3") else {"events": a.events}
            result: dict[str, object] = {}
            t = threading.Thread(target=lambda: result.update(loadgen(a.scenario, stack.url(a.target), BENCH_KEY,
                                                                     timeout=600, **opts)))
            t.start()
            t.join()
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait(60)
        finally:
            stack.close()
        print("scenario:", a.scenario, a.target, result)
        summarise(raw)


#: Count every function in the inclusive table, not only rtproxy's (RTPROXY_PROFILE_ALL=1).
ALL_INCLUSIVE = bool(os.environ.get("RTPROXY_PROFILE_ALL"))


def summarise(raw: Path) -> None:
    leaf: collections.Counter[str] = collections.Counter()
    area: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        top = frames[-1]
        if "epoll" in top and "get_events" in top and len(frames) < 12:
            pass  # idle waits are kept: they are part of the run loop's cost under load
        n = int(count)
        total += n
        leaf[top] += n
        for name in set(frames):
            if "rtproxy/" in name or ALL_INCLUSIVE:
                inclusive[name] += n
        for name, needles in AREAS:
            if any(needle in top for needle in needles):
                area[name] += n
                break
    print(f"\n{total} samples\n\nself time by area:")
    for name, n in area.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\nself time, top functions:")
    for name, n in leaf.most_common(18):
        print(f"  {100 * n / total:5.1f}%  {name[:150]}")
    print("\ninclusive time, top rtproxy functions (a function's share of samples with it on the stack):")
    for name, n in inclusive.most_common(60 if ALL_INCLUSIVE else 24):
        print(f"  {100 * n / total:5.1f}%  {name[:150]}")


if __name__ == "__main__":
    main()
