import assert from "node:assert/strict";
import { test } from "node:test";

import { barChart, escapeXml, lineChart, seriesOf, totalsOf } from "../js/charts.js";

const summary = {
  buckets: ["2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z"],
  data: [
    { time: "2026-03-01T09:00:00Z", key_name: "alice", model: "gpt-realtime", cost_usd: 0.5, sessions: 2 },
    { time: "2026-03-01T09:00:00Z", key_name: "bob", model: "gpt-realtime", cost_usd: 0.25, sessions: 1 },
    { time: "2026-03-01T10:00:00Z", key_name: "alice", model: "gpt-live-1", cost_usd: 1, sessions: 1 },
  ],
};

test("rows become one series per key (or model), a value per bucket", () => {
  assert.deepEqual(seriesOf(summary, "cost_usd", "key_name").series,
    [{ name: "alice", values: [0.5, 1] }, { name: "bob", values: [0.25, 0] }]);
  assert.deepEqual(seriesOf(summary, "sessions", "model").series.map((s) => s.name), ["gpt-live-1", "gpt-realtime"]);
});

test("stacked bars: a segment per non-zero value, titled with its series, bucket and value", () => {
  const svg = barChart(seriesOf(summary, "cost_usd", "key_name"), { title: "Spend", format: (v) => `$${v.toFixed(2)}` });
  assert.equal((svg.match(/<rect class="bar"/g) || []).length, 3);
  assert.match(svg, /<title>alice · 2026-03-01T10:00:00Z: \$1\.00<\/title>/);
  assert.match(svg, /aria-label="Spend"/);
});

test("lines leave gaps where a bucket has no value; names are escaped", () => {
  const svg = lineChart({ buckets: ["a", "b", "c"], series: [{ name: "p<95>", values: [1, null, 3] }] }, { title: "Latency" });
  assert.equal((svg.match(/<circle/g) || []).length, 2);
  assert.ok(svg.includes("p&lt;95&gt;") && !svg.includes("p<95>"));
  assert.equal(escapeXml(`"&'`), "&quot;&amp;&#39;");
});

const byProvider = {
  buckets: ["2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z"],
  data: [
    { time: "2026-03-01T09:00:00Z", key_name: "alice", model: "gemini-live", provider: "local", cost_usd: 0.5, sessions: 2, responses: 3, unpriced: 0 },
    { time: "2026-03-01T09:00:00Z", key_name: "alice", model: "gpt-realtime", provider: "openai", cost_usd: 0.25, sessions: 1, responses: 1, unpriced: 0 },
    { time: "2026-03-01T10:00:00Z", key_name: "bob", model: "gemini-live", provider: "local", cost_usd: 1, sessions: 1, responses: 2, unpriced: 1 },
    { time: "2026-03-01T10:00:00Z", key_name: "bob", model: "old", cost_usd: 0, sessions: 1, responses: 0, unpriced: 0 },
  ],
};
const names = { local: "offline model", openai: "OpenAI" };

test("rows split by provider become a series per provider, named in words", () => {
  assert.deepEqual(seriesOf(byProvider, "cost_usd", "provider", (p) => names[p]).series,
    [{ name: "(none)", values: [0, 0] }, { name: "OpenAI", values: [0.25, 0] }, { name: "offline model", values: [0.5, 1] }]);
});

test("totals over the period per provider: the costliest first, counts summed", () => {
  assert.deepEqual(totalsOf(byProvider, "provider", (p) => names[p]), [
    { name: "offline model", cost_usd: 1.5, sessions: 3, responses: 5, unpriced: 1 },
    { name: "OpenAI", cost_usd: 0.25, sessions: 1, responses: 1, unpriced: 0 },
    { name: "(none)", cost_usd: 0, sessions: 1, responses: 0, unpriced: 0 },
  ]);
  assert.deepEqual(totalsOf(byProvider, "key_name").map((t) => [t.name, t.cost_usd]), [["bob", 1], ["alice", 0.75]]);
});
