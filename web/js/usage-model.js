// The Usage page's logic: periods, what the figures say, the tables' rows and the charts' buckets.
// No DOM: `node --test web/tests/` checks it.
//
// Every time is UTC. The spend API counts whole hours (`/spend/totals` and `/spend/summary` read
// the ledger's hourly rollups: an hour counts when it starts in [since, until)), so a period here
// is whole hours too, and the page says which hours it counts.

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** The most buckets a chart is filled out to (the summary keeps as many: a month of hours). */
export const MAX_BUCKETS = 744;
/** A chart shows this many series at most (the legend's room): the costliest, then "others". */
export const MAX_SERIES = 4;
/** Rows in each top table. */
export const TOP = 10;

/** The period picker's choices, in order. */
export const PERIODS = [
  { id: "today", label: "Today" },
  { id: "7d", label: "Last 7 days" },
  { id: "month", label: "This month" },
  { id: "last-month", label: "Last month" },
  { id: "custom", label: "Custom" },
];
export const DEFAULT_PERIOD = "month";

const iso = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");
const dayStart = (ms) => ms - (((ms % DAY_MS) + DAY_MS) % DAY_MS);
const hourFloor = (ms) => ms - (((ms % HOUR_MS) + HOUR_MS) % HOUR_MS);
const hourCeil = (ms) => (ms % HOUR_MS === 0 ? ms : hourFloor(ms) + HOUR_MS);

/** What the From and To fields read: a date, optionally a time (to the minute or second) and a zone. */
const TIME_INPUT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * A From/To field: {empty: true}; {ms, dateOnly} when the page reads it (UTC unless it names a
 * zone); or {raw} when it cannot — sent as typed, for the API to refuse in its own words (a
 * range the page cannot read is never silently widened).
 */
export function readUtc(text) {
  const raw = String(text ?? "").trim();
  if (!raw) return { empty: true };
  const m = TIME_INPUT.exec(raw);
  if (!m) return { raw };
  const [, y, mo, d, h, mi, s = "00", zone] = m;
  const hh = h ?? "00";
  const mm = mi ?? "00";
  const local = Date.UTC(+y, +mo - 1, +d, +hh, +mm, +s);
  const t = new Date(local);
  // a real calendar time: no 31 February, no 25:00 (Date would roll them over)
  if (t.getUTCFullYear() !== +y || t.getUTCMonth() !== +mo - 1 || t.getUTCDate() !== +d || t.getUTCHours() !== +hh
      || t.getUTCMinutes() !== +mm || t.getUTCSeconds() !== +s) return { raw };
  let offset = 0;
  if (zone && zone.toUpperCase() !== "Z") {
    const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone);
    offset = (z[1] === "-" ? -1 : 1) * (+z[2] * 60 + +z[3]) * 60_000;
  }
  return { ms: local - offset, dateOnly: h === undefined };
}

/** "2026-05-01 00:00" (UTC, no zone: the page labels it). */
export function utcText(ms) {
  return iso(ms).slice(0, 16).replace("T", " ");
}

/** The bucket a span is charted in by default: hours for up to two days, days beyond. */
export function defaultBucket(sinceMs, untilMs) {
  return untilMs - sinceMs <= 2 * DAY_MS ? "hour" : "day";
}

/**
 * A period as the API asks for it: {since, until (ISO, UTC; until excluded), sinceMs, untilMs,
 * bucket, text} — or {error} (the page's own words: the fields are checked before asking), or
 * {since, until, raw: true} when a field is sent as typed for the API to judge.
 * `now`: a Date; `custom`: {from, to} as typed (To empty: up to now).
 */
export function periodRange(period, now, custom = {}) {
  const t = now.getTime();
  const today = dayStart(t);
  const d = new Date(today);
  const y = d.getUTCFullYear();
  const mo = d.getUTCMonth();
  let since;
  let until;
  let note = "";
  switch (period) {
    case "today":
      [since, until] = [today, today + DAY_MS];
      break;
    case "7d":
      [since, until] = [today - 6 * DAY_MS, today + DAY_MS];
      note = "today and the 6 days before";
      break;
    case "month":
      [since, until] = [Date.UTC(y, mo, 1), Date.UTC(y, mo + 1, 1)];
      break;
    case "last-month":
      [since, until] = [Date.UTC(y, mo - 1, 1), Date.UTC(y, mo, 1)];
      break;
    case "custom": {
      const from = readUtc(custom.from);
      const to = readUtc(custom.to);
      if (from.empty) return { error: "Custom: type a From time (UTC), e.g. 2026-05-01 or 2026-05-01 09:00." };
      if (from.raw !== undefined || to.raw !== undefined) {
        // sent as typed: the API says what is wrong with it
        return { since: from.raw ?? iso(from.ms), until: to.empty ? "" : to.raw ?? iso(to.ms), raw: true,
          invalid: { from: from.raw !== undefined, to: to.raw !== undefined } };
      }
      since = hourFloor(from.ms);
      // a date alone as To is that whole day; hours are whole: one that starts before To counts
      const end = to.empty ? hourCeil(t + 1) : to.dateOnly ? to.ms + DAY_MS : to.ms;
      until = hourCeil(end);
      if (until <= since) return { error: "Custom: To must be after From.", invalid: { to: true } };
      const rounded = from.ms !== since || (!to.empty && end !== until);
      note = [to.empty ? "up to now" : "", rounded ? "counted in whole hours" : ""].filter(Boolean).join(", ");
      break;
    }
    default:
      return periodRange(DEFAULT_PERIOD, now);
  }
  const text = `${utcText(since)} → ${utcText(until)} UTC${note ? ` (${note})` : ""}`;
  return { since: iso(since), until: iso(until), sinceMs: since, untilMs: until, bucket: defaultBucket(since, until), text };
}

/** The page's state in its address (?period=…&from=…&to=…): a view can be shared and reloaded. */
export function stateFromSearch(search) {
  const p = new URLSearchParams(search);
  const period = PERIODS.some((x) => x.id === p.get("period")) ? p.get("period") : DEFAULT_PERIOD;
  const bucket = ["hour", "day"].includes(p.get("per")) ? p.get("per") : "";
  return { period, from: p.get("from") || "", to: p.get("to") || "", bucket };
}

export function searchOf({ period, from = "", to = "", bucket = "" }) {
  const p = new URLSearchParams();
  if (period && period !== DEFAULT_PERIOD) p.set("period", period);
  if (period === "custom") {
    if (from) p.set("from", from);
    if (to) p.set("to", to);
  }
  if (bucket) p.set("per", bucket);
  const s = p.toString();
  return s ? `?${s}` : "";
}

// -- words and numbers ----------------------------------------------------------------------------

const grouped = (v, digits) => v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** "$1,234.57", "$0.25"; under ten cents to a hundredth of a cent, "$0.0123"; "$0.00" for nothing. */
export function formatUsd(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "n/a";
  if (v === 0) return "$0.00";
  const sign = v < 0 ? "-" : "";
  const a = Math.abs(v);
  if (a >= 0.1) return `${sign}$${grouped(a, 2)}`;
  if (a < 0.00005) return `${sign}< $0.0001`;
  return `${sign}$${a.toFixed(4)}`;
}

/** The exact figure, for a tooltip: "$0.012345". */
export function exactUsd(v) {
  return typeof v === "number" ? `$${v.toFixed(6)}` : "n/a";
}

export function formatCount(n) {
  return typeof n === "number" ? grouped(n, 0) : "0";
}

export function formatMinutes(m) {
  if (typeof m !== "number" || m === 0) return "0 min";
  return m < 10 ? `${m.toFixed(2)} min` : `${grouped(m, 1)} min`;
}

/** A chart's value axis and tooltips for money (as the logs viewer's dashboard words it). */
export function chartUsd(v) {
  return v === 0 ? "$0" : v >= 0.01 ? `$${v.toFixed(2)}` : `$${v.toPrecision(2)}`;
}

/** An API refusal in words: its message (or the HTTP status when the body says nothing). */
export function apiMessage(status, body) {
  const e = body && body.error;
  return (e && e.message) || `HTTP ${status}`;
}

/** Whether a period's totals hold nothing at all (no spend, no session, no response, no record). */
export function isEmpty(total) {
  const t = total || {};
  return !(t.cost_usd || t.sessions || t.responses || t.billed || t.unpriced || t.audio_minutes);
}

/** The totals cards: [{id, label, value, title, flag, note}]. */
export function cardsOf(total) {
  const t = total || {};
  const unpriced = t.unpriced || 0;
  return [
    { id: "spend", label: "Spend (USD)", value: formatUsd(t.cost_usd ?? 0), title: exactUsd(t.cost_usd ?? 0),
      note: unpriced ? "priced records only" : "" },
    { id: "sessions", label: "Sessions", value: formatCount(t.sessions ?? 0), title: "sessions started in the period" },
    { id: "responses", label: "Responses", value: formatCount(t.responses ?? 0), title: "model responses in the period" },
    { id: "audio", label: "Audio minutes", value: formatMinutes(t.audio_minutes ?? 0), title: "audio in and out, metered" },
    { id: "unpriced", label: "Unpriced records", value: formatCount(unpriced), flag: unpriced > 0,
      title: "billed records the gateway had no price for",
      note: unpriced ? `${unpriced === 1 ? "its cost is" : "their cost is"} not in the spend: add the model's price` : "all priced" },
  ];
}

// -- the top tables -------------------------------------------------------------------------------

/** What a missing group is called in each table. */
const NONE = { key_name: "(no key)", team: "(no team)", model: "(no model)", provider: "(no provider)" };

/** A budget in words: "$19.50 left of $20.00 (monthly)"; {text: "no budget"} without one. */
export function budgetText(maxUsd, spend, period) {
  if (typeof maxUsd !== "number") return { text: "no budget", state: "none" };
  const left = spend && typeof spend.budget_left_usd === "number" ? spend.budget_left_usd
    : maxUsd - ((spend && spend.usd) || 0);
  const per = period || (spend && spend.period) || "";
  const over = left <= 0;
  const soft = Boolean(spend && spend.soft_budget_exceeded);
  return { text: `${over ? "spent" : `${formatUsd(left)} left of`} ${formatUsd(maxUsd)}${per ? ` (${per})` : " (lifetime)"}`,
    state: over ? "over" : soft ? "soft" : "ok" };
}

/**
 * `/spend/totals` → the table's rows: [{name, label, cost, costText, costTitle, share, sessions,
 * responses, audio, unpriced, budget}], as the API ordered them (the costliest first).
 * `budgets`: name → {max_budget_usd, budget_period, spend} (admin keys: /admin/keys or /admin/teams).
 */
export function topRows(totals, by, budgets = null) {
  const all = (totals && totals.total && totals.total.cost_usd) || 0;
  return ((totals && totals.data) || []).map((g) => {
    const name = g[by] ?? null;
    const b = budgets && name !== null ? budgets.get(name) : undefined;
    return {
      name,
      label: name === null || name === "" ? NONE[by] : String(name),
      cost: g.cost_usd,
      costText: formatUsd(g.cost_usd),
      costTitle: exactUsd(g.cost_usd),
      share: all > 0 ? `${((g.cost_usd / all) * 100).toFixed(1)} %` : "—",
      sessions: formatCount(g.sessions),
      responses: formatCount(g.responses),
      audio: formatMinutes(g.audio_minutes),
      unpriced: g.unpriced || 0,
      budget: budgets ? (b ? budgetText(b.max_budget_usd, b.spend, b.budget_period) : { text: "—", state: "none" }) : null,
    };
  });
}

/** The caption under a top table: how many of how many. */
export function topCaption(totals, noun) {
  const shown = ((totals && totals.data) || []).length;
  const groups = (totals && totals.groups) || 0;
  if (!groups) return "";
  if (groups === 1) return `1 ${noun.replace(/s$/, "")}.`;
  return groups > shown ? `The top ${shown} of ${formatCount(groups)} ${noun} by spend.` : `All ${groups} ${noun}, by spend.`;
}

/** The admin list (/admin/keys or /admin/teams) as name → entry, for the budget column. */
export function budgetsOf(list) {
  return new Map(((list && list.data) || []).map((x) => [x.name, x]));
}

// -- the charts -----------------------------------------------------------------------------------

/**
 * The summary with a bucket for every hour (or day) of the period up to now — the API lists only
 * buckets that had records — and the latency aligned to them (null where none). Buckets the data
 * has beyond them stay; a span of more than MAX_BUCKETS is left as the API gave it.
 */
export function fillBuckets(summary, { sinceMs, untilMs, bucket, now }) {
  const width = bucket === "day" ? DAY_MS : HOUR_MS;
  const start = sinceMs - (((sinceMs % width) + width) % width);
  const end = Math.min(untilMs, (now ? now.getTime() : untilMs - 1) + 1); // nothing after now (yet)
  const have = new Set(summary.buckets || []);
  const all = new Set(have);
  if (Number.isFinite(start) && Number.isFinite(end) && (end - start) / width <= MAX_BUCKETS) {
    for (let b = start; b < end; b += width) all.add(iso(b));
  }
  const buckets = [...all].sort();
  const latency = new Map((summary.latency || []).map((l) => [l.time, l]));
  return {
    ...summary,
    buckets,
    latency: buckets.map((b) => latency.get(b) || { time: b, responses: 0, p50_ms: null, p95_ms: null }),
  };
}

/**
 * At most `max` series (the legend has room for four): the costliest `max - 1` by their sum, and
 * the rest added up as "others" (a chart of ten keys still says who spends most).
 */
export function compactSeries(chart, max = MAX_SERIES) {
  if (chart.series.length <= max) return chart;
  const sum = (s) => s.values.reduce((a, v) => a + (v || 0), 0);
  const ranked = [...chart.series].sort((a, b) => sum(b) - sum(a) || (a.name < b.name ? -1 : 1));
  const kept = ranked.slice(0, max - 1);
  const rest = ranked.slice(max - 1);
  const others = { name: `${rest.length} others`, values: chart.buckets.map((_, i) => rest.reduce((a, s) => a + (s.values[i] || 0), 0)) };
  return { ...chart, series: [...kept, others] };
}

/** Whether the latency chart has a point to draw. */
export function hasLatency(summary) {
  return (summary.latency || []).some((l) => typeof l.p50_ms === "number" || typeof l.p95_ms === "number");
}

/** The charts' "by" choices: a user key sees only itself, so by key says nothing. */
export function chartByChoices(admin) {
  return [...(admin ? [["key_name", "key"]] : []), ["model", "model"], ["provider", "provider"]];
}

/** What a user key is told about the page (it sees only its own figures). */
export function scopeNote(admin, keyName) {
  if (admin) return "An admin key: every key's figures.";
  return `A user key sees only its own figures${keyName ? ` (key ${keyName})` : ""}: the top keys and teams need an admin key.`;
}
