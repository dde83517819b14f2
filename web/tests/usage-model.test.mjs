import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_BUCKETS, budgetText, budgetsOf, cardsOf, chartByChoices, compactSeries, fillBuckets, formatMinutes,
  formatUsd, hasLatency, isEmpty, periodRange, readUtc, scopeNote, searchOf, stateFromSearch, topCaption, topRows }
  from "../js/usage-model.js";
import { seriesOf } from "../js/charts.js";

const now = new Date("2026-03-14T10:30:00Z");

test("the preset periods are whole UTC days and months, until excluded", () => {
  const r = (p) => { const x = periodRange(p, now); return [x.since, x.until, x.bucket]; };
  assert.deepEqual(r("today"), ["2026-03-14T00:00:00Z", "2026-03-15T00:00:00Z", "hour"]);
  assert.deepEqual(r("7d"), ["2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z", "day"]);
  assert.deepEqual(r("month"), ["2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", "day"]);
  assert.deepEqual(r("last-month"), ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "day"]);
  assert.deepEqual(r("nonsense"), r("month")); // the default
  // January's last month is December of the year before
  assert.equal(periodRange("last-month", new Date("2026-01-02T00:00:00Z")).since, "2025-12-01T00:00:00Z");
  assert.equal(periodRange("month", now).text, "2026-03-01 00:00 → 2026-04-01 00:00 UTC");
  assert.match(periodRange("7d", now).text, /today and the 6 days before/);
});

test("a custom range: UTC unless a zone is named, a date alone as To is that whole day, hours are whole", () => {
  const c = (from, to) => periodRange("custom", now, { from, to });
  assert.deepEqual([c("2026-03-01", "2026-03-02").since, c("2026-03-01", "2026-03-02").until],
    ["2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"]);
  const r = c("2026-03-01 09:30", "2026-03-01T11:15");
  assert.deepEqual([r.since, r.until, r.bucket], ["2026-03-01T09:00:00Z", "2026-03-01T12:00:00Z", "hour"]);
  assert.match(r.text, /counted in whole hours/);
  assert.equal(c("2026-03-01T10:00+02:00", "2026-03-01T12:00Z").since, "2026-03-01T08:00:00Z");
  const open = c("2026-03-14 08:00", "");
  assert.equal(open.until, "2026-03-14T11:00:00Z"); // up to now, the hour now is in included
  assert.match(open.text, /up to now/);
  assert.equal(c("2026-03-01", "2026-03-20").bucket, "day");
});

test("a custom range the page cannot read goes as typed; one it can judge is checked first", () => {
  assert.deepEqual(periodRange("custom", now, { from: "2026-13-45", to: "" }),
    { since: "2026-13-45", until: "", raw: true, invalid: { from: true, to: false } });
  assert.equal(periodRange("custom", now, { from: "2026-03-01", to: "yesterday" }).until, "yesterday");
  assert.match(periodRange("custom", now, { from: "2026-03-05", to: "2026-03-01 10:00" }).error, /To must be after From/);
  assert.match(periodRange("custom", now, { from: "", to: "" }).error, /type a From time/);
  assert.deepEqual(readUtc("2026-02-30"), { raw: "2026-02-30" }); // no 30 February
  assert.deepEqual(readUtc("2026-02-28 24:00"), { raw: "2026-02-28 24:00" });
  assert.deepEqual(readUtc(" 2026-02-28 "), { ms: Date.UTC(2026, 1, 28), dateOnly: true });
});

test("the period lives in the address: shared and reloaded as it was", () => {
  assert.deepEqual(stateFromSearch(""), { period: "month", from: "", to: "", bucket: "" });
  assert.deepEqual(stateFromSearch("?period=custom&from=2026-03-01&to=2026-03-02&per=hour"),
    { period: "custom", from: "2026-03-01", to: "2026-03-02", bucket: "hour" });
  assert.equal(stateFromSearch("?period=forever").period, "month");
  assert.equal(searchOf({ period: "month" }), "");
  assert.equal(searchOf({ period: "today", from: "x" }), "?period=today");
  assert.equal(searchOf({ period: "custom", from: "2026-03-01", to: "", bucket: "day" }), "?period=custom&from=2026-03-01&per=day");
});

test("money and minutes in words", () => {
  assert.equal(formatUsd(0), "$0.00");
  assert.equal(formatUsd(1234.567), "$1,234.57");
  assert.equal(formatUsd(0.9), "$0.90");
  assert.equal(formatUsd(0.0123456), "$0.0123");
  assert.equal(formatUsd(0.00001), "< $0.0001");
  assert.equal(formatUsd(null), "n/a");
  assert.equal(formatMinutes(0), "0 min");
  assert.equal(formatMinutes(2.5), "2.50 min");
  assert.equal(formatMinutes(1234.56), "1,234.6 min");
});

test("the cards: spend, sessions, responses, audio; unpriced records flagged only when there are some", () => {
  const cards = cardsOf({ cost_usd: 1.5, sessions: 3, responses: 7, audio_minutes: 0.5, unpriced: 2, billed: 9 });
  assert.deepEqual(cards.map((c) => [c.id, c.value]), [["spend", "$1.50"], ["sessions", "3"], ["responses", "7"],
    ["audio", "0.50 min"], ["unpriced", "2"]]);
  assert.equal(cards[4].flag, true);
  assert.match(cards[4].note, /not in the spend/);
  assert.equal(cards[0].title, "$1.500000");
  assert.equal(cardsOf({ cost_usd: 1 }).at(-1).flag, false);
  assert.equal(isEmpty({ cost_usd: 0, sessions: 0, responses: 0, billed: 0, unpriced: 0, audio_minutes: 0 }), true);
  assert.equal(isEmpty({ cost_usd: 0, sessions: 1 }), false); // a free session is still use
});

test("top rows keep the API's order, say each one's share, and name a missing group", () => {
  const totals = { by: "team", total: { cost_usd: 4 }, groups: 12,
    data: [{ team: "voice", cost_usd: 3, sessions: 2, responses: 5, unpriced: 0, audio_minutes: 1.25 },
      { team: null, cost_usd: 1, sessions: 1, responses: 1, unpriced: 1, audio_minutes: 0 }] };
  const rows = topRows(totals, "team");
  assert.deepEqual(rows.map((r) => [r.label, r.costText, r.share, r.sessions, r.unpriced, r.budget]),
    [["voice", "$3.00", "75.0 %", "2", 0, null], ["(no team)", "$1.00", "25.0 %", "1", 1, null]]);
  assert.equal(topCaption(totals, "teams"), "The top 2 of 12 teams by spend.");
  assert.equal(topCaption({ ...totals, groups: 2 }, "teams"), "All 2 teams, by spend.");
  assert.equal(topCaption({ data: [], groups: 0 }, "teams"), "");
  assert.equal(topCaption({ data: [{}], groups: 1 }, "models"), "1 model.");
  const budgets = budgetsOf({ data: [{ name: "voice", max_budget_usd: 20, budget_period: "monthly",
    spend: { usd: 0.5, budget_left_usd: 19.5, soft_budget_exceeded: false } }] });
  const [voice, none] = topRows(totals, "team", budgets);
  assert.deepEqual(voice.budget, { text: "$19.50 left of $20.00 (monthly)", state: "ok" });
  assert.deepEqual(none.budget, { text: "—", state: "none" });
});

test("a budget in words: none, what is left, spent, and past its soft limit", () => {
  assert.deepEqual(budgetText(null, {}), { text: "no budget", state: "none" });
  assert.deepEqual(budgetText(5, { usd: 5.2, budget_left_usd: -0.2, period: "1d" }), { text: "spent $5.00 (1d)", state: "over" });
  assert.deepEqual(budgetText(5, { usd: 4, budget_left_usd: 1, soft_budget_exceeded: true }), { text: "$1.00 left of $5.00 (lifetime)", state: "soft" });
});

test("charts get a bucket for every hour of the period up to now, the latency aligned to them", () => {
  const summary = { bucket: "hour", buckets: ["2026-03-14T02:00:00Z"],
    data: [{ time: "2026-03-14T02:00:00Z", key_name: "a", model: "m", cost_usd: 1, sessions: 1 }],
    latency: [{ time: "2026-03-14T02:00:00Z", responses: 2, p50_ms: 300, p95_ms: 500 }] };
  const range = periodRange("today", now);
  const filled = fillBuckets(summary, { ...range, bucket: "hour", now });
  assert.equal(filled.buckets.length, 11); // 00:00 to 10:00, now's hour included, nothing later
  assert.equal(filled.buckets[0], "2026-03-14T00:00:00Z");
  assert.equal(filled.latency[2].p50_ms, 300);
  assert.equal(filled.latency[3].p50_ms, null);
  assert.deepEqual(seriesOf(filled, "cost_usd", "key_name").series[0].values.slice(0, 4), [0, 0, 1, 0]);
  assert.equal(hasLatency(filled), true);
  assert.equal(hasLatency({ latency: [{ p50_ms: null, p95_ms: null }] }), false);
  // days of last month: all of them (now is after it)
  const last = periodRange("last-month", now);
  assert.equal(fillBuckets({ buckets: [], latency: [] }, { ...last, bucket: "day", now }).buckets.length, 28);
  // a bucket the data has beyond now (a record written ahead) stays
  const ahead = fillBuckets({ buckets: ["2026-03-14T20:00:00Z"], latency: [] }, { ...range, bucket: "hour", now });
  assert.equal(ahead.buckets.at(-1), "2026-03-14T20:00:00Z");
  // hours over a span too long for a chart: as the API gave them
  const year = { sinceMs: Date.UTC(2025, 0, 1), untilMs: Date.UTC(2026, 0, 1), bucket: "hour", now };
  assert.equal(fillBuckets({ buckets: ["2025-05-01T00:00:00Z"], latency: [] }, year).buckets.length, 1);
  assert.ok(MAX_BUCKETS >= 31 * 24);
});

test("a chart of many series keeps the costliest three and adds up the others", () => {
  const chart = { buckets: ["a", "b"], series: ["k1", "k2", "k3", "k4", "k5"].map((name, i) => ({ name, values: [i, 1] })) };
  const c = compactSeries(chart);
  assert.deepEqual(c.series.map((s) => s.name), ["k5", "k4", "k3", "2 others"]);
  assert.deepEqual(c.series[3].values, [1, 2]); // k1 + k2
  assert.equal(compactSeries({ ...chart, series: chart.series.slice(0, 4) }).series.length, 4);
});

test("a user key is told what it sees; its charts are not split by key", () => {
  assert.deepEqual(chartByChoices(false).map(([v]) => v), ["model", "provider"]);
  assert.deepEqual(chartByChoices(true).map(([v]) => v), ["key_name", "model", "provider"]);
  assert.match(scopeNote(false, "user"), /only its own figures \(key user\).*admin key/);
});
