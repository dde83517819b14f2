// The Usage page: the thin DOM layer over usage-model.js and charts.js.
//
// Per period: GET /spend/totals (by model, key and team: the cards and the top tables),
// GET /spend/summary (the charts) and, for an admin key, /admin/teams and /admin/keys (the budget
// columns). /admin/teams also says which kind of key this is: a user key gets 403 there, and sees
// only its own figures everywhere else.

import { authHeaders, el, loadKey, noKeyHint, saveKey } from "./common.js";
import { barChart, lineChart, seriesOf } from "./charts.js";
import { providerName } from "./providers.js";
import { TOP, apiMessage, budgetsOf, cardsOf, chartByChoices, chartUsd, compactSeries, fillBuckets, hasLatency,
  isEmpty, periodRange, scopeNote, searchOf, stateFromSearch, topCaption, topRows } from "./usage-model.js";

const $ = (id) => document.getElementById(id);
/** A query the server refused for now (429, 503 with Retry-After) is asked again this many times. */
const RETRIES = 3;

const state = { period: "month", from: "", to: "", bucket: "", by: "" };
/** Each load's number: an answer to an older one (the period changed meanwhile) is dropped. */
let generation = 0;
/** What the last load showed, for redrawing the charts by another grouping without asking again. */
let shown = null;

function setStatus(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function key() {
  return $("key").value.trim();
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON answer, asked again while the server says "busy, retry after"; {status, body}. */
async function get(path) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, { headers: authHeaders(key()) });
    const retryAfter = Number(res.headers.get("Retry-After"));
    if ([429, 503].includes(res.status) && retryAfter && attempt < RETRIES) {
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
      continue;
    }
    const body = await res.json().catch(() => ({}));
    return { status: res.status, ok: res.ok, body };
  }
}

async function getOk(path) {
  const r = await get(path);
  if (!r.ok) throw new ApiError(r.status, apiMessage(r.status, r.body));
  return r.body;
}

function periodParams(range) {
  const p = new URLSearchParams();
  if (range.since) p.set("since", range.since);
  if (range.until) p.set("until", range.until);
  return p;
}

function readControls() {
  const checked = document.querySelector('input[name="period"]:checked');
  state.period = checked ? checked.value : "month";
  state.from = $("from").value.trim();
  state.to = $("to").value.trim();
  $("custom").hidden = state.period !== "custom";
}

function clearResults() {
  shown = null;
  $("results").hidden = true;
  $("scope").hidden = true;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
  setStatus(text, "error");
}

/** Ask for the period's figures and show them. */
async function load() {
  const gen = ++generation;
  readControls();
  history.replaceState(null, "", location.pathname + searchOf(state));
  $("error").hidden = true;
  $("from").removeAttribute("aria-invalid");
  $("to").removeAttribute("aria-invalid");
  if (!key()) {
    clearResults();
    $("no-key").textContent = noKeyHint(location.origin).replace("/#key=", "/usage#key=");
    $("no-key").hidden = false;
    $("range").textContent = "";
    return setStatus("Enter a key to see its usage.", "idle");
  }
  $("no-key").hidden = true;
  const range = periodRange(state.period, new Date(), { from: state.from, to: state.to });
  for (const [field, bad] of Object.entries((range && range.invalid) || {})) {
    if (bad) $(field).setAttribute("aria-invalid", "true");
  }
  if (range.error) {
    clearResults();
    $("range").textContent = "";
    return showError(range.error);
  }
  const bucket = state.bucket || range.bucket || "day";
  $("bucket").value = bucket;
  $("range").textContent = range.raw ? `From ${range.since || "?"} to ${range.until || "now"} (as typed, UTC)` : range.text;
  setStatus("Loading…", "busy");
  $("results").setAttribute("aria-busy", "true");
  const p = periodParams(range);
  const totals = (by) => getOk(`/spend/totals?${new URLSearchParams({ ...Object.fromEntries(p), by, top: String(TOP) })}`);
  try {
    const [teams, keys, byModel, byKey, byTeam, summary] = await Promise.all([
      get("/admin/teams"), get("/admin/keys?limit=1000"), totals("model"), totals("key_name"), totals("team"),
      getOk(`/spend/summary?${new URLSearchParams({ ...Object.fromEntries(p), bucket, split: "provider" })}`),
    ]);
    if (gen !== generation) return;
    if (teams.status === 401) throw new ApiError(401, apiMessage(teams.status, teams.body));
    const admin = teams.status !== 403; // a user key is refused the admin routes
    shown = { admin, range, bucket, byModel, byKey, byTeam, summary,
      teamBudgets: admin && teams.ok ? budgetsOf(teams.body) : null,
      keyBudgets: admin && keys.ok ? budgetsOf(keys.body) : null };
    render();
  } catch (e) {
    if (gen !== generation) return;
    clearResults();
    showError(`Cannot read the usage: ${e.message}`);
  } finally {
    if (gen === generation) $("results").removeAttribute("aria-busy");
  }
}

function render() {
  const s = shown;
  const total = s.byModel.total;
  $("results").hidden = false;
  // the cards
  $("cards").replaceChildren(...cardsOf(total).map((c) =>
    el("div", { className: "card", id: `card-${c.id}`, title: c.title, dataset: { flag: String(Boolean(c.flag)) } },
      el("span", { className: "card-label" }, c.label),
      el("span", { className: "card-value" }, c.value),
      c.note ? el("small", { className: "card-note" }, c.note) : "")));
  // who sees what
  const ownName = !s.admin && s.byKey.data.length ? s.byKey.data[0].key_name : "";
  $("scope").textContent = scopeNote(s.admin, ownName);
  $("scope").hidden = s.admin;
  $("top-keys-panel").hidden = !s.admin;
  $("top-teams-panel").hidden = !s.admin;
  const empty = isEmpty(total);
  $("empty").textContent = `No spend in this period (${s.range.raw ? "as typed" : s.range.text}).`;
  $("empty").hidden = !empty;
  $("details").hidden = empty;
  if (!empty) {
    renderCharts();
    renderTable("top-models", topRows(s.byModel, "model"), false);
    $("top-models-caption").textContent = topCaption(s.byModel, "models");
    if (s.admin) {
      renderTable("top-keys", topRows(s.byKey, "key_name", s.keyBudgets), Boolean(s.keyBudgets));
      $("top-keys-caption").textContent = topCaption(s.byKey, "keys");
      renderTable("top-teams", topRows(s.byTeam, "team", s.teamBudgets), Boolean(s.teamBudgets));
      $("top-teams-caption").textContent = `${topCaption(s.byTeam, "teams")} A key without a team counts as (no team).`;
    }
  }
  const period = document.querySelector('input[name="period"]:checked');
  const label = period ? period.parentElement.textContent.trim() : "";
  setStatus(empty ? `${label}: no spend.` : `${label}: ${$("card-spend").querySelector(".card-value").textContent} over `
    + `${total.sessions} session(s), ${total.responses} response(s).`, empty ? "idle" : "ok");
}

function renderTable(id, rows, budgets) {
  const table = $(id);
  table.dataset.budgets = String(budgets);
  const cells = (r) => [
    el("td", { className: "name", title: r.label }, r.label),
    el("td", { className: "cost", title: r.costTitle }, r.costText,
      r.unpriced ? el("small", { className: "unpriced", title: "records without a price: not in the spend" },
        ` + ${r.unpriced} unpriced`) : ""),
    el("td", { className: "share" }, r.share),
    el("td", {}, r.sessions),
    el("td", {}, r.responses),
    el("td", {}, r.audio),
    ...(budgets && r.budget ? [el("td", { className: "budget", dataset: { state: r.budget.state } }, r.budget.text)] : []),
  ];
  const body = rows.length ? rows.map((r) => el("tr", { dataset: { name: r.name ?? "" } }, ...cells(r)))
    : [el("tr", {}, el("td", { className: "name", colSpan: 7 }, "No spend in this period."))];
  table.tBodies[0].replaceChildren(...body);
}

function renderCharts() {
  const s = shown;
  const choices = chartByChoices(s.admin);
  const select = $("chart-by");
  const wanted = state.by && choices.some(([v]) => v === state.by) ? state.by : choices[0][0];
  select.replaceChildren(...choices.map(([value, text]) => el("option", { value }, text)));
  select.value = wanted;
  const by = wanted;
  const nameOf = by === "provider" ? providerName : String;
  const per = s.bucket === "day" ? "per day (UTC)" : "per hour (UTC)";
  const summary = fillBuckets(s.summary, { sinceMs: s.range.sinceMs, untilMs: s.range.untilMs, bucket: s.bucket, now: new Date() });
  const word = { key_name: "key", model: "model", provider: "provider" }[by];
  $("spend-title").textContent = `Spend (USD) ${per}, by ${word}`;
  $("sessions-title").textContent = `Sessions started ${per}, by ${word}`;
  $("latency-title").textContent = `Response latency (ms) ${per}: median (p50) and p95`;
  $("chart-spend").innerHTML = barChart(compactSeries(seriesOf(summary, "cost_usd", by, nameOf)), // charts.js escapes every text
    { title: "Spend (USD)", format: chartUsd });
  $("chart-sessions").innerHTML = barChart(compactSeries(seriesOf(summary, "sessions", by, nameOf)),
    { title: "Sessions started", format: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)) }); // an axis tick may be 2.5
  const latency = hasLatency(summary);
  $("latency-empty").hidden = latency;
  $("chart-latency").innerHTML = latency ? lineChart({ buckets: summary.buckets, hourly: s.bucket !== "day", series: [
    { name: "p50", values: summary.latency.map((l) => l.p50_ms) }, { name: "p95", values: summary.latency.map((l) => l.p95_ms) }] },
  { title: "Response latency (ms)", format: (v) => `${Math.round(v)} ms` }) : "";
}

function init() {
  const initial = stateFromSearch(location.search);
  Object.assign(state, initial);
  const radio = document.querySelector(`input[name="period"][value="${initial.period}"]`);
  if (radio) radio.checked = true;
  $("from").value = initial.from;
  $("to").value = initial.to;
  $("custom").hidden = initial.period !== "custom";
  $("chart-by").replaceChildren(...chartByChoices(true).map(([value, text]) => el("option", { value }, text)));
  const k = loadKey();
  if (k) $("key").value = k;
  for (const r of document.querySelectorAll('input[name="period"]')) {
    r.addEventListener("change", () => {
      state.bucket = ""; // each period has its own default
      readControls();
      if (state.period === "custom") {
        $("from").focus();
        if (!$("from").value.trim()) {
          $("range").textContent = "Type From and To (UTC), then Show.";
          return;
        }
      }
      load();
    });
  }
  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    saveKey(key());
    load();
  });
  $("key").addEventListener("change", () => {
    saveKey(key());
    load();
  });
  $("bucket").addEventListener("change", () => {
    state.bucket = $("bucket").value;
    load();
  });
  $("chart-by").addEventListener("change", () => {
    state.by = $("chart-by").value;
    if (shown && !$("details").hidden) renderCharts();
  });
  // a `#key=…` link pasted into this open tab: take the key at once, as on a fresh load
  window.addEventListener("hashchange", () => {
    const pasted = loadKey();
    if (pasted && pasted !== key()) {
      $("key").value = pasted;
      load();
    }
  });
  load();
}

init();
