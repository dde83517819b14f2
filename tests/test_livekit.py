"""livekit-agents' OpenAI realtime plugin (a real client library) through both listeners: a text
turn and a tool turn, in its OpenAI mode and both Azure modes (preview api-version, GA v1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from .conftest import USER_KEY, RunningServer

CLIENT = Path(__file__).with_name("livekit_client.py")


@pytest.mark.parametrize("mode", ["openai", "azure-preview", "azure-v1"])
async def test_the_livekit_plugin_completes_a_text_turn_and_a_tool_turn(server: RunningServer, listener: str,
                                                                      mode: str) -> None:
    with trio.fail_after(90):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [sys.executable, str(CLIENT), str(server.port(listener)), USER_KEY, mode],
            capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["errors"] == []
    assert out["text"] == "You said: Say hi"
    assert out["calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    records = [r for r in server.records() if r["record"] == "response"]
    assert len(records) == 2 and all(r["cost_usd"] > 0 for r in records)
    assert records[1]["response"]["tool_calls"][0]["function"]["name"] == "get_weather"
