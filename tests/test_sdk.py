"""The official openai Python SDK as a real client, through both listeners (GA and beta)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from .conftest import USER_KEY, RunningServer

SDK_CLIENT = Path(__file__).with_name("sdk_client.py")


async def run_sdk(port: int, key: str, dialect: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process([sys.executable, str(SDK_CLIENT), str(port), key, dialect],
                                      capture_stdout=True, capture_stderr=True, check=False)


@pytest.mark.parametrize("dialect", ["ga", "beta", "azure"])
async def test_official_sdk_completes_a_text_turn(server: RunningServer, listener: str, dialect: str) -> None:
    result = await run_sdk(server.port(listener), USER_KEY, dialect)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    out = json.loads(result.stdout)
    assert out["text"] == "You said: Say hi"
    assert out["types"][0] == "session.created" and out["types"][-1] == "response.done"
    if dialect == "beta":
        assert "conversation.item.created" in out["types"]
    else:
        assert "conversation.item.added" in out["types"]


async def test_official_sdk_sees_401_for_a_wrong_key(server: RunningServer, listener: str) -> None:
    result = await run_sdk(server.port(listener), "wrong-key-0123456789", "ga")
    assert result.returncode != 0
    assert b"HTTP 401" in result.stderr
