import assert from "node:assert/strict";
import { test } from "node:test";

import { extractToolCalls, prettyArguments } from "../js/tool-calls.js";

test("record shape: response.tool_calls", () => {
  assert.deepEqual(extractToolCalls({ tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } }] }),
    [{ id: "c1", name: "f", arguments: '{"a":1}' }]);
});

test("realtime shape: results[].response.output[] function_call items", () => {
  const response = { results: [{ type: "response.done", response: { output: [
    { type: "message", content: [] },
    { type: "function_call", call_id: "c2", name: "g", arguments: "{}" }] } }] };
  assert.deepEqual(extractToolCalls(response), [{ id: "c2", name: "g", arguments: "{}" }]);
});

test("chat-completions shape: choices[].message.tool_calls", () => {
  const response = { choices: [{ message: { tool_calls: [{ id: "c3", function: { name: "h", arguments: "x" } }] } }, { message: null }] };
  assert.deepEqual(extractToolCalls(response), [{ id: "c3", name: "h", arguments: "x" }]);
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
  assert.deepEqual(extractToolCalls({ output: [{ type: "function_call", call_id: 9, name: 1 }] }), [{ id: "9", name: "1", arguments: "" }]);
});
