// web_aid_tool's built-in UI: plain JavaScript, no framework and no CDN, so it works on a LAN
// without internet. Live values arrive as Server-Sent Events from /api/events; every write is a
// POST carrying the session's CSRF token, after the user confirmed it.
"use strict";

const state = {
  csrf: "", mode: "direct", faultNames: {}, tree: null,
  celsius: false,            // the AWL's units setting (/setunits.cgi), per browser session
  props: new Map(),          // "node/prop" -> property descriptor (with .value)
  series: new Map(),         // "node/prop" -> {name, unit, points: [[t, v], ...]}
  hidden: new Set(),         // chart series switched off in the legend
  healthSeen: 0,             // when this page last heard the bridge's $health (Date.now())
  redrawTimer: null,
};

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "for" || k === "role") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent("/ui/" + location.hash); throw new Error("login required"); }
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const err = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    err.body = body; // the outcome of a write, the cause of a failed read
    throw err;
  }
  return body;
}

// ------------------------------------------------------------------ formatting

const SUMMARY = [
  ["abc/current-mode", "Mode"],
  ["faults/current", "Current fault"],
  ["abc/watts", "Total power"],
  ["abc/entering-water-temperature", "Entering water"],
  ["abc/leaving-water-temperature", "Leaving water"],
  ["zone1/ambient-temperature", "Zone 1"],
  ["zone1/heating-target-temperature", "Heat to"],
  ["zone1/cooling-target-temperature", "Cool to"],
  ["dhw/water-temperature", "Hot water"],
  ["pump/waterflow", "Loop flow"],
];

function faultText(code) {
  const n = Number(code);
  if (!Number.isFinite(n)) return code ?? "–";
  if (n === 0) return "No fault";
  return `E${n} ${state.faultNames[String(n)] || ""}`.trim();
}

// The heat pump works in °F; °C is only how this browser shows it. A value typed in °C goes to the
// bridge as °F with two decimals (as Home Assistant sends it); the bridge rounds it to what the
// unit stores, so the value shown in °C, sent back unchanged, sets the same °F. A difference of
// two temperatures (unit Δ°F: superheat, subcool, water ΔT) converts by the factor only.
const isTemperature = (prop) => prop && prop.unit === "°F";
const isDelta = (prop) => prop && prop.unit === "Δ°F";
const temperatureUnit = () => (state.celsius ? "°C" : "°F");
const shownTemperature = (fahrenheit) => (state.celsius ? ((fahrenheit - 32) * 5) / 9 : fahrenheit);
const shownDelta = (fahrenheit) => (state.celsius ? (fahrenheit * 5) / 9 : fahrenheit);
const fahrenheitOf = (shown) => (state.celsius ? Math.round(((shown * 9) / 5 + 32) * 100) / 100 : shown);

// `value` is what the bridge published, unless `shown` says it is already in the page's unit.
function formatValue(prop, value = prop && prop.value, shown = false) {
  if (value === null || value === undefined || value === "") return "–";
  if (isTemperature(prop) && Number.isFinite(Number(value))) {
    const n = shown ? Number(value) : shownTemperature(Number(value));
    return n.toFixed(1) + temperatureUnit();
  }
  if (isDelta(prop) && Number.isFinite(Number(value))) {
    const n = shown ? Number(value) : shownDelta(Number(value));
    return n.toFixed(1) + temperatureUnit();
  }
  if (prop.node === "faults" && prop.id === "current") return faultText(value);
  if (prop.datatype === "boolean") return value === "true" ? "yes" : value === "false" ? "no" : value;
  if (prop.datatype === "enum") return value.replaceAll("_", " ");
  const unit = prop.unit ? (prop.unit.startsWith("°") || prop.unit === "%" ? prop.unit : " " + prop.unit) : "";
  if (prop.datatype === "float" || prop.datatype === "integer") {
    const n = Number(value);
    const decimals = prop.unit === "kWh" ? 2 : 1; // energy counters count Wh: 0.0 kWh would hide them
    if (Number.isFinite(n)) return (prop.datatype === "float" ? n.toFixed(decimals) : String(n)) + unit;
  }
  return value + unit;
}

// ------------------------------------------------------------------ tabs

function showTab(name) {
  const tabs = [...document.querySelectorAll("#tabs a")].filter((a) => !a.hidden);
  if (!tabs.some((a) => a.dataset.tab === name)) name = tabs[0].dataset.tab;
  for (const a of tabs) {
    if (a.dataset.tab === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== name;
  // A tab's link is #name, the id of its section: the browser scrolls that under the sticky header
  // (on a phone the header hides the first card); a page starts at its top.
  window.scrollTo(0, 0);
  if (name === "faults") loadFaults();
  if (name === "trends") drawCharts();
}

// ------------------------------------------------------------------ dashboard

function indexTree(tree) {
  state.tree = tree;
  state.props.clear();
  for (const node of tree.nodes) for (const prop of node.properties) {
    prop.node = node.id;
    state.props.set(`${node.id}/${prop.id}`, prop);
  }
  $("#device-name").textContent = tree.name ? `${tree.name} · ${tree.device}` : tree.device || "Heat pump";
  if (!tree.link) setStatus("broker offline: values may be old", "offline");
  else if (tree.state === "ready") setStatus("live", "live");
  else setStatus(tree.state ? `heat pump ${tree.state}` : "waiting for the bridge", "connecting");
  if (tree.health && tree.health.published_at) state.healthSeen = Date.now();
  renderStale();
  document.dispatchEvent(new CustomEvent("aurora:tree", { detail: tree }));
}

// ------------------------------------------------------------------ stale banner (every page)

const STALE_AFTER_S = 60; // no good poll for this long (a dozen fast polls): the values are old
const clock = (when) => new Date(when).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const wall = (iso) => (iso ? Date.parse(iso) : NaN);

// Why the values shown may be old, and since when (ms since the epoch), or null when they are live.
function staleness() {
  const tree = state.tree;
  if (!tree) return null;
  const health = tree.health || {};
  const lastPoll = wall(health.last_good_poll);
  const since = (fallback) => (Number.isFinite(lastPoll) ? lastPoll : fallback);
  if (!tree.link || $("#live-status").dataset.state === "offline") {
    return { why: "No connection to the broker", since: (tree.link_since || Date.now() / 1000) * 1000 };
  }
  if (tree.state === "alert") return { why: "No answer from the heat pump", since: since(tree.state_since * 1000) };
  if (tree.state === "lost") return { why: "The bridge is offline", since: (tree.state_since || 0) * 1000 || since(NaN) };
  if (tree.state === "disconnected") return { why: "The bridge was stopped", since: (tree.state_since || 0) * 1000 || since(NaN) };
  if (tree.state !== "ready") return null; // init: the bridge is starting, values follow
  const published = wall(health.published_at);
  if (Number.isFinite(lastPoll) && Number.isFinite(published) && published - lastPoll > STALE_AFTER_S * 1000) {
    return { why: "No new values from the heat pump", since: lastPoll }; // both times the bridge's clock
  }
  if (state.healthSeen && Date.now() - state.healthSeen > 3 * STALE_AFTER_S * 1000) {
    return { why: "No word from the bridge", since: state.healthSeen };
  }
  return null;
}

function renderStale() {
  const banner = $("#stale-banner");
  if (!banner) return;
  const stale = staleness();
  banner.hidden = !stale;
  document.body.classList.toggle("stale", Boolean(stale));
  if (!stale) { banner.textContent = ""; return; }
  const at = Number.isFinite(stale.since) && stale.since > 0 ? clock(stale.since) : null;
  banner.textContent = at ? `${stale.why} since ${at}: the values shown are from then.`
    : `${stale.why}: the values shown may be old.`;
  banner.dataset.since = at || "";
  // Every value says how old it is while the page is stale
  for (const cell of document.querySelectorAll("[data-key]")) ageCell(cell);
}

function ageCell(cell) {
  const prop = state.props.get(cell.dataset.key);
  const stale = document.body.classList.contains("stale");
  const t = prop && prop.t ? prop.t * 1000 : null;
  const stamp = $("#stale-banner").dataset.since;
  cell.dataset.age = stale ? `as of ${stamp || (t ? clock(t) : "?")}` : "";
  if (t) cell.title = `received ${new Date(t).toLocaleString()}`;
}

function valueCell(key, tag = "dd", cls = "") {
  const prop = state.props.get(key);
  const cell = el(tag, { class: cls, "data-key": key, text: formatValue(prop) });
  markFault(cell, key, prop && prop.value);
  ageCell(cell);
  return cell;
}

function markFault(cell, key, value) {
  // Red only while there is a fault: "No fault" in red reads like an alarm.
  if (key === "faults/current") cell.classList.toggle("alarm", Number(value) > 0);
}

function nodeName(id) {
  const node = state.tree && state.tree.nodes.find((n) => n.id === id);
  return node ? node.name : id;
}

function renderDashboard() {
  const summary = $("#summary");
  summary.replaceChildren();
  for (const [key, label] of SUMMARY) {
    if (!state.props.has(key)) continue;
    const cls = key === "faults/current" ? "metric fault" : "metric";
    summary.append(el("div", { class: cls }, el("div", { class: "label", text: label }), valueCell(key, "div", "value")));
  }
  const nodes = $("#nodes");
  nodes.replaceChildren();
  for (const node of state.tree.nodes) {
    const list = el("dl", { class: "props" });
    for (const prop of node.properties) {
      if (node.id === "faults" && prop.id !== "current") continue; // counters: the Faults page
      if (node.id === "energy" && prop.id === "history") continue; // JSON: the energy bars on Trends
      list.append(el("dt", { text: prop.name }), valueCell(`${node.id}/${prop.id}`));
    }
    if (!list.children.length) continue;
    nodes.append(el("div", { class: "card", "data-node": node.id }, el("h2", { text: node.name }), list));
  }
}

function applyValue({ node, prop, value, t }) {
  const key = `${node}/${prop}`;
  const item = state.props.get(key);
  if (!item) return;
  const changed = item.value !== value;
  item.value = value;
  item.t = t;
  for (const cell of document.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)) {
    cell.textContent = formatValue(item);
    markFault(cell, key, value);
    ageCell(cell);
    if (changed) { cell.classList.remove("flash"); void cell.offsetWidth; cell.classList.add("flash"); }
  }
  document.dispatchEvent(new CustomEvent("aurora:value", { detail: { key, item, value, t } }));
}

function setStatus(text, kind) {
  const status = $("#live-status");
  status.textContent = text;
  status.dataset.state = kind;
}

function connectEvents() {
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (e) => {
    indexTree(JSON.parse(e.data));
    renderDashboard();
    renderSettings();
  });
  source.addEventListener("values", (e) => { for (const change of JSON.parse(e.data)) applyValue(change); });
  source.addEventListener("health", (e) => {
    if (!state.tree) return;
    state.tree.health = JSON.parse(e.data);
    state.healthSeen = Date.now();
    renderStale();
  });
  source.onerror = () => { setStatus("reconnecting…", "offline"); renderStale(); };
  setInterval(renderStale, 15000); // "no word from the bridge" needs no message to show
}

// Trends (trends.js) and the home page (home.js) follow the tree and values through the
// aurora:tree and aurora:value events.

// ------------------------------------------------------------------ register browser

async function runQuery(text) {
  const status = $("#query-status");
  const body = $("#register-table tbody");
  status.className = "status-line";
  status.textContent = "Reading…";
  try {
    const data = await api("/api/registers?q=" + encodeURIComponent(text));
    body.replaceChildren(...data.rows.map((r) => el("tr", { "data-address": String(r.address) },
      el("td", { class: "num", text: String(r.address) }), el("td", { text: r.name }),
      el("td", { class: "value", text: r.value }), el("td", { class: "num", text: String(r.raw) }))));
    const missing = data.failed.length ? `; ${data.failed.length} did not answer` : "";
    status.textContent = `${data.rows.length} registers${missing}.`;
  } catch (err) {
    status.className = "status-line error";
    status.textContent = readError(err);
  }
}

// A failed read through the bridge, with its cause when the server knows it: "No answer from the
// heat pump since 10:42 (…)" rather than the RPC's error code.
function readError(err) {
  const body = err.body || {};
  if (!body.cause) return err.message;
  const cause = body.cause[0].toUpperCase() + body.cause.slice(1);
  const since = body.since && Number.isFinite(Date.parse(body.since)) ? ` since ${clock(Date.parse(body.since))}` : "";
  return `${cause}${since}.`;
}

// ------------------------------------------------------------------ faults

async function loadFaults() {
  const body = $("#fault-table tbody");
  try {
    const data = await api("/api/faults");
    const describe = (f) => (f ? `${f.code ? "E" + f.code + " " : ""}${f.name}${f.locked_out ? " (locked out)" : ""}` : "–");
    $("#fault-current").textContent = describe(data.current);
    $("#fault-lockout").textContent = data.last_lockout ? describe(data.last_lockout) : "none";
    body.replaceChildren(...data.history.map((f) => el("tr", {},
      el("td", { class: "num", text: `E${f.code}` }), el("td", { text: f.name }), el("td", { class: "num", text: String(f.count) }))));
    if (!data.history.length) body.append(el("tr", {}, el("td", { colSpan: 3, text: "No faults recorded." })));
  } catch (err) {
    const text = readError(err);
    if (err.body && err.body.cause) { $("#fault-current").textContent = text; $("#fault-lockout").textContent = "–"; }
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 3, class: "error", text })));
  }
}

async function clearFaults() {
  const status = $("#faults-status");
  if (!(await confirmChange("Reset every fault counter of the heat pump to zero? This cannot be undone.", "Clear fault history?"))) {
    status.textContent = "Not cleared.";
    return;
  }
  status.className = "status-line";
  status.textContent = "Clearing…";
  try {
    await api("/api/faults/clear", { method: "POST", headers: { "X-CSRF-Token": state.csrf } });
    status.textContent = "Sent: the counters read zero once the heat pump has done it.";
  } catch (err) {
    status.className = "status-line error";
    status.textContent = err.message;
  }
}

// ------------------------------------------------------------------ settings

// The unit's range in °F (or its own unit) from $format, and what the input shows.
function rangeOf(prop) {
  const [low, high] = (prop.format || "").split(":").map((x) => (x === "" || x === undefined ? NaN : Number(x)));
  return { low, high };
}
const shownNumber = (prop, value) => (isTemperature(prop) ? shownTemperature(value) : value);

function inputFor(prop) {
  if (prop.datatype === "enum" || prop.datatype === "boolean") {
    const options = prop.datatype === "boolean" ? ["true", "false"] : prop.format.split(",").filter(Boolean);
    const select = el("select", { "aria-label": prop.name });
    for (const o of options) select.append(el("option", { value: o, text: formatValue(prop, o) }));
    select.value = prop.value ?? options[0];
    return select;
  }
  // step "any": the unit's own step is applied by the bridge (a pre-filled 21.1 °C must not fail a
  // 0.5 step check of the browser's); the range is checked below, with the bridge's rule
  const input = el("input", { type: "number", inputMode: "decimal", step: "any", "aria-label": prop.name });
  const { low, high } = rangeOf(prop);
  if (Number.isFinite(low)) input.min = (Math.floor(shownNumber(prop, low) * 10) / 10).toString();
  if (Number.isFinite(high)) input.max = (Math.ceil(shownNumber(prop, high) * 10) / 10).toString();
  if (prop.value != null && prop.value !== "") {
    const n = Number(prop.value);
    input.value = isTemperature(prop) ? shownTemperature(n).toFixed(1) : prop.value;
  }
  return input;
}

// What the page sends for a typed value, or an error that says why not: the bridge's rule (round to
// the unit's step, then the range of $format), as far as the page knows it.
function checkSetting(prop, text) {
  if (prop.datatype === "enum" || prop.datatype === "boolean") return { payload: text };
  const typed = Number(String(text).trim().replace(",", "."));
  if (!String(text).trim() || !Number.isFinite(typed)) return { error: `${text} is not a number` };
  let value = isTemperature(prop) ? fahrenheitOf(typed) : typed;
  if (prop.datatype === "integer") value = Math.round(value);
  const { low, high } = rangeOf(prop);
  const slack = prop.datatype === "integer" ? 0 : 0.05; // the bridge rounds to tenths first
  if ((Number.isFinite(low) && value < low - slack) || (Number.isFinite(high) && value > high + slack)) {
    const unit = isTemperature(prop) ? temperatureUnit() : prop.unit ? ` ${prop.unit}` : "";
    const ends = [low, high].map((v) => (isTemperature(prop) ? shownTemperature(v).toFixed(1) : String(v)));
    return { error: `${typed}${unit} is outside ${ends[0]}..${ends[1]}${unit}` };
  }
  return { payload: String(value), shown: typed };
}

function confirmChange(text, title = "Change a setting?") {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
  });
}

// A homeowner's order: each zone's set points and modes first, then hot water and humidity; what
// an installer sets (line voltage, blower presets, loop pump) last, in a group of its own.
const INSTALLER = /^(abc\/line-voltage-setting|blower\/.+-speed|pump\/.+)$/;
const ZONE_ORDER = ["heating-target-temperature", "cooling-target-temperature", "target-mode", "target-fan-mode",
  "fan-intermittent-on", "fan-intermittent-off"];
const NODE_ORDER = (id) => (id.startsWith("zone") ? 0 : id === "dhw" ? 1 : id === "humidistat" ? 2 : 3);

function renderSettings() {
  const list = $("#settings-list");
  const focused = document.activeElement && list.contains(document.activeElement);
  if (focused) return; // do not pull the input away from someone typing; values still update
  list.replaceChildren();
  const nodes = [...state.tree.nodes].sort((a, b) => NODE_ORDER(a.id) - NODE_ORDER(b.id));
  const installer = [];
  for (const node of nodes) {
    // Clearing the fault history is not a setting: the Faults page has its own button for it.
    const settable = node.properties.filter((p) => p.settable && !(p.datatype === "enum" && p.format === "clear"));
    const rank = (p) => { const i = ZONE_ORDER.indexOf(p.id); return i < 0 ? ZONE_ORDER.length : i; };
    const mine = settable.filter((p) => !INSTALLER.test(`${node.id}/${p.id}`)).sort((a, b) => rank(a) - rank(b));
    for (const p of settable) if (INSTALLER.test(`${node.id}/${p.id}`)) installer.push([node, p]);
    if (!mine.length) continue;
    const group = el("div", { class: "grid" });
    list.append(el("section", { class: "group", "data-node": node.id }, el("h2", { text: node.name }), group));
    for (const prop of mine) group.append(settingForm(node, prop));
  }
  if (installer.length) {
    const group = el("div", { class: "grid" });
    list.append(el("section", { class: "group installer", "data-node": "installer" },
      el("h2", { text: "Installer settings" }),
      el("p", { class: "hint", text: "Set when the heat pump was installed: change them only if you know why." }), group));
    for (const [node, prop] of installer) group.append(settingForm(node, prop, `${node.name}: `));
  }
  if (!list.children.length) list.append(el("p", { class: "hint", text: "No settable values yet (waiting for the bridge)." }));
}

const ANSWER_S = 20; // the server gives the bridge 15 s; the page never waits longer than this

function settingForm(node, prop, prefix = "") {
  const key = `${node.id}/${prop.id}`;
  const input = inputFor(prop);
  const result = el("div", { class: "result", role: "status" });
  const button = el("button", { type: "submit", text: "Change…" });
  const form = el("form", { class: "card setting", "data-setting": key, noValidate: true },
    el("label", { text: prefix + prop.name }),
    el("div", { class: "current", "data-key": key, text: formatValue(prop) }),
    el("div", { class: "row" }, input, button), result);
  const say = (text, kind = "") => { result.textContent = text; result.className = `result ${kind}`.trim(); };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const typed = input.value.trim();
    if (!typed) return;
    const checked = checkSetting(prop, typed);
    if (checked.error) { say(`Not sent: ${checked.error}.`, "error"); return; }
    const wanted = checked.shown !== undefined ? formatValue(prop, checked.shown, true) : formatValue(prop, typed);
    const ok = await confirmChange(`${node.name}: ${prop.name} from ${formatValue(prop)} to ${wanted}?`);
    if (!ok) { say("Not changed."); return; }
    button.disabled = true;
    say("Sending to the heat pump…", "pending");
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), ANSWER_S * 1000);
    try {
      const reply = await api("/api/set", {
        method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
        body: JSON.stringify({ node: node.id, prop: prop.id, value: checked.payload }), signal: abort.signal,
      });
      const now = reply.value != null ? formatValue(prop, reply.value) : "";
      say(`Done: the heat pump now reports ${now}.${reply.warning ? " " + reply.warning : ""}`, "ok");
    } catch (err) {
      if (err.name === "AbortError") { say(`No answer within ${ANSWER_S} s: the heat pump may not have it.`, "error"); return; }
      const body = err.body || {};
      const still = body.value != null ? ` It stays at ${formatValue(prop, body.value)}.` : "";
      if (body.status === "refused") say(`Refused: ${body.error}.${still}`, "error");
      else if (body.status === "failed" || body.status === "no-answer") say(`Not set: ${body.error}.${still}`, "error");
      else say(err.message, "error");
    } finally { clearTimeout(timer); button.disabled = false; }
  });
  return form;
}

// ------------------------------------------------------------------ units

function showUnits() {
  $("#units").textContent = state.celsius ? "°C → °F" : "°F → °C";
  $("#units").setAttribute("aria-label", state.celsius ? "Show °F" : "Show °C");
}

async function toggleUnits() {
  const units = state.celsius ? 0 : 1;
  const reply = await fetch(`/setunits.cgi?units=${units}`, { credentials: "same-origin" });
  if (!reply.ok) return;
  state.celsius = units === 1;
  showUnits();
  if (state.tree) { renderDashboard(); renderSettings(); }
  drawCharts();
}

// ------------------------------------------------------------------ start

async function start() {
  const session = await api("/api/session");
  state.csrf = session.csrf;
  state.mode = session.mode;
  state.faultNames = session.fault_names;
  state.celsius = session.units === 1;
  showUnits();
  $("#units").addEventListener("click", toggleUnits);
  $("#logout-csrf").value = session.csrf;
  if (session.mode !== "mqtt") {
    for (const a of document.querySelectorAll("#tabs a[data-live]")) a.hidden = true;
    $("#direct-notice").hidden = false;
    setStatus("direct", "live");
  } else {
    connectEvents();
    loadHistory();
  }
  $("#query-form").addEventListener("submit", (e) => { e.preventDefault(); runQuery($("#query").value); });
  for (const b of document.querySelectorAll("[data-query]")) b.addEventListener("click", () => { $("#query").value = b.dataset.query; runQuery(b.dataset.query); });
  $("#faults-refresh").addEventListener("click", loadFaults);
  $("#faults-clear").addEventListener("click", clearFaults);
  $("#trend-range").addEventListener("change", drawCharts);
  window.addEventListener("resize", scheduleRedraw);
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  showTab(location.hash.slice(1) || (session.mode === "mqtt" ? "home" : "registers"));
}

start().catch((err) => setStatus(err.message, "offline"));
