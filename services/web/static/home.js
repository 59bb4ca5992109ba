// The homeowner's page: what the heat pump is doing, whether it is healthy, how efficient it is
// and what it used today, at a glance; every value stays one click away on "All values".
// Uses app.js's globals (state, $, el, formatValue, faultText, shownTemperature, temperatureUnit)
// and trends.js's energyTotals(); redraws on app.js's aurora:tree and aurora:value events.
"use strict";

const home = { timer: null, staleTimer: null, since: {} };

// Typical bands of a closed ground loop (WaterFurnace installation manuals): entering water and
// the water's temperature drop or rise across the heat pump while the compressor runs.
const BANDS = {
  heating: { ewt: [30, 75], dt: [3, 10] },
  cooling: { ewt: [45, 95], dt: [5, 15] },
};

const MODES = {
  lockout: ["Locked out", "bad"], standby: ["Standing by", "idle"], blower: ["Fan only", "idle"],
  heating: ["Heating", "heat"], heating_with_aux: ["Heating with aux heat", "heat"],
  emergency_heat: ["Emergency heat", "heat"], cooling: ["Cooling", "cool"], waiting: ["Waiting", "idle"],
  dehumidify: ["Dehumidifying", "cool"],
};

const value = (key) => { const p = state.props.get(key); return p ? p.value : null; };
const number = (key) => { const v = value(key); const n = v === null || v === "" ? NaN : Number(v); return Number.isFinite(n) ? n : null; };
const shown = (key) => formatValue(state.props.get(key));
const degrees = (f) => (f === null ? "–" : `${shownTemperature(f).toFixed(1)}${temperatureUnit()}`);
const delta = (f) => (f === null ? "–" : `${(state.celsius ? (f * 5) / 9 : f).toFixed(1)}${temperatureUnit()}`);
// A band or a set-point range: "30–75°F" (whole degrees when they are whole)
const short = (n) => (Number.isInteger(Math.round(n * 10) / 10) ? String(Math.round(n)) : n.toFixed(1));
const span = (lo, hi, toShown = shownTemperature) => `${short(toShown(lo))}–${short(toShown(hi))}${temperatureUnit()}`;
const deltaSpan = (lo, hi) => span(lo, hi, (f) => (state.celsius ? (f * 5) / 9 : f));

document.addEventListener("aurora:tree", () => scheduleHome(0));
document.addEventListener("aurora:value", () => scheduleHome());

function scheduleHome(wait = 500) {
  if (home.timer) return;
  home.timer = setTimeout(() => { home.timer = null; renderHome(); }, wait);
  if (!home.staleTimer) home.staleTimer = setInterval(() => renderHome(), 15000); // "no new values" shows up
}

function renderHome() {
  if (!state.tree) return;
  renderNow();
  renderZones();
  renderHealth();
  renderEfficiency();
  renderEnergy();
  renderSchematic();
}

// ------------------------------------------------------------------ staleness
// The banner above every page (app.js: staleness, renderStale) says when the values are old; the
// home page only reflects the same verdict in its health list, so the two never disagree.

function alertText() {
  const stale = staleness();
  return stale ? stale.why : "";
}

// The live status (app.js's data-state) and the °F/°C switch (its aria-label) redraw the page.
new MutationObserver(() => state.tree && scheduleHome(0)).observe(document.documentElement,
  { subtree: true, attributes: true, attributeFilter: ["data-state", "aria-label"] });

// ------------------------------------------------------------------ now

function modeInfo() {
  const mode = value("abc/current-mode");
  const [label, kind] = MODES[mode] || [mode ? mode.replaceAll("_", " ") : "–", "idle"];
  return { mode, label, kind };
}

function stageText() {
  const speed = number("compressor/speed");
  const spec = state.props.get("compressor/speed");
  const max = spec && spec.format ? Number(spec.format.split(":")[1]) : null;
  const parts = [];
  if (speed !== null) {
    if (speed === 0) parts.push("compressor off");
    else if (max && max > 2) parts.push(`compressor speed ${speed} of ${max}`);
    else parts.push(`compressor stage ${speed}${max ? " of " + max : ""}`);
  }
  const aux = number("aux-heat/stage");
  if (aux) parts.push(`aux heat stage ${aux}`);
  if (value("blower/running") === "true") parts.push("fan on");
  if (value("dhw/running") === "true") parts.push("heating hot water");
  return parts.join(" · ");
}

function renderNow() {
  const { label, kind } = modeInfo();
  const body = $("#now-body");
  const watts = number("abc/watts");
  body.replaceChildren(
    el("p", { class: `mode mode-${kind}`, id: "home-mode", text: label }),
    el("p", { class: "stage", id: "home-stage", text: stageText() || "–" }),
    el("dl", { class: "facts" },
      el("dt", { text: "Power now" }), el("dd", { id: "home-power", text: watts === null ? "–" : `${(watts / 1000).toFixed(2)} kW` }),
      ...(state.props.has("abc/outdoor-temperature") ? [el("dt", { text: "Outdoors" }), el("dd", { text: degrees(number("abc/outdoor-temperature")) })] : []),
      ...(state.props.has("dhw/water-temperature") ? [el("dt", { text: "Hot water" }), el("dd", { text: degrees(number("dhw/water-temperature")) })] : [])));
}

// ------------------------------------------------------------------ zones

function zoneIds() {
  return state.tree.nodes.filter((n) => /^zone\d+$/.test(n.id)).map((n) => n.id);
}

function callText(call) {
  if (!call || call === "standby" || call === "off") return ["not calling", "idle"];
  const stage = call.slice(1);
  if (call.startsWith("h")) return [`calling for heat${stage ? " (stage " + stage + ")" : ""}`, "heat"];
  if (call.startsWith("c")) return [`calling for cooling${stage ? " (stage " + stage + ")" : ""}`, "cool"];
  return [call.replaceAll("_", " "), "idle"];
}

function renderZones() {
  const box = $("#zones");
  const ids = zoneIds();
  box.replaceChildren();
  for (const id of ids) {
    const name = nodeName(id);
    const ambient = number(`${id}/ambient-temperature`);
    const heatTo = number(`${id}/heating-target-temperature`), coolTo = number(`${id}/cooling-target-temperature`);
    const target = value(`${id}/target-mode`);
    const [call, callKind] = callText(value(`${id}/current-mode`));
    let goal = "–", comfort = "", comfortKind = "ok";
    if (target === "off") goal = "off";
    else if (target === "cool" && coolTo !== null) goal = `cool to ${degrees(coolTo)}`;
    else if ((target === "heat" || target === "eheat") && heatTo !== null) goal = `heat to ${degrees(heatTo)}`;
    else if (heatTo !== null && coolTo !== null) goal = `keep ${span(heatTo, coolTo)}`;
    if (ambient !== null && target !== "off") {
      const low = target === "cool" ? null : heatTo, high = target === "heat" || target === "eheat" ? null : coolTo;
      if (low !== null && ambient < low - 1) { comfort = `${delta(low - ambient)} below`; comfortKind = "warn"; }
      else if (high !== null && ambient > high + 1) { comfort = `${delta(ambient - high)} above`; comfortKind = "warn"; }
      else comfort = "on target";
    }
    box.append(el("div", { class: `zone call-${callKind}`, "data-zone": id },
      el("div", { class: "zone-name", text: name }),
      el("div", { class: "zone-temp", text: degrees(ambient) }),
      el("div", { class: "zone-goal", text: goal }),
      el("div", { class: `zone-comfort ${comfortKind}`, text: comfort }),
      el("div", { class: "zone-call", text: call })));
  }
  if (!ids.length) box.append(el("p", { class: "hint", text: "No thermostat reports to the heat pump." }));
}

// ------------------------------------------------------------------ health

function check(id, ok, label, detail) {
  const kind = ok === null ? "unknown" : ok ? "ok" : "warn";
  return el("li", { class: `check ${kind}`, "data-check": id },
    el("span", { class: "dot", "aria-hidden": "true" }),
    el("span", { class: "check-label", text: label }),
    el("span", { class: "check-detail", text: detail }));
}

function band(v, [lo, hi]) { return v === null ? null : v >= lo && v <= hi; }

function renderHealth() {
  const list = $("#health");
  const items = [];
  const fault = number("faults/current");
  const locked = value("abc/locked-out") === "true";
  items.push(check("fault", fault === null ? null : fault === 0 && !locked,
    fault ? faultText(fault) : "No fault", locked ? "locked out: the heat pump waits for a reset" : fault ? "active now" : ""));
  const problems = [["abc/emergency-shutdown", "emergency shutdown"], ["abc/safe-mode", "safe mode"], ["abc/derated", "running derated"], ["abc/load-shed", "load shed by the utility"]]
    .filter(([k]) => value(k) === "true").map(([, text]) => text);
  if (problems.length) items.push(check("safety", false, "Safety", problems.join(", ")));
  const { kind } = modeInfo();
  const running = (number("compressor/speed") || 0) > 0;
  const bands = kind === "cool" ? BANDS.cooling : BANDS.heating;
  const ewt = number("abc/entering-water-temperature"), lwt = number("abc/leaving-water-temperature");
  if (ewt !== null) {
    const judged = running ? band(ewt, bands.ewt) : null;
    items.push(check("ewt", judged, `Water from the loop ${degrees(ewt)}`,
      running ? `normal ${span(...bands.ewt)} while ${kind === "cool" ? "cooling" : "heating"}` : "compressor off"));
  }
  if (ewt !== null && lwt !== null) {
    const dt = Math.abs(ewt - lwt);
    const judged = running ? band(dt, bands.dt) : null;
    items.push(check("delta-t", judged, `Loop ΔT ${delta(dt)} (to the loop ${degrees(lwt)})`,
      running ? `normal ${deltaSpan(...bands.dt)}` : "compressor off"));
  }
  const flow = number("pump/waterflow");
  if (flow !== null) items.push(check("flow", running ? flow > 0 : null, `Loop flow ${flow.toFixed(1)} gpm`, running && flow <= 0 ? "no flow while running" : ""));
  const stale = alertText();
  items.push(check("data", stale ? false : true, stale ? "Data not current" : "Data current", stale ? "" : "values arrive as the bridge reads them"));
  list.replaceChildren(...items);
}

// ------------------------------------------------------------------ efficiency and energy

function tile(id, label, text, hint = "") {
  return el("div", { class: "tile", "data-tile": id },
    el("div", { class: "tile-label", text: label }), el("div", { class: "tile-value", text }),
    hint ? el("div", { class: "tile-hint", text: hint }) : null);
}

function cop(key) { const n = number(key); return n === null ? "–" : n.toFixed(1); }

function renderEfficiency() {
  $("#efficiency").replaceChildren(
    tile("cop-now", "COP now", cop("abc/cop"), "heat moved per unit of electricity"),
    tile("cop-today", "COP today", cop("energy/cop-today"), "since midnight"),
    tile("cop-running", "COP overall", cop("energy/cop-running"), "since the counters started"));
}

function kwh(n) { return `${n < 10 ? n.toFixed(2) : n.toFixed(1)} kWh`; }

function renderEnergy() {
  const box = $("#energy");
  const hint = $("#energy-hint");
  if (!state.props.has("energy/electrical-total")) {
    box.replaceChildren();
    hint.textContent = "This heat pump does not measure its power, so there are no energy figures.";
    return;
  }
  const totals = energyTotals();
  box.replaceChildren(
    tile("energy-today", "Used today", kwh(totals.today.electrical)),
    tile("heat-today", "Delivered today", kwh(totals.today.thermal)),
    tile("energy-week", "Used in 7 days", kwh(totals.week.electrical)),
    tile("heat-week", "Delivered in 7 days", kwh(totals.week.thermal)));
  hint.textContent = "Electricity the heat pump used, and the heat (or cooling) it delivered to the house.";
}

// ------------------------------------------------------------------ schematic

function renderSchematic() {
  const box = $("#schematic");
  const W = 360, H = 170;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Ground loop, heat pump and house" });
  const { label, kind } = modeInfo();
  const rect = (x, y, w, h, cls) => root.append(svg("rect", { x, y, width: w, height: h, rx: 8, class: cls }));
  const text = (x, y, t, cls = "", anchor = "middle") => root.append(svgText({ x, y, "text-anchor": anchor, class: cls }, t));
  const arrow = (x1, y1, x2, y2, cls) => root.append(svg("line", { x1, y1, x2, y2, class: `flow ${cls}`, "marker-end": "url(#arrow)" }));
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }));
  defs.append(marker);
  root.append(defs);
  rect(4, 40, 92, 90, "box loop");
  text(50, 60, "Ground loop", "box-title");
  const flow = number("pump/waterflow");
  text(50, 80, flow === null ? "" : `${flow.toFixed(1)} gpm`, "small");
  const pumpW = number("pump/watts");
  text(50, 96, pumpW === null ? "" : `pump ${pumpW} W`, "small");
  rect(134, 30, 92, 110, `box unit mode-${kind}`);
  text(180, 52, "Heat pump", "box-title");
  text(180, 72, label, "small strong");
  const watts = number("abc/watts");
  text(180, 90, watts === null ? "" : `${(watts / 1000).toFixed(2)} kW`, "small");
  const copNow = number("abc/cop");
  text(180, 108, copNow ? `COP ${copNow.toFixed(1)}` : "", "small");
  rect(264, 40, 92, 90, "box house");
  text(310, 60, "House", "box-title");
  const zones = zoneIds().map((z) => number(`${z}/ambient-temperature`)).filter((v) => v !== null);
  if (zones.length) text(310, 80, zones.length > 1 ? span(Math.min(...zones), Math.max(...zones)) : degrees(zones[0]), "small");
  // water: loop → heat pump on top, back below; air: house → heat pump below, back on top
  arrow(98, 62, 132, 62, "water");
  text(115, 24, degrees(number("abc/entering-water-temperature")), "temp", "middle");
  text(115, 36, "in", "tiny");
  arrow(132, 110, 98, 110, "water");
  text(115, 152, degrees(number("abc/leaving-water-temperature")), "temp", "middle");
  text(115, 164, "out", "tiny");
  arrow(228, 62, 262, 62, "air");
  text(245, 24, degrees(number("abc/leaving-air-temperature")), "temp", "middle");
  text(245, 36, "to house", "tiny");
  arrow(262, 110, 228, 110, "air");
  text(245, 152, degrees(number("abc/entering-air-temperature")), "temp", "middle");
  text(245, 164, "from house", "tiny");
  box.replaceChildren(root);
}
