// The Keys page: virtual keys and teams through the admin API (/admin/keys, /admin/teams).
// The admin key is the one the other pages keep (common.js: this tab's sessionStorage, or a
// `#key=…` link). A secret is shown once, in a dialog, and is never stored by the page.

import { authHeaders, el, loadKey, saveKey } from "./common.js";

const $ = (id) => document.getElementById(id);
/** Keys asked for at once (the API's page, at most). */
const PAGE_LIMIT = 1000;

const PERIODS = [
  ["", "never (a lifetime budget)"],
  ["1d", "daily (at 00:00 UTC)"],
  ["7d", "every 7 days"],
  ["30d", "every 30 days"],
  ["monthly", "monthly (on the 1st)"],
];
const PERIOD_WORDS = { "1d": "daily", "7d": "every 7 days", "30d": "every 30 days", monthly: "monthly" };
const EXPIRIES = [["7d", "in 7 days"], ["30d", "in 30 days"], ["90d", "in 90 days"], ["365d", "in a year"],
  ["date", "on a date…"]];

const state = { key: "", keys: [], teams: [], models: [], editing: null, editingTeam: null, rotating: null,
  confirmAction: null };

// -- formatting ---------------------------------------------------------------------------------

function formatUsd(v) {
  if (v === null || v === undefined) return "—";
  if (v === 0) return "$0.00";
  const a = Math.abs(v);
  return `${v < 0 ? "-" : ""}$${a >= 0.01 ? a.toFixed(2) : a.toPrecision(2)}`;
}

/** "2027-01-04T20:55:08Z" → "2027-01-04 20:55 UTC". */
function formatTime(iso) {
  if (!iso) return "";
  return `${iso.replace("T", " ").slice(0, 16)} UTC`;
}

/** What a spend's period reads as: "monthly from 2026-12-01", or "lifetime". */
function periodText(spend) {
  if (!spend || !spend.period) return "lifetime (never resets)";
  return `${PERIOD_WORDS[spend.period] || spend.period} from ${spend.period_start}`;
}

function expiryCell(k) {
  if (k.revoked_at) return el("span", { className: "expiry", dataset: { state: "revoked" } }, `revoked ${formatTime(k.revoked_at)}`);
  if (!k.expires_at) return el("span", { className: "expiry muted" }, "never");
  const left = Date.parse(k.expires_at) - Date.now();
  if (left <= 0) return el("span", { className: "expiry", dataset: { state: "expired" } }, `expired ${formatTime(k.expires_at)}`);
  const days = left / 86_400_000;
  const when = days >= 1 ? `in ${Math.round(days)} day${Math.round(days) === 1 ? "" : "s"}`
    : `in ${Math.max(1, Math.round(left / 3_600_000))} h`;
  return el("span", { className: "expiry", dataset: { state: days < 7 ? "soon" : "ok" } },
    el("span", {}, formatTime(k.expires_at)), el("small", { className: "muted" }, when));
}

/** Spend against a budget: the figures, a bar (when there is a budget), the period, the soft budget. */
function spendCell(spend, max, soft) {
  if (!spend) return el("span", { className: "muted" }, "—");
  const usd = spend.usd || 0;
  const over = max !== null && max !== undefined && usd >= max;
  const cell = el("div", { className: "spend", dataset: { over: String(over), soft: spend.soft_budget_exceeded ? "exceeded" : "" } });
  cell.append(el("div", { className: "spend-text" },
    max === null || max === undefined ? `${formatUsd(usd)} spent · no budget` : `${formatUsd(usd)} of ${formatUsd(max)}`));
  if (max !== null && max !== undefined) {
    const fill = el("span", { className: "fill" });
    const pct = max > 0 ? Math.min(100, (usd / max) * 100) : 100;
    fill.style.width = `${usd > 0 ? Math.max(pct, 1) : 0}%`; // a little spend is still seen
    const bar = el("div", { className: "bar", title: `${pct.toFixed(1)}% of the budget`,
      role: "img", ariaLabel: `${pct.toFixed(0)}% of the budget spent` }, fill);
    cell.append(bar);
  }
  const period = el("small", { className: "period muted" }, periodText(spend));
  if (spend.period_end) period.title = `the next period starts ${spend.period_end}`;
  cell.append(period);
  if (spend.soft_budget_exceeded) {
    cell.append(el("span", { className: "badge soft-warning" }, `soft budget ${formatUsd(soft)} reached`));
  } else if (soft !== null && soft !== undefined) {
    period.append(` · soft budget ${formatUsd(soft)}`);
  }
  if (over) cell.append(el("span", { className: "badge over" }, "budget spent: sessions refused"));
  return cell;
}

function modelsText(models) {
  if (!models || !models.length) return "none";
  return models.includes("*") ? "any" : models.join(", ");
}

// -- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
    // an invalid_field message starts with the field it is about ("name: …")
    const m = /^([a-z_]+): /.exec(message);
    this.field = code === "invalid_field" && m ? m[1] : null;
  }
}

async function api(method, path, body) {
  const headers = authHeaders(state.key);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError("the gateway did not answer (is it running?)", 0, "network");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = data.error || {};
    throw new ApiError(e.message || `HTTP ${res.status}`, res.status, e.code || "");
  }
  return data;
}

// -- errors shown where they happened ----------------------------------------------------------

function showError(id, err, form = null) {
  const p = $(id);
  p.textContent = err ? err.message || String(err) : "";
  p.hidden = !err;
  if (form) {
    for (const f of form.querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
    if (err && err.field) {
      for (const f of form.querySelectorAll(`[data-field="${err.field}"]`)) f.setAttribute("aria-invalid", "true");
    }
  }
}

function setStatus(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

// -- loading ------------------------------------------------------------------------------------

async function connect() {
  state.key = $("key").value.trim();
  saveKey(state.key);
  showError("key-error", null);
  if (!state.key) {
    $("admin").hidden = true;
    $("no-key").hidden = false;
    return setStatus("Enter an admin key to manage keys and teams.");
  }
  setStatus("Loading…", "busy");
  try {
    await loadKeys();
  } catch (e) {
    $("admin").hidden = true;
    $("no-key").hidden = false;
    const why = e.status === 403 ? `${e.message}: this key is not an admin key (role = "admin" in config.toml)`
      : e.status === 401 ? `${e.message}: check the key` : e.message;
    showError("key-error", new Error(why));
    return setStatus("Cannot list the keys.", "error");
  }
  $("admin").hidden = false;
  $("no-key").hidden = true;
  await Promise.all([loadTeams(), loadModels()]);
  summary();
}

function summary(done = "") {
  const ledger = state.keys.filter((k) => k.source === "ledger").length;
  const text = `${state.keys.length} key${state.keys.length === 1 ? "" : "s"} (${ledger} made here), `
    + `${state.teams.length} team${state.teams.length === 1 ? "" : "s"}.`;
  setStatus(done ? `${done} ${text}` : text, "ok");
}

async function loadKeys() {
  const params = new URLSearchParams({ limit: String(PAGE_LIMIT) });
  if ($("show-revoked").checked) params.set("include_revoked", "true");
  const page = await api("GET", `/admin/keys?${params}`);
  state.keys = page.data;
  showError("keys-error", null);
  renderKeys();
  $("keys-more").hidden = page.total <= page.data.length;
  $("keys-more").textContent = `Showing the first ${page.data.length} of ${page.total} keys.`;
}

async function loadTeams() {
  try {
    state.teams = (await api("GET", "/admin/teams")).data;
    showError("teams-error", null);
  } catch (e) {
    state.teams = [];
    showError("teams-error", new Error(`Cannot list the teams: ${e.message}`));
  }
  renderTeams();
}

async function loadModels() {
  try {
    state.models = (await api("GET", "/v1/models")).data;
  } catch {
    state.models = []; // the form says so where the models would be
  }
}

/** Keys and teams again, after a change. */
async function refresh(done) {
  try {
    await loadKeys();
  } catch (e) {
    showError("keys-error", new Error(`Cannot list the keys: ${e.message}`));
  }
  await loadTeams();
  summary(done);
}

// -- the keys table ------------------------------------------------------------------------------

function actionButton(label, title, onClick, className = "small secondary") {
  const b = el("button", { type: "button", className, title }, label);
  b.addEventListener("click", onClick);
  return b;
}

function keyRow(k) {
  const revoked = Boolean(k.revoked_at);
  const name = el("td", { className: "name" }, el("strong", {}, k.name),
    k.role === "admin" ? el("span", { className: "badge role" }, "admin") : "",
    revoked ? el("span", { className: "badge revoked" }, "revoked") : "",
    k.hint ? el("code", { className: "hint-code", title: "the secret's start and end: the secret itself is never shown again" }, k.hint) : "");
  if (k.previous_secret_valid_until && !revoked) {
    name.append(el("small", { className: "muted grace" }, `old secret works until ${formatTime(k.previous_secret_valid_until)}`));
  }
  let actions;
  if (k.read_only) {
    actions = el("td", { className: "actions" }, el("small", { className: "muted" }, "edit config.toml"));
  } else if (revoked) {
    actions = el("td", { className: "actions" });
  } else {
    actions = el("td", { className: "actions" },
      actionButton("Edit", `Change ${k.name}'s models, team, limits or expiry`, () => openKeyForm(k)),
      actionButton("Rotate", `A new secret for ${k.name}`, () => openRotate(k)),
      actionButton("Revoke", `Revoke ${k.name}`, () => confirmRevoke(k), "small danger"));
  }
  return el("tr", { dataset: { name: k.name, source: k.source, state: revoked ? "revoked" : "active" } },
    name,
    el("td", { className: "team" }, k.team || el("span", { className: "muted" }, "—")),
    el("td", { className: "models" }, modelsText(k.models)),
    el("td", { className: "spend-cell" }, spendCell(k.spend, k.max_budget_usd, k.soft_budget_usd)),
    el("td", {}, expiryCell(k)),
    el("td", { className: "source" }, k.read_only
      ? el("span", { className: "badge read-only", title: "a [[keys]] entry of config.toml: change it there and restart" }, "config · read-only")
      : el("span", { className: "badge ledger" }, "ledger")),
    actions);
}

function renderKeys() {
  $("keys-table").tBodies[0].replaceChildren(...state.keys.map(keyRow));
  $("keys-empty").hidden = state.keys.some((k) => k.source === "ledger");
}

// -- the teams table -----------------------------------------------------------------------------

function teamRow(t) {
  return el("tr", { dataset: { name: t.name } },
    el("td", { className: "name" }, el("strong", {}, t.name)),
    el("td", { className: "count" }, String(t.keys ?? 0)),
    el("td", { className: "spend-cell" }, spendCell(t.spend, t.max_budget_usd, t.soft_budget_usd)),
    el("td", { className: "actions" },
      actionButton("Edit", `Change ${t.name}'s budget`, () => openTeamForm(t)),
      actionButton("Delete", `Delete ${t.name}`, () => confirmDeleteTeam(t), "small danger")));
}

function renderTeams() {
  $("teams-table").tBodies[0].replaceChildren(...state.teams.map(teamRow));
  $("teams-empty").hidden = state.teams.length > 0;
}

// -- the key form (new, or edit) -----------------------------------------------------------------

function fillSelect(select, options, value) {
  select.replaceChildren(...options.map(([v, label]) => el("option", { value: v }, label)));
  select.value = value;
}

function modelChoices(key) {
  const known = state.models.map((m) => [m.id, m.api && m.api !== "realtime" ? `${m.id} (${m.api})` : m.id]);
  const chosen = key && !key.models.includes("*") ? key.models : [];
  for (const m of chosen) if (!known.some(([id]) => id === m)) known.push([m, `${m} (not served now)`]);
  $("k-model-list").replaceChildren(...known.map(([id, label]) => el("label", { className: "check" },
    el("input", { type: "checkbox", value: id, checked: chosen.includes(id) }), label)));
  $("k-any-model").checked = !key || key.models.includes("*");
  $("k-models-note").hidden = state.models.length > 0;
  $("k-models-note").textContent = "The gateway's model list could not be read: only Any model can be picked now.";
  syncModels();
}

function syncModels() {
  const any = $("k-any-model").checked;
  for (const box of $("k-model-list").querySelectorAll("input")) box.disabled = any;
  $("k-model-list").classList.toggle("disabled", any);
}

function syncExpiry() {
  const dated = $("k-expires").value === "date";
  $("k-expires-date-label").hidden = !dated;
}

function openKeyForm(key = null) {
  state.editing = key ? key.name : null;
  const form = $("key-edit");
  form.reset();
  showError("key-form-error", null, form);
  $("key-dialog-title").textContent = key ? `Edit key ${key.name}` : "New key";
  $("key-save").textContent = key ? "Save" : "Create key";
  $("k-name").value = key ? key.name : "";
  $("k-name").disabled = Boolean(key);
  modelChoices(key);
  const teams = state.teams.map((t) => [t.name, t.name]);
  if (key && key.team && !teams.some(([n]) => n === key.team)) teams.push([key.team, key.team]);
  fillSelect($("k-team"), [["", "no team"], ...teams], key ? key.team || "" : "");
  fillSelect($("k-period"), PERIODS, key ? key.budget_period || "" : "");
  const num = (id, v) => { $(id).value = v === null || v === undefined ? "" : String(v); };
  num("k-budget", key && key.max_budget_usd);
  num("k-soft", key && key.soft_budget_usd);
  num("k-audio", key && key.max_audio_minutes);
  num("k-sessions", key && key.max_sessions);
  num("k-rate", key && key.max_sessions_per_minute);
  const expiries = key ? [["keep", key.expires_at ? `keep: ${formatTime(key.expires_at)}` : "keep: never"],
    ["never", "never"], ...EXPIRIES] : [["never", "never"], ...EXPIRIES];
  fillSelect($("k-expires"), expiries, key ? "keep" : "never");
  $("k-expires-date").value = "";
  syncExpiry();
  $("key-dialog").showModal();
  (key ? $("k-budget") : $("k-name")).focus();
}

class FormError extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

/** A number input: null when empty; a FormError when the browser could not read what was typed. */
function numberOf(id, field) {
  const input = $(id);
  if (input.validity.badInput) throw new FormError(field, "not a number");
  return input.value.trim() === "" ? null : Number(input.value);
}

function keyBody(creating) {
  const body = {};
  const put = (field, value) => {
    if (!creating || (value !== null && value !== "")) body[field] = value;
  };
  if (creating) body.name = $("k-name").value.trim();
  if ($("k-any-model").checked) body.models = ["*"];
  else {
    body.models = [...$("k-model-list").querySelectorAll("input:checked")].map((b) => b.value);
    if (!body.models.length) throw new FormError("models", "pick at least one model, or tick Any model");
  }
  put("team", $("k-team").value || null);
  put("max_budget_usd", numberOf("k-budget", "max_budget_usd"));
  put("budget_period", $("k-period").value || null);
  put("soft_budget_usd", numberOf("k-soft", "soft_budget_usd"));
  put("max_audio_minutes", numberOf("k-audio", "max_audio_minutes"));
  put("max_sessions", numberOf("k-sessions", "max_sessions"));
  put("max_sessions_per_minute", numberOf("k-rate", "max_sessions_per_minute"));
  const expires = $("k-expires").value;
  if (expires === "date") {
    if (!$("k-expires-date").value) throw new FormError("expires", "pick the day it expires");
    body.expires = `${$("k-expires-date").value}T00:00:00Z`;
  } else if (expires === "never") put("expires", null);
  else if (expires !== "keep") body.expires = expires;
  return body;
}

async function submitKeyForm(event) {
  event.preventDefault();
  const form = $("key-edit");
  const creating = state.editing === null;
  let body;
  try {
    body = keyBody(creating);
  } catch (e) {
    return showError("key-form-error", e, form);
  }
  $("key-save").disabled = true;
  try {
    if (creating) {
      const made = await api("POST", "/admin/keys", body);
      $("key-dialog").close();
      showSecret(`Key ${made.name} created`, made.secret, "");
      await refresh(`Key ${made.name} created.`);
    } else {
      const name = state.editing;
      await api("PATCH", `/admin/keys/${encodeURIComponent(name)}`, body);
      $("key-dialog").close();
      await refresh(`Key ${name} saved.`);
    }
  } catch (e) {
    showError("key-form-error", e, form);
  } finally {
    $("key-save").disabled = false;
  }
}

// -- a secret, shown once ------------------------------------------------------------------------

function showSecret(title, secret, note) {
  $("secret-title").textContent = title;
  $("secret").value = secret;
  $("secret-note").textContent = note;
  $("secret-note").hidden = !note;
  $("copy-status").textContent = "";
  $("secret-dialog").showModal();
  $("secret").select();
}

async function copySecret() {
  const secret = $("secret").value;
  let ok = false;
  try {
    await navigator.clipboard.writeText(secret);
    ok = true;
  } catch {
    // no clipboard API here (a page not on https or localhost): the browser's copy of the selection
    $("secret").select();
    ok = document.execCommand("copy");
  }
  $("copy-status").textContent = ok ? "Copied to the clipboard." : "Could not copy: select the secret and press Ctrl+C.";
  $("copy-status").dataset.state = ok ? "ok" : "error";
}

// -- rotate, revoke ------------------------------------------------------------------------------

function openRotate(k) {
  state.rotating = k.name;
  $("rotate-title").textContent = `Rotate key ${k.name}`;
  $("rotate-grace").value = "1h";
  showError("rotate-error", null, $("rotate-form"));
  $("rotate-dialog").showModal();
}

async function rotate(event) {
  event.preventDefault();
  const name = state.rotating;
  $("rotate-go").disabled = true;
  try {
    const made = await api("POST", `/admin/keys/${encodeURIComponent(name)}/rotate`, { grace_period: $("rotate-grace").value });
    $("rotate-dialog").close();
    showSecret(`New secret for ${name}`, made.secret, made.previous_secret_valid_until
      ? `The old secret keeps working until ${formatTime(made.previous_secret_valid_until)}.`
      : "The old secret no longer works.");
    await refresh(`Key ${name} rotated.`);
  } catch (e) {
    showError("rotate-error", e, $("rotate-form"));
  } finally {
    $("rotate-go").disabled = false;
  }
}

function confirmThen({ title, text, button, action }) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-go").textContent = button;
  showError("confirm-error", null);
  state.confirmAction = action;
  $("confirm-dialog").showModal();
}

async function confirmed(event) {
  event.preventDefault();
  $("confirm-go").disabled = true;
  try {
    await state.confirmAction();
    $("confirm-dialog").close();
  } catch (e) {
    showError("confirm-error", e);
  } finally {
    $("confirm-go").disabled = false;
  }
}

function confirmRevoke(k) {
  confirmThen({
    title: `Revoke key ${k.name}?`,
    text: `Its secret is refused from now on, on every server, and its open sessions end. This cannot be undone `
      + `(the name can be given to a new key later).`,
    button: "Revoke",
    action: async () => {
      await api("POST", `/admin/keys/${encodeURIComponent(k.name)}/revoke`);
      await refresh(`Key ${k.name} revoked.`);
    },
  });
}

// -- teams ----------------------------------------------------------------------------------------

function openTeamForm(team = null) {
  state.editingTeam = team ? team.name : null;
  const form = $("team-edit");
  form.reset();
  showError("team-form-error", null, form);
  $("team-dialog-title").textContent = team ? `Edit team ${team.name}` : "New team";
  $("team-save").textContent = team ? "Save" : "Create team";
  $("t-name").value = team ? team.name : "";
  $("t-name").disabled = Boolean(team);
  fillSelect($("t-period"), PERIODS, team ? team.budget_period || "" : "");
  $("t-budget").value = team && team.max_budget_usd !== null ? String(team.max_budget_usd) : "";
  $("t-soft").value = team && team.soft_budget_usd !== null ? String(team.soft_budget_usd) : "";
  $("team-dialog").showModal();
  (team ? $("t-budget") : $("t-name")).focus();
}

async function saveTeam(event) {
  event.preventDefault();
  const form = $("team-edit");
  const creating = state.editingTeam === null;
  let body;
  try {
    body = { max_budget_usd: numberOf("t-budget", "max_budget_usd"), budget_period: $("t-period").value || null,
      soft_budget_usd: numberOf("t-soft", "soft_budget_usd") };
  } catch (e) {
    return showError("team-form-error", e, form);
  }
  $("team-save").disabled = true;
  try {
    if (creating) {
      body.name = $("t-name").value.trim();
      for (const f of Object.keys(body)) if (body[f] === null) delete body[f];
      await api("POST", "/admin/teams", body);
    } else {
      await api("PATCH", `/admin/teams/${encodeURIComponent(state.editingTeam)}`, body);
    }
    $("team-dialog").close();
    await refresh(creating ? `Team ${body.name} created.` : `Team ${state.editingTeam} saved.`);
  } catch (e) {
    showError("team-form-error", e, form);
  } finally {
    $("team-save").disabled = false;
  }
}

function confirmDeleteTeam(t) {
  confirmThen({
    title: `Delete team ${t.name}?`,
    text: `Its budget stops applying. A team that still has keys is not deleted: move its keys to another team `
      + `(Edit → Team) or revoke them first.`,
    button: "Delete",
    action: async () => {
      await api("DELETE", `/admin/teams/${encodeURIComponent(t.name)}`);
      await refresh(`Team ${t.name} deleted.`);
    },
  });
}

// -- wiring --------------------------------------------------------------------------------------

function init() {
  const key = loadKey();
  if (key) $("key").value = key;
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    connect();
  });
  $("show-revoked").addEventListener("change", () => refresh());
  $("new-key").addEventListener("click", () => openKeyForm());
  $("new-team").addEventListener("click", () => openTeamForm());
  $("key-edit").addEventListener("submit", submitKeyForm);
  $("k-any-model").addEventListener("change", syncModels);
  $("k-expires").addEventListener("change", syncExpiry);
  $("team-edit").addEventListener("submit", saveTeam);
  $("rotate-form").addEventListener("submit", rotate);
  $("confirm-form").addEventListener("submit", confirmed);
  $("copy-secret").addEventListener("click", copySecret);
  $("secret-done").addEventListener("click", () => $("secret-dialog").close());
  // the secret leaves the page with its dialog: nothing keeps it once closed
  $("secret-dialog").addEventListener("close", () => {
    $("secret").value = "";
    $("copy-status").textContent = "";
  });
  for (const b of document.querySelectorAll("dialog [data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  // a `#key=…` link pasted into this open tab: take the key at once, as on a fresh load
  window.addEventListener("hashchange", () => {
    const pasted = loadKey();
    if (pasted && pasted !== $("key").value) {
      $("key").value = pasted;
      connect();
    }
  });
  if (key) connect();
}

init();
