"""The offline model's simulated MCP server: a deterministic stand-in for a remote MCP server,
so MCP tool sessions are tested end to end with no network.

Every ``{"type": "mcp", "server_label": …}`` tool a session defines is served by the same two
tools, whatever its ``server_url``: ``echo`` (``{"text": str}`` → the text) and ``add``
(``{"a": number, "b": number}`` → their sum). Approval follows the tool's ``require_approval``
as the API reads it: ``"never"`` (or the tool named under ``{"never": {"tool_names": […]}}``)
calls at once; anything else, the API's default included, asks first with an
``mcp_approval_request`` item.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: The simulated server's tools, as ``mcp_list_tools`` lists them.
TOOLS: tuple[dict[str, Any], ...] = (
    {"name": "echo", "description": "Returns the text it is given.",
     "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "add", "description": "Adds two numbers.",
     "input_schema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                      "required": ["a", "b"]}},
)
TOOL_NAMES = tuple(t["name"] for t in TOOLS)


def mcp_servers(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tools if t.get("type") == "mcp"]


def needs_approval(server: dict[str, Any], tool: str) -> bool:
    rule = server.get("require_approval", "always")
    if rule == "never":
        return False
    if isinstance(rule, dict):
        never = rule.get("never")
        if isinstance(never, dict) and tool in (never.get("tool_names") or []):
            return False
    return True


def allowed(server: dict[str, Any], tool: str) -> bool:
    rule = server.get("allowed_tools")
    if isinstance(rule, list):
        return tool in rule
    if isinstance(rule, dict) and isinstance(rule.get("tool_names"), list):
        return tool in rule["tool_names"]
    return True


def arguments_for(tool: str, text: str) -> str:
    """Arguments drawn from the user's words: the text after the tool's name, or its numbers."""
    if tool == "add":
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)][:2]
        a, b = (numbers + [0.0, 0.0])[:2]
        return json.dumps({"a": a, "b": b})
    low = text.lower()
    after = text[low.index(tool) + len(tool):].strip(" :,.!?") if tool in low else text
    return json.dumps({"text": after or text})


def call(tool: str, arguments: str) -> tuple[str | None, dict[str, Any] | None]:
    """(output, error) of one call, as the ``mcp_call`` item carries them."""
    try:
        args = json.loads(arguments)
    except ValueError:
        return None, {"type": "tool_execution_error", "message": "arguments are not valid JSON"}
    if not isinstance(args, dict):
        return None, {"type": "tool_execution_error", "message": "arguments must be an object"}
    if tool == "echo" and isinstance(args.get("text"), str):
        return args["text"], None
    if tool == "add" and all(isinstance(args.get(k), (int, float)) for k in ("a", "b")):
        total = args["a"] + args["b"]
        return (str(int(total)) if float(total).is_integer() else str(total)), None
    return None, {"type": "tool_execution_error", "message": f"bad arguments for {tool}"}
