"""Wake-ups and system calls per relayed frame, for the bare upstream and through the proxy.

    .venv/bin/python bench/wakeups.py            # S1 (sequential small events) and S3 (50 voice sessions)
    .venv/bin/python bench/wakeups.py --scenarios s1 --targets realtime,main

For each target, the scenario runs twice against the process that serves it (the fake upstream
for "direct", the proxy otherwise): untraced, counting the process's voluntary context switches
(``/proc/PID/status``: each one is the process going to sleep and being woken) and its CPU split
into user and kernel time; then with ``strace -c -f`` attached, counting system calls. Figures are per *relayed frame*: the upstream handles one frame
in and one out per event, the proxy relays two (the client's, the upstream's answer), so the
proxy's counts are divided by two events' worth to compare like with like.

strace slows every system call several-fold (and stops the process at each), so only the
system-call counts come from the traced run; CPU and wake-ups come from the untraced one.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BENCH_KEY, TICKS, Stack, loadgen  # noqa: E402

#: strace's table rows: "% time  seconds  usecs/call  calls  [errors]  syscall".
_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def _wait_traced(pid: int, timeout_s: float = 10.0) -> None:
    """Until strace has attached (the process's TracerPid is set), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("TracerPid:") and line.split()[1] != "0":
                time.sleep(0.2)  # the other threads are attached right after the first
                return
        time.sleep(0.02)
    raise RuntimeError(f"strace did not attach to {pid} within {timeout_s:g} s")


def switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid``."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def measure(scenario: str, target: str, opts: dict[str, int]) -> dict[str, object]:
    """One run untraced (wake-ups, CPU), then one under strace (system calls), on one stack."""
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        try:
            pid = stack.pid(target)
            key = None if target == "direct" else BENCH_KEY
            loadgen("s1", stack.url(target), key, 60, events=200)  # warm: imports, first session
            sw0, (u0, s0) = switches(pid), cpu(pid)
            plain = loadgen(scenario, stack.url(target), key, 300, **opts)
            sw1, (u1, s1) = switches(pid), cpu(pid)
            out = Path(tmp) / "strace.txt"
            tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
                                      stderr=subprocess.DEVNULL)
            _wait_traced(pid)
            traced = loadgen(scenario, stack.url(target), key, 300, **opts)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
            calls: dict[str, int] = {}
            for line in out.read_text().splitlines():
                m = _ROW.match(line)
                if m and m.group(2) != "total":
                    calls[m.group(2)] = int(m.group(1))
        finally:
            stack.close()
    per_event = 1 if target == "direct" else 2  # frames relayed per event (direct: frames answered)
    frames, traced_frames = int(plain.get("events") or 0) * per_event, int(traced.get("events") or 0) * per_event
    if not frames or not traced_frames:
        return {"error": plain.get("error") or traced.get("error") or "no events"}
    calls.pop("restart_syscall", None)  # strace's own attach
    per = {name: round(n / traced_frames, 2) for name, n in sorted(calls.items(), key=lambda kv: -kv[1])
           if n / traced_frames >= 0.01}
    return {"frames": frames, "wakeups_per_frame": round((sw1 - sw0) / frames, 2),
            "user_us_per_frame": round(1e6 * (u1 - u0) / frames, 1),
            "kernel_us_per_frame": round(1e6 * (s1 - s0) / frames, 1),
            "syscalls_per_frame": round(sum(calls.values()) / traced_frames, 2), "by_call": per}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="s1,s3")
    ap.add_argument("--targets", default="direct,realtime,main")
    ap.add_argument("--sessions", type=int, default=50)
    a = ap.parse_args()
    for scenario in a.scenarios.split(","):
        opts = {"events": 3000} if scenario == "s1" else {"sessions": a.sessions, "seconds": 8}
        for target in a.targets.split(","):
            print(f"{scenario} {target:9} {json.dumps(measure(scenario, target, opts))}", flush=True)


if __name__ == "__main__":
    main()
