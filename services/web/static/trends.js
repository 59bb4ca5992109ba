// Trend charts (own SVG code, no library, no CDN): a few readable groups instead of every number
// on one chart. Each chart has its own series, colours that stay with a series, axes with round
// ticks (power from zero), and a legend that switches series on and off. The energy chart shows
// the energy of each day as bars, from the bridge's counters (energy/history and the live
// counters), so it survives a restart of web_aid_tool.
// Uses app.js's globals (state, $, el, api, nodeName, shownTemperature, temperatureUnit, showTab).
"use strict";

const HISTORY_S = 6 * 3600; // what the longest chart range shows
const TREND_UNITS = ["°F", "W", "gpm", "Δ°F"];
// Okabe-Ito: distinct for every kind of colour vision, readable on white and on dark grey
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8c6d31", "#7f7f7f"];
const ZONE_AMBIENT = /^zone\d\/ambient-temperature$/;

// Which series each chart draws, in legend order; `right`: drawn against a second axis.
const CHARTS = [
  {
    id: "temperature", title: "Temperatures", unit: "°F",
    keys: ["abc/outdoor-temperature", ZONE_AMBIENT, "abc/entering-air-temperature", "abc/leaving-air-temperature",
      "dhw/water-temperature"],
  },
  {
    id: "power", title: "Power", unit: "W", zero: true,
    keys: ["abc/watts", "compressor/watts", "blower/watts", "aux-heat/watts", "pump/watts"],
  },
  {
    id: "loop", title: "Ground loop", unit: "°F", right: "gpm",
    keys: ["abc/entering-water-temperature", "abc/leaving-water-temperature", "pump/waterflow"],
  },
];

const LABELS = {
  "abc/outdoor-temperature": "Outdoor",
  "abc/entering-air-temperature": "Air from the house",
  "abc/leaving-air-temperature": "Air to the house",
  "dhw/water-temperature": "Hot water",
  "abc/watts": "Total",
  "compressor/watts": "Compressor",
  "blower/watts": "Blower",
  "aux-heat/watts": "Aux heat",
  "pump/watts": "Loop pump",
  "abc/entering-water-temperature": "Water from the loop",
  "abc/leaving-water-temperature": "Water to the loop",
  "pump/waterflow": "Flow (gpm, right axis)",
};

function chartOf(key) {
  return CHARTS.find((c) => c.keys.some((k) => (k instanceof RegExp ? k.test(key) : k === key)));
}

function seriesLabel(key, series) {
  if (LABELS[key]) return LABELS[key];
  if (ZONE_AMBIENT.test(key)) return nodeName(series.node);
  return `${nodeName(series.node)}: ${series.name}`;
}

function chartKeys(chart) {
  const keys = [];
  for (const k of chart.keys) {
    if (k instanceof RegExp) keys.push(...[...state.series.keys()].filter((s) => k.test(s)).sort());
    else if (state.series.has(k)) keys.push(k);
  }
  return keys;
}

async function loadHistory() {
  try {
    const data = await api("/api/history?units=" + encodeURIComponent(TREND_UNITS.join(",")));
    for (const [key, series] of Object.entries(data.series)) if (chartOf(key)) state.series.set(key, series);
    drawCharts();
  } catch (err) { console.warn("history", err); }
}

document.addEventListener("aurora:value", ({ detail: { key, item, value, t } }) => {
  const n = Number(value);
  if (!Number.isFinite(n) || value === "") return;
  if (key.startsWith("energy/")) { scheduleRedraw(); return; }
  if (!chartOf(key)) return;
  let series = state.series.get(key);
  if (!series) {
    series = { name: item.name, node: item.node, unit: item.unit, points: [] };
    state.series.set(key, series);
  }
  series.points.push([t, n]);
  while (series.points[0][0] < t - HISTORY_S) series.points.shift(); // a tab left open for days
  scheduleRedraw();
});

function scheduleRedraw() {
  if (state.redrawTimer || $("#trends").hidden) return;
  state.redrawTimer = setTimeout(() => { state.redrawTimer = null; drawCharts(); }, 1000);
}

function drawCharts() {
  const span = Number($("#trend-range").value) * 1000;
  const now = Date.now();
  for (const chart of CHARTS) drawChart(chart, now - span, now);
  drawEnergyBars();
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function svgText(attrs, text) {
  const node = svg("text", attrs);
  node.textContent = text;
  return node;
}

// Round ticks covering lo..hi: steps of 1, 2 or 5 × 10ⁿ, about `count` of them.
function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const first = Math.floor(lo / step) * step, last = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = first; v <= last + step / 2; v += step) ticks.push(Number(v.toFixed(6)));
  return { ticks, lo: first, hi: last, step };
}

function tickText(v, step) {
  const digits = step >= 1 ? 0 : Math.min(2, Math.ceil(-Math.log10(step)));
  return Math.abs(v) >= 10000 ? `${(v / 1000).toFixed(0)}k` : v.toFixed(digits);
}

function chartFrame(box) {
  const width = Math.max(box.clientWidth || 600, 280);
  return { width, height: 240, left: 46, right: 44, top: 10, bottom: 24 };
}

function drawChart(chart, from, to) {
  const box = $(`#chart-${chart.id}`);
  const legend = $(`#legend-${chart.id}`);
  if (!box || !legend) return;
  const f = { ...chartFrame(box), right: chart.right ? 44 : 10 };
  const root = svg("svg", { viewBox: `0 0 ${f.width} ${f.height}`, role: "img", "aria-label": `${chart.title} chart` });
  const convert = (unit) => (unit === "°F" ? shownTemperature : unit === "Δ°F" ? (v) => (state.celsius ? (v * 5) / 9 : v) : (v) => v);
  const unitShown = (unit) => (unit === "°F" ? temperatureUnit() : unit);
  const title = $(`#title-${chart.id}`);
  if (title) title.textContent = `${chart.title} (${unitShown(chart.unit)}${chart.right ? ", " + chart.right : ""})`;
  legend.replaceChildren();
  const sides = { left: { lo: Infinity, hi: -Infinity, lines: [] }, right: { lo: Infinity, hi: -Infinity, lines: [] } };
  chartKeys(chart).forEach((key, i) => {
    const series = state.series.get(key);
    const color = PALETTE[i % PALETTE.length];
    const off = state.hidden.has(key);
    const button = el("button", { type: "button", class: off ? "off" : "", "aria-pressed": String(!off), "data-series": key },
      el("span", { class: "swatch" }), seriesLabel(key, series));
    button.querySelector(".swatch").style.background = color;
    button.addEventListener("click", () => { off ? state.hidden.delete(key) : state.hidden.add(key); drawCharts(); });
    legend.append(el("li", {}, button));
    if (off) return;
    const side = chart.right && series.unit === chart.right ? sides.right : sides.left;
    const points = series.points.filter(([t]) => t * 1000 >= from).map(([t, v]) => [t, convert(series.unit)(v)]);
    if (!points.length) return;
    for (const [, v] of points) { side.lo = Math.min(side.lo, v); side.hi = Math.max(side.hi, v); }
    side.lines.push([points, color]);
  });
  if (!sides.left.lines.length && !sides.right.lines.length) {
    root.append(svgText({ x: f.width / 2, y: f.height / 2, "text-anchor": "middle", class: "empty" }, "No values yet"));
    box.replaceChildren(root);
    return;
  }
  const plotH = f.height - f.top - f.bottom;
  const scale = (side, zero) => {
    if (!side.lines.length) return null;
    const lo = zero ? Math.min(0, side.lo) : side.lo;
    const pad = zero ? 0 : Math.max((side.hi - lo) * 0.05, 0.5);
    const t = niceTicks(lo - pad, side.hi + pad);
    return { ...t, y: (v) => f.top + (1 - (v - t.lo) / (t.hi - t.lo)) * plotH };
  };
  const left = scale(sides.left, chart.zero), right = scale(sides.right, true);
  const x = (t) => f.left + ((t * 1000 - from) / (to - from)) * (f.width - f.left - f.right);
  const main = left || right;
  for (const v of main.ticks) {
    const yy = main.y(v);
    root.append(svg("line", { x1: f.left, x2: f.width - f.right, y1: yy, y2: yy, class: "axis" }));
    if (left) root.append(svgText({ x: f.left - 4, y: yy + 4, "text-anchor": "end" }, tickText(v, left.step)));
  }
  if (right) {
    for (const v of right.ticks) {
      root.append(svgText({ x: f.width - f.right + 4, y: right.y(v) + 4, "text-anchor": "start", class: "right-axis" }, tickText(v, right.step)));
    }
  }
  const step = (to - from) <= 3600e3 ? 900e3 : 3600e3;
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    const xx = x(t / 1000);
    root.append(svg("line", { x1: xx, x2: xx, y1: f.top, y2: f.height - f.bottom, class: "axis" }));
    root.append(svgText({ x: xx, y: f.height - 6, "text-anchor": "middle" },
      new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }
  for (const [side, s] of [[sides.left, left], [sides.right, right]]) {
    if (!s) continue;
    for (const [points, color] of side.lines) {
      const path = points.map(([t, v]) => `${x(t).toFixed(1)},${s.y(v).toFixed(1)}`);
      if (path.length === 1) path.push(`${(f.width - f.right).toFixed(1)},${s.y(points[0][1]).toFixed(1)}`);
      root.append(svg("polyline", { points: path.join(" "), class: "line", stroke: color }));
    }
  }
  box.replaceChildren(root);
}

// ------------------------------------------------------------------ energy per day

const ELECTRICAL = "electrical-total";
const THERMAL = ["thermal-heating", "thermal-cooling"];

function localDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// Energy of each day the bridge saw, oldest first: [{day, electrical, thermal}] in kWh. A day's
// energy is the next day's start (or, for the last day, the live counter) minus its own start.
function energyDays() {
  const history = state.props.get("energy/history");
  let data = null;
  try { data = history && history.value ? JSON.parse(history.value) : null; } catch { data = null; }
  if (!data || !data.days || !Array.isArray(data.channels)) return [];
  const index = (id) => data.channels.indexOf(id);
  const live = (id) => Number((state.props.get(`energy/${id}`) || {}).value);
  const days = Object.keys(data.days).sort();
  const sum = (values, ids) => ids.reduce((acc, id) => acc + (index(id) >= 0 ? Number(values[index(id)]) || 0 : 0), 0);
  return days.map((day, i) => {
    const start = data.days[day];
    const next = i + 1 < days.length ? data.days[days[i + 1]] : null;
    const end = next
      ? { electrical: sum(next, [ELECTRICAL]), thermal: sum(next, THERMAL) }
      : { electrical: live(ELECTRICAL), thermal: THERMAL.reduce((a, id) => a + (live(id) || 0), 0) };
    return {
      day,
      electrical: Math.max(0, (Number.isFinite(end.electrical) ? end.electrical : 0) - sum(start, [ELECTRICAL])),
      thermal: Math.max(0, (Number.isFinite(end.thermal) ? end.thermal : 0) - sum(start, THERMAL)),
    };
  });
}

// kWh used and delivered today and over the last seven days (today included). Days are the
// bridge's (its time zone, maybe UTC in a container): "today" is the bridge's newest day when it
// is within a day of this browser's date.
function energyTotals(now = new Date()) {
  const days = energyDays();
  const newest = days.length ? days[days.length - 1].day : null;
  const near = newest && Math.abs(new Date(`${newest}T12:00:00`) - now) < 36 * 3600e3;
  const today = near ? newest : localDay(now);
  const [y, m, d] = today.split("-").map(Number);
  const weekStart = localDay(new Date(y, m - 1, d - 6));
  const pick = (filter) => days.filter(filter).reduce((a, d) => ({ electrical: a.electrical + d.electrical, thermal: a.thermal + d.thermal }), { electrical: 0, thermal: 0 });
  return { today: pick((d) => d.day === today), week: pick((d) => d.day >= weekStart && d.day <= today), known: days.length > 0 };
}

function drawEnergyBars() {
  const box = $("#chart-energy");
  const legend = $("#legend-energy");
  if (!box || !legend) return;
  const days = energyDays().slice(-14);
  const f = { ...chartFrame(box), right: 8 };
  const root = svg("svg", { viewBox: `0 0 ${f.width} ${f.height}`, role: "img", "aria-label": "Energy per day chart" });
  const colors = { electrical: PALETTE[4], thermal: PALETTE[0] };
  legend.replaceChildren();
  for (const [kind, label] of [["electrical", "Electricity used"], ["thermal", "Heat (or cooling) delivered"]]) {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colors[kind]; // CSSOM, not a style attribute: the CSP allows it
    legend.append(el("li", {}, swatch, label));
  }
  if (!days.length) {
    root.append(svgText({ x: f.width / 2, y: f.height / 2, "text-anchor": "middle", class: "empty" },
      state.props.has("energy/history") ? "No days counted yet" : "This heat pump does not measure its power"));
    box.replaceChildren(root);
    return;
  }
  const hi = Math.max(...days.map((d) => Math.max(d.electrical, d.thermal)), 0.1);
  const t = niceTicks(0, hi, 4);
  const plotH = f.height - f.top - f.bottom;
  const y = (v) => f.top + (1 - v / t.hi) * plotH;
  for (const v of t.ticks) {
    root.append(svg("line", { x1: f.left, x2: f.width - f.right, y1: y(v), y2: y(v), class: "axis" }));
    root.append(svgText({ x: f.left - 4, y: y(v) + 4, "text-anchor": "end" }, tickText(v, t.step)));
  }
  const slot = (f.width - f.left - f.right) / days.length;
  const bar = Math.max(3, Math.min(18, slot * 0.36));
  days.forEach((d, i) => {
    const cx = f.left + slot * (i + 0.5);
    for (const [kind, dx] of [["electrical", -bar], ["thermal", 0]]) {
      const top = y(d[kind]);
      const rect = svg("rect", { x: cx + dx, y: top, width: bar - 1, height: Math.max(0, f.top + plotH - top), fill: colors[kind], class: `bar ${kind}` });
      const tip = svg("title");
      tip.textContent = `${d.day}: ${d[kind].toFixed(1)} kWh ${kind === "electrical" ? "used" : "delivered"}`;
      rect.append(tip);
      root.append(rect);
    }
    if (days.length <= 8 || i % 2 === days.length % 2 || i === days.length - 1) {
      const date = new Date(`${d.day}T12:00:00`);
      root.append(svgText({ x: cx, y: f.height - 6, "text-anchor": "middle" },
        date.toLocaleDateString([], { weekday: "short", day: "numeric" })));
    }
  });
  box.replaceChildren(root);
}
