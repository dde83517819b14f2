"""scripts/install-test-deps, run for real against stand-in system commands on its PATH: it installs
what is missing with apt-get (as root directly, else through sudo when there is one), stops only
the Redis service its install started, and never kills processes by name."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install-test-deps"
#: Real tools the script itself runs.
REAL = ("bash", "env", "grep", "awk")
#: Stand-ins that say what they were asked to do (a line each in calls.log).
RECORDING = {
    "apt-get": 'echo "apt-get $* DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >> "$CALLS"',
    "sudo": 'echo "sudo $1" >> "$CALLS"; exec "$@"',
    "service": 'echo "service $*" >> "$CALLS"',
    "pkill": 'echo "pkill $*" >> "$CALLS"',
    "killall": 'echo "killall $*" >> "$CALLS"',
    "id": 'echo "$FAKE_UID"',
    "chromium": 'echo "Chromium 130.0"',
    "node": "echo v20.0.0",
    "espeak-ng": "true",
    "sox": "true",
    "logrotate": "true",
}


def run_script(tmp_path: Path, *, uid: int, present: set[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in REAL:
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    for name, body in RECORDING.items():
        if name in present or name not in ("sudo", "redis-server"):
            (bin_dir / name).write_text(f"#!{shutil.which('bash')}\n{body}\n")
            (bin_dir / name).chmod(0o755)
    if "redis-server" in present:
        (bin_dir / "redis-server").write_text("#!/bin/sh\ntrue\n")
        (bin_dir / "redis-server").chmod(0o755)
    calls = tmp_path / "calls.log"
    calls.touch()
    env = {"PATH": str(bin_dir), "CALLS": str(calls), "FAKE_UID": str(uid), "HOME": str(tmp_path)}
    out = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    return out, calls.read_text().splitlines()


@pytest.mark.parametrize(("uid", "as_root"), [(0, ""), (1000, "sudo ")])
def test_a_missing_package_is_installed_as_root_without_sudo_when_already_root(
        tmp_path: Path, uid: int, as_root: str) -> None:
    out, calls = run_script(tmp_path, uid=uid, present={"sudo"})
    assert out.returncode == 0, out.stderr
    sudo = ["sudo apt-get", "sudo env", "sudo service"] if as_root else []
    assert [c for c in calls if c.startswith("sudo ")] == sudo
    # apt-get as root; then the Redis service its install started is stopped by the service's
    # own script (which knows its pid): nothing is killed by name
    assert [c for c in calls if not c.startswith("sudo ")] == [
        "apt-get update -qq DEBIAN_FRONTEND=",
        "apt-get install -y -qq redis-server DEBIAN_FRONTEND=noninteractive",
        "service redis-server stop",
    ]


def test_without_root_or_sudo_it_says_what_to_install_and_installs_nothing(tmp_path: Path) -> None:
    out, calls = run_script(tmp_path, uid=1000, present=set())
    assert out.returncode == 1
    assert "missing redis-server" in out.stderr and "apt-get install redis-server" in out.stderr
    assert calls == []


def test_nothing_missing_nothing_installed_nothing_stopped(tmp_path: Path) -> None:
    out, calls = run_script(tmp_path, uid=0, present={"sudo", "redis-server"})
    assert out.returncode == 0, out.stderr
    assert calls == []
    assert out.stdout == "test system packages: chromium 130.0, node v20.0.0\n"


def test_the_test_redis_server_is_stopped_by_its_own_process(tmp_path: Path) -> None:
    import signal

    from .redis_server import redis_server

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-test-deps)")
    with redis_server(tmp_path / "redis") as server:
        os.kill(server.proc.pid, signal.SIGSTOP)  # as a store-recovery test may leave it: deaf to SIGTERM
        server.stop(timeout_s=0.5)
        assert server.proc.returncode == -signal.SIGKILL  # ended all the same, by its pid
