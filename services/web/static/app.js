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
  pendingSet: new Map(),     // "node/prop" -> value we asked for
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
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
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

// The heat pump works in °F; °C is only how this browser shows it. Set points go back as whole
// °F, which is what the thermostats store.
const isTemperature = (prop) => prop && prop.unit === "°F";
const temperatureUnit = () => (state.celsius ? "°C" : "°F");
const shownTemperature = (fahrenheit) => (state.celsius ? ((fahrenheit - 32) * 5) / 9 : fahrenheit);
const fahrenheitOf = (shown) => (state.celsius ? Math.round((shown * 9) / 5 + 32) : shown);

// `value` is what the bridge published, unless `shown` says it is already in the page's unit.
function formatValue(prop, value = prop && prop.value, shown = false) {
  if (value === null || value === undefined || value === "") return "–";
  if (isTemperature(prop) && Number.isFinite(Number(value))) {
    const n = shown ? Number(value) : shownTemperature(Number(value));
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
  document.dispatchEvent(new CustomEvent("aurora:tree", { detail: tree }));
}

function valueCell(key, tag = "dd", cls = "") {
  const prop = state.props.get(key);
  const cell = el(tag, { class: cls, "data-key": key, text: formatValue(prop) });
  markFault(cell, key, prop && prop.value);
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
  for (const cell of document.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)) {
    cell.textContent = formatValue(item);
    markFault(cell, key, value);
    if (changed) { cell.classList.remove("flash"); void cell.offsetWidth; cell.classList.add("flash"); }
  }
  document.dispatchEvent(new CustomEvent("aurora:value", { detail: { key, item, value, t } }));
  const wanted = state.pendingSet.get(key);
  if (wanted !== undefined && (wanted === value || Number(wanted) === Number(value))) {
    state.pendingSet.delete(key);
    const result = document.querySelector(`.setting[data-setting="${CSS.escape(key)}"] .result`);
    if (result) { result.textContent = "Done: the heat pump reports the new value."; result.className = "result ok"; }
  }
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
  source.onerror = () => setStatus("reconnecting…", "offline");
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
    status.textContent = err.message;
  }
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
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 3, class: "error", text: err.message })));
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

function inputFor(prop) {
  if (prop.datatype === "enum" || prop.datatype === "boolean") {
    const options = prop.datatype === "boolean" ? ["true", "false"] : prop.format.split(",").filter(Boolean);
    const select = el("select", { "aria-label": prop.name });
    for (const o of options) select.append(el("option", { value: o, text: formatValue(prop, o) }));
    select.value = prop.value ?? options[0];
    return select;
  }
  const input = el("input", { type: "number", inputMode: "decimal", "aria-label": prop.name });
  const [low, high] = (prop.format || "").split(":");
  if (isTemperature(prop)) {
    if (low) input.min = String(Math.floor(shownTemperature(Number(low)) * 2) / 2);
    if (high) input.max = String(Math.ceil(shownTemperature(Number(high)) * 2) / 2);
    input.step = "0.5";
    if (prop.value != null) input.value = shownTemperature(Number(prop.value)).toFixed(1);
    return input;
  }
  if (low) input.min = low;
  if (high) input.max = high;
  input.step = prop.datatype === "integer" ? "1" : "0.5";
  if (prop.value != null) input.value = prop.value;
  return input;
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

function renderSettings() {
  const list = $("#settings-list");
  const focused = document.activeElement && list.contains(document.activeElement);
  if (focused) return; // do not pull the input away from someone typing; values still update
  list.replaceChildren();
  for (const node of state.tree.nodes) {
    // Clearing the fault history is not a setting: the Faults page has its own button for it.
    const settable = node.properties.filter((p) => p.settable && !(p.datatype === "enum" && p.format === "clear"));
    if (!settable.length) continue;
    const group = el("div", { class: "grid" });
    list.append(el("section", { class: "group", "data-node": node.id }, el("h2", { text: node.name }), group));
    for (const prop of settable) group.append(settingForm(node, prop));
  }
  if (!list.children.length) list.append(el("p", { class: "hint", text: "No settable values yet (waiting for the bridge)." }));
}

function settingForm(node, prop) {
  const key = `${node.id}/${prop.id}`;
  const input = inputFor(prop);
  const result = el("div", { class: "result", role: "status" });
  const button = el("button", { type: "submit", text: "Change…" });
  const form = el("form", { class: "card setting", "data-setting": key },
    el("label", { text: prop.name }),
    el("div", { class: "current", "data-key": key, text: formatValue(prop) }),
    el("div", { class: "row" }, input, button), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = input.value.trim();
    if (!wanted) return;
    const ok = await confirmChange(`${node.name}: ${prop.name} from ${formatValue(prop)} to ${formatValue(prop, wanted, true)}?`);
    if (!ok) { result.textContent = "Not changed."; result.className = "result"; return; }
    button.disabled = true;
    result.className = "result";
    result.textContent = "Sending…";
    try {
      const reply = await api("/api/set", {
        method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
        body: JSON.stringify({ node: node.id, prop: prop.id, value: isTemperature(prop) ? String(fahrenheitOf(Number(wanted))) : wanted }),
      });
      state.pendingSet.set(key, reply.value);
      result.textContent = "Sent: waiting for the heat pump to report it…";
    } catch (err) {
      result.className = "result error";
      result.textContent = err.message;
    } finally { button.disabled = false; }
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
