// Tool calls out of a spend record's `response`, whatever shape it comes in. No DOM.
//
// Shapes accepted, in this order of preference:
//   response.tool_calls                      [{id, type: "function", function: {name, arguments}}]
//                                            and MCP items: {id, type: "mcp_call" | "mcp_approval_request" |
//                                            "mcp_approval_response" | "mcp_list_tools", mcp: {server_label, …}}
//   response.results[].response.output[]     realtime response.done items {type: "function_call", call_id, name, arguments}
//   response.output[]                        the same items, when a bare response object is stored
//   response.choices[].message.tool_calls    chat-completions style
// Calls are de-duplicated by id (first seen wins, order kept). Missing, null or odd fields never
// throw: arguments that are objects are serialised, strings that are not JSON are kept as they are.

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const asArray = (v) => (Array.isArray(v) ? v : []);

function argumentsText(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

const MCP_KINDS = new Set(["mcp_call", "mcp_approval_request", "mcp_approval_response", "mcp_list_tools"]);

/** An MCP item (recorded `{type, mcp: {...}}`, or a raw output item) as a call the viewer shows. */
function fromMcp(kind, id, m) {
  const call = { id: id ?? null, kind, server: m.server_label ?? null, name: m.name ?? null,
    arguments: argumentsText(m.arguments), output: typeof m.output === "string" ? m.output : null,
    error: isObject(m.error) ? m.error.message || m.error.type || "error" : null };
  if (kind === "mcp_list_tools") {
    call.name = "(list tools)";
    call.output = asArray(m.tools).map((t) => (isObject(t) ? t.name : t)).filter((n) => typeof n === "string").join(", ");
  } else if (kind === "mcp_approval_response") {
    call.name = "(approval)";
    call.arguments = m.approval_request_id ? `request ${m.approval_request_id}` : "";
    call.output = m.approve === true ? "approved" : m.approve === false ? `denied${m.reason ? `: ${m.reason}` : ""}` : null;
  }
  return call;
}

function fromToolCall(call) {
  if (!isObject(call)) return null;
  if (MCP_KINDS.has(call.type)) return fromMcp(call.type, call.id, isObject(call.mcp) ? call.mcp : call);
  const fn = isObject(call.function) ? call.function : {};
  return { id: call.id ?? call.call_id ?? null, name: fn.name ?? call.name ?? null, arguments: argumentsText(fn.arguments ?? call.arguments) };
}

function fromOutputItem(item) {
  if (isObject(item) && MCP_KINDS.has(item.type)) return fromMcp(item.type, item.id, item);
  if (!isObject(item) || item.type !== "function_call") return null;
  return { id: item.call_id ?? item.id ?? null, name: item.name ?? null, arguments: argumentsText(item.arguments) };
}

export function extractToolCalls(response) {
  if (!isObject(response)) return [];
  const found = [];
  for (const call of asArray(response.tool_calls)) found.push(fromToolCall(call));
  for (const result of asArray(response.results)) {
    const resp = isObject(result) && isObject(result.response) ? result.response : result;
    if (isObject(resp)) for (const item of asArray(resp.output)) found.push(fromOutputItem(item));
  }
  for (const item of asArray(response.output)) found.push(fromOutputItem(item));
  for (const choice of asArray(response.choices)) {
    const message = isObject(choice) && isObject(choice.message) ? choice.message : {};
    for (const call of asArray(message.tool_calls)) found.push(fromToolCall(call));
  }
  const seen = new Set();
  const calls = [];
  for (const call of found) {
    if (!call || (call.id === null && call.name === null)) continue;
    const key = call.id ?? `${call.name}\u0000${call.arguments}`;
    if (seen.has(key)) continue;
    seen.add(key);
    calls.push({ ...call, kind: call.kind || "function", id: call.id === null ? null : String(call.id),
      name: call.name === null ? null : String(call.name) });
  }
  return calls;
}

/** Arguments pretty-printed when they are JSON, else as given. */
export function prettyArguments(text) {
  if (typeof text !== "string") return argumentsText(text);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
