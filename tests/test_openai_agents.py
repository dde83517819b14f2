"""openai-agents' realtime runner (a real client library) through both listeners: its function
tool runs, its output goes back, and the spend log joins the call with its output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import trio

from .conftest import USER_KEY, RunningServer

CLIENT = Path(__file__).with_name("agents_client.py")
#: openai-agents lives in a venv of its own (tests/clients-requirements.txt says why); `make test` builds it.
CLIENTS_PYTHON = Path(__file__).resolve().parent.parent / ".venv-clients" / "bin" / "python"


async def test_an_openai_agents_realtime_agent_calls_its_tool_through_the_gateway(server: RunningServer,
                                                                                listener: str) -> None:
    with trio.fail_after(60):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [str(CLIENTS_PYTHON), str(CLIENT), server.ws_url(listener), USER_KEY],
            capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["errors"] == []
    assert out["tools"] == [{"name": "get_weather", "output": "sunny in Paris"}]
    assert out["replies"] == ["get_weather returned sunny in Paris"]
    with trio.fail_after(10):
        while len([r for r in server.records() if r["record"] == "response"]) < 2:
            await trio.sleep(0.02)
    call, reply = [r for r in server.records() if r["record"] == "response"]
    (tool_call,) = call["response"]["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert {"role": "tool", "tool_call_id": tool_call["id"], "content": "sunny in Paris"} in reply["messages"]
