// Small SVG charts for the spend dashboard, as markup strings: no DOM, no library (smaller than
// any charting package, and `node --test` checks them). Every text is escaped.

const W = 560;
const H = 180;
const PAD = { left: 64, right: 8, top: 10, bottom: 34 };
/** Series colours, in order; a series beyond them reuses them. */
export const COLOURS = ["#2563eb", "#15803d", "#b45309", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626"];

export function escapeXml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

/** A summary row's name under `by` ("key_name", "model", "provider"), as `nameOf` words it. */
function rowName(row, by, nameOf) {
  return row[by] ? nameOf(row[by]) : "(none)";
}

/**
 * Summary rows → {buckets, series: [{name, values}]}: one value per bucket, summed by `by`;
 * `nameOf` words a value (a provider id as its name).
 */
export function seriesOf(summary, field, by, nameOf = String) {
  const buckets = summary.buckets || [];
  const index = new Map(buckets.map((b, i) => [b, i]));
  const byName = new Map();
  for (const row of summary.data || []) {
    const name = rowName(row, by, nameOf);
    if (!byName.has(name)) byName.set(name, new Array(buckets.length).fill(0));
    const i = index.get(row.time);
    if (i !== undefined && typeof row[field] === "number") byName.get(name)[i] += row[field];
  }
  return { buckets, hourly: summary.bucket !== "day", series: [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, values]) => ({ name, values })) };
}

/**
 * The whole period's totals per `by` value: [{name, cost_usd, sessions, responses, unpriced}],
 * the costliest first (then by name).
 */
export function totalsOf(summary, by, nameOf = String) {
  const byName = new Map();
  for (const row of summary.data || []) {
    const name = rowName(row, by, nameOf);
    const t = byName.get(name) || { name, cost_usd: 0, sessions: 0, responses: 0, unpriced: 0 };
    for (const field of ["cost_usd", "sessions", "responses", "unpriced"]) {
      if (typeof row[field] === "number") t[field] += row[field];
    }
    byName.set(name, t);
  }
  return [...byName.values()].sort((a, b) => b.cost_usd - a.cost_usd || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function frame(max, format, buckets, title, hourly) {
  const plotH = H - PAD.top - PAD.bottom;
  const ticks = [0, 0.5, 1].map((f) => {
    const y = PAD.top + plotH * (1 - f);
    return `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" class="grid"/>`
      + `<text x="${PAD.left - 4}" y="${y + 4}" text-anchor="end" class="tick">${escapeXml(format(max * f))}</text>`;
  }).join("");
  const step = (W - PAD.left - PAD.right) / Math.max(1, buckets.length);
  const every = Math.max(1, Math.ceil(buckets.length / 6));
  const labels = buckets.map((b, i) => (i % every ? "" : `<text x="${PAD.left + step * (i + 0.5)}" y="${H - PAD.bottom + 14}"`
    + ` text-anchor="middle" class="tick">${escapeXml(hourly ? `${b.slice(5, 10)} ${b.slice(11, 13)}h` : b.slice(5, 10))}</text>`)).join("");
  return `<title>${escapeXml(title)}</title>${ticks}${labels}`;
}

function legend(series) {
  return `<g class="legend">${series.map((s, i) => `<g class="legend-item" transform="translate(${PAD.left + i * 120},${H - 6})">`
    + `<rect width="9" height="9" y="-8" fill="${COLOURS[i % COLOURS.length]}"/>`
    + `<text x="13" y="0">${escapeXml(s.name.length > 16 ? `${s.name.slice(0, 15)}…` : s.name)}</text></g>`).join("")}</g>`;
}

/** Stacked bars: one bar per bucket, one segment per series. */
/** Bucket labels: "03-01 14h" for hourly buckets, "03-01" for daily ones (UTC). */
export function barChart({ buckets, series, hourly = true }, { title, format = String }) {
  const totals = buckets.map((_, i) => series.reduce((t, s) => t + s.values[i], 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotH = H - PAD.top - PAD.bottom;
  const step = (W - PAD.left - PAD.right) / Math.max(1, buckets.length);
  const bars = [];
  buckets.forEach((b, i) => {
    let y = PAD.top + plotH;
    series.forEach((s, j) => {
      const h = (s.values[i] / max) * plotH;
      if (h <= 0) return;
      y -= h;
      bars.push(`<rect class="bar" data-series="${escapeXml(s.name)}" data-time="${escapeXml(b)}" x="${PAD.left + step * i + step * 0.15}"`
        + ` y="${y}" width="${step * 0.7}" height="${h}" fill="${COLOURS[j % COLOURS.length]}">`
        + `<title>${escapeXml(`${s.name} · ${b}: ${format(s.values[i])}`)}</title></rect>`);
    });
  });
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeXml(title)}">`
    + `${frame(max, format, buckets, title, hourly)}${bars.join("")}${legend(series)}</svg>`;
}

/** Lines: one per series, a point per bucket that has a value (null: a gap). */
export function lineChart({ buckets, series, hourly = true }, { title, format = String }) {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => typeof v === "number"))));
  const plotH = H - PAD.top - PAD.bottom;
  const step = (W - PAD.left - PAD.right) / Math.max(1, buckets.length);
  const lines = series.map((s, j) => {
    const pts = s.values.map((v, i) => (typeof v === "number" ? [PAD.left + step * (i + 0.5), PAD.top + plotH * (1 - v / max), v, buckets[i]] : null))
      .filter(Boolean);
    const colour = COLOURS[j % COLOURS.length];
    return `<polyline class="line" data-series="${escapeXml(s.name)}" fill="none" stroke="${colour}" stroke-width="2" points="${pts.map((p) => `${p[0]},${p[1]}`).join(" ")}"/>`
      + pts.map((p) => `<circle cx="${p[0]}" cy="${p[1]}" r="3" fill="${colour}"><title>${escapeXml(`${s.name} · ${p[3]}: ${format(p[2])}`)}</title></circle>`).join("");
  });
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeXml(title)}">`
    + `${frame(max, format, buckets, title, hourly)}${lines.join("")}${legend(series)}</svg>`;
}
