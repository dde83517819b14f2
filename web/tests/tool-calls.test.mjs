import assert from "node:assert/strict";
import { test } from "node:test";

import { extractToolCalls, prettyArguments } from "../js/tool-calls.js";

test("record shape: response.tool_calls", () => {
  assert.deepEqual(extractToolCalls({ tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } }] }),
    [{ id: "c1", kind: "function", name: "f", arguments: '{"a":1}' }]);
});

test("realtime shape: results[].response.output[] function_call items", () => {
  const response = { results: [{ type: "response.done", response: { output: [
    { type: "message", content: [] },
    { type: "function_call", call_id: "c2", name: "g", arguments: "{}" }] } }] };
  assert.deepEqual(extractToolCalls(response), [{ id: "c2", kind: "function", name: "g", arguments: "{}" }]);
});

test("chat-completions shape: choices[].message.tool_calls", () => {
  const response = { choices: [{ message: { tool_calls: [{ id: "c3", function: { name: "h", arguments: "x" } }] } }, { message: null }] };
  assert.deepEqual(extractToolCalls(response), [{ id: "c3", kind: "function", name: "h", arguments: "x" }]);
});

test("mixed shapes are merged, de-duplicated by id, in order", () => {
  const response = {
    tool_calls: [{ id: "c1", function: { name: "f", arguments: "{}" } }],
    results: [{ response: { output: [{ type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
                                     { type: "function_call", call_id: "c2", name: "g", arguments: "{}" }] } }],
    choices: [{ message: { tool_calls: [{ id: "c2", function: { name: "g" } }, { id: "c3", function: { name: "k" } }] } }],
  };
  assert.deepEqual(extractToolCalls(response).map((c) => c.id), ["c1", "c2", "c3"]);
});

test("object arguments are serialised; non-JSON strings kept", () => {
  const calls = extractToolCalls({ tool_calls: [{ id: "a", function: { name: "f", arguments: { city: "Paris" } } },
                                                { id: "b", function: { name: "f", arguments: "not json" } }] });
  assert.equal(calls[0].arguments, '{"city":"Paris"}');
  assert.equal(calls[1].arguments, "not json");
  assert.equal(prettyArguments("not json"), "not json");
  assert.equal(prettyArguments('{"a":1}'), '{\n  "a": 1\n}');
});

test("missing, null and odd input never throws", () => {
  for (const v of [undefined, null, 5, "x", [], {}, { tool_calls: null }, { tool_calls: [null, 5, "x", { function: 7 }] },
    { results: [null, { response: null }, { response: { output: "x" } }, { response: { output: [null, { type: "function_call" }] } }] },
    { choices: [null, { message: { tool_calls: {} } }] }, { output: [{ type: "function_call", call_id: 9, name: 1 }] }]) {
    const calls = extractToolCalls(v);
    assert.ok(Array.isArray(calls));
  }
  assert.deepEqual(extractToolCalls({ output: [{ type: "function_call", call_id: 9, name: 1 }] }), [{ id: "9", kind: "function", name: "1", arguments: "" }]);
});

test("MCP items, recorded or raw, become calls with their server, output and error", () => {
  const response = {
    tool_calls: [
      { id: "l1", type: "mcp_list_tools", mcp: { server_label: "docs", tools: ["echo", "add"] } },
      { id: "a1", type: "mcp_approval_response", mcp: { approval_request_id: "r1", approve: false, reason: "no" } },
      { id: "m1", type: "mcp_call", mcp: { server_label: "docs", name: "echo", arguments: '{"text":"hi"}', output: "hi", error: null } },
    ],
    results: [{ response: { output: [
      { id: "m1", type: "mcp_call", server_label: "docs", name: "echo", arguments: "{}", output: "hi" },
      { id: "m2", type: "mcp_call", server_label: "docs", name: "add", arguments: "{}", output: null,
        error: { type: "tool_execution_error", message: "bad arguments for add" } },
      { id: "q1", type: "mcp_approval_request", server_label: "docs", name: "add", arguments: '{"a":1}' }] } }],
  };
  const calls = extractToolCalls(response);
  assert.deepEqual(calls.map((c) => [c.id, c.kind, c.server, c.name]), [
    ["l1", "mcp_list_tools", "docs", "(list tools)"], ["a1", "mcp_approval_response", null, "(approval)"],
    ["m1", "mcp_call", "docs", "echo"], ["m2", "mcp_call", "docs", "add"], ["q1", "mcp_approval_request", "docs", "add"]]);
  assert.equal(calls[0].output, "echo, add");
  assert.equal(calls[1].output, "denied: no");
  assert.equal(calls[2].output, "hi");
  assert.equal(calls[3].error, "bad arguments for add");
  assert.equal(calls[4].output, null);
});
