// bayeswatch web view: read-only, served by the stage itself (no external
// fetch, no build step). Polls the stage's /api/ every 2 s and draws with
// the canvas API. GPL-3.0-or-later.
"use strict";

const POLL_MS = 2000;
const state = { view: "oncall", key: "", overview: null };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function pct(p) {
  if (p === null || p === undefined) return "–";
  if (p >= 0.999) return ">99.9%";
  return (100 * p).toFixed(p >= 0.1 ? 0 : 1) + "%";
}

function num(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  return a >= 1e5 || (a > 0 && a < 1e-3) ? v.toExponential(2) : +v.toPrecision(4) + "";
}

function ago(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return s.toFixed(0) + " s";
  if (s < 5400) return (s / 60).toFixed(0) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function when(ms) { return ms > 0 ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "–"; }

function level(p, thr) {
  return p >= thr ? "lvl-bad" : p >= 0.5 ? "lvl-warn" : "lvl-ok";
}

const LEVEL_CLASS = { none: "lvl-ok", low: "lvl-ok", moderate: "lvl-warn", high: "lvl-bad", critical: "lvl-crit" };
const RISK_CLASS = { ok: "lvl-ok", elevated: "lvl-warn", high: "lvl-bad", critical: "lvl-crit" };

async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function seriesLink(key) {
  const a = el("a", { href: "#series?key=" + encodeURIComponent(key), class: "series", text: key });
  return a;
}

// ---- on-call ----

function drawSummary(o) {
  const s = $("summary");
  s.replaceChildren(
    el("span", {}, el("b", { text: String(o.series) }), " series"),
    el("span", {}, el("b", { text: String(o.scores) }), " scores"),
    el("span", {}, el("b", { text: String(o.alerts) }), " alerting events"),
    el("span", {}, el("b", { text: String(o.threats.filter(t => t.level === "high" || t.level === "critical").length) }), " threats at high or above"),
    el("span", {}, el("b", { text: String(o.stale.length) }), " stale series"),
    el("span", { class: "muted", text: "alert threshold " + o.threshold }));
}

function drawGrid(o) {
  const regions = [...new Set(o.cells.map(c => c.region))].sort();
  const services = [...new Set(o.cells.map(c => c.service))].sort();
  const at = new Map(o.cells.map(c => [c.region + "\u001f" + c.service, c]));
  const head = el("tr", {}, el("th", { text: "region" }), ...services.map(s => el("th", { text: s })));
  const rows = regions.map(r => el("tr", {}, el("th", { text: r }), ...services.map(s => {
    const c = at.get(r + "\u001f" + s);
    if (!c) return el("td", {});
    const cls = c.stale === c.series ? "lvl-stale" : level(c.p, o.threshold);
    const td = el("td", { class: "cell " + cls, title: c.top + " (" + c.series + " series, " + c.alerts + " alerting, " + c.stale + " stale)" },
      pct(c.p), el("small", { text: (c.stale ? c.stale + " stale · " : "") + ago(c.age_s) }));
    td.addEventListener("click", () => { location.hash = "#series?key=" + encodeURIComponent(c.top); });
    return td;
  })));
  $("grid").replaceChildren(el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

function drawThreats(o) {
  const rows = o.threats.filter(t => t.probability >= 0.05).map(t => el("tr", {},
    el("td", { text: t.entity }), el("td", { text: t.rule }),
    el("td", {}, el("span", { class: "badge " + (LEVEL_CLASS[t.level] || ""), text: t.level })),
    el("td", { class: "num", text: pct(t.probability) }),
    el("td", { text: t.contributors.map(c => c.metric + " " + c.llr.toFixed(2)).join(", ") }),
    el("td", { text: t.since >= 0 ? when(t.since) : "–" }),
    el("td", { text: when(t.time) })));
  $("threats").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "muted", text: "none above 5%" }))]));
}

function drawTop(o) {
  const rows = o.top.slice(0, 20).map(s => el("tr", {},
    el("td", {}, seriesLink(s.key)),
    el("td", { class: "num" }, el("span", { class: "badge " + level(s.p, o.threshold), text: pct(s.p) })),
    el("td", { text: s.direction }),
    el("td", { text: s.abnormal_since > 0 ? when(s.abnormal_since) : "–" }),
    el("td", { class: "num", text: num(s.value) }),
    el("td", { class: "num", text: num(s.expected) + " (" + num(s.lower) + " – " + num(s.upper) + ")" }),
    el("td", { text: ago(s.age_s) })));
  $("top").tBodies[0].replaceChildren(...rows);
  const stale = o.stale.map(s => el("tr", {}, el("td", {}, seriesLink(s.key)), el("td", { text: when(s.last_event) }), el("td", { text: ago(s.age_s) })));
  $("stale").tBodies[0].replaceChildren(...(stale.length ? stale : [el("tr", {}, el("td", { colspan: 3, class: "muted", text: "none" }))]));
  const dl = $("series-keys");
  dl.replaceChildren(...o.top.concat(o.stale).map(s => el("option", { value: s.key })));
}

function drawEpisodes(o) {
  const rows = o.episodes.map(e => el("tr", {},
    el("td", {}, seriesLink(e.key)), el("td", { text: when(e.start) }), el("td", { text: when(e.end) }),
    el("td", { class: "num", text: pct(e.peak) }),
    el("td", {}, el("span", { class: "badge " + (e.ongoing ? "lvl-bad" : "lvl-ok"), text: e.ongoing ? "ongoing" : "ended" }))));
  $("episodes").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted", text: "none" }))]));
}

async function refreshOncall() {
  const o = await get("api/overview");
  state.overview = o;
  drawSummary(o); drawGrid(o); drawEpisodes(o); drawThreats(o); drawTop(o);
  if (!state.key && o.top.length) state.key = o.top[0].key;
}

// ---- series ----

function scaler(lo, hi, a, b) {
  if (!(hi > lo)) { hi = lo + 1; }
  return v => a + (v - lo) / (hi - lo) * (b - a);
}

function axes(ctx, w, h, pad, t0, t1, y0, y1, fmt) {
  ctx.strokeStyle = "#d2d2d7"; ctx.fillStyle = "#6e6e73"; ctx.font = "11px system-ui"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad + (h - 2 * pad) * i / 4, v = y1 - (y1 - y0) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad * 2, y); ctx.lineTo(w - pad, y); ctx.stroke();
    ctx.fillText(fmt(v), 2, y + 4);
  }
  for (let i = 0; i <= 4; i++) {
    const x = pad * 2 + (w - 3 * pad) * i / 4, t = t0 + (t1 - t0) * i / 4;
    ctx.fillText(new Date(t).toISOString().slice(11, 16), x - 14, h - 2);
  }
}

function drawValue(pts, thr) {
  const c = $("chart-value"), ctx = c.getContext("2d"), w = c.width, h = c.height, pad = 20;
  ctx.clearRect(0, 0, w, h);
  if (!pts.length) { ctx.fillText("no points yet", 40, 40); return; }
  // y range: every value, and the band's 2nd-98th percentiles (a filter's
  // first, wide predictions must not flatten the chart)
  const vals = pts.map(p => p[1]).filter(v => v !== null && isFinite(v));
  const band = pts.flatMap(p => [p[3], p[4]]).filter(v => v !== null && isFinite(v)).sort((a, b) => a - b);
  const q = f => band.length ? band[Math.min(band.length - 1, Math.floor(f * band.length))] : vals[0];
  const ys = vals.concat([q(0.02), q(0.98)]);
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0] || t0 + 1;
  const lo = Math.min(...ys), hi = Math.max(...ys), m = (hi - lo) * 0.05 || 1;
  const X = scaler(t0, t1, pad * 2, w - pad), Y = scaler(lo - m, hi + m, h - pad, pad);
  axes(ctx, w, h, pad, t0, t1, lo - m, hi + m, num);
  ctx.save(); ctx.beginPath(); ctx.rect(pad * 2, pad, w - 3 * pad, h - 2 * pad); ctx.clip();
  const shown = pts.filter(p => p[3] !== null && p[4] !== null);
  ctx.fillStyle = "rgba(25,118,210,.15)"; ctx.beginPath();
  shown.forEach((p, i) => i ? ctx.lineTo(X(p[0]), Y(p[4])) : ctx.moveTo(X(p[0]), Y(p[4])));
  shown.slice().reverse().forEach(p => ctx.lineTo(X(p[0]), Y(p[3])));
  ctx.closePath(); ctx.fill();
  const line = (col, dash, color) => {
    ctx.strokeStyle = color; ctx.setLineDash(dash); ctx.lineWidth = 1.5; ctx.beginPath();
    let on = false;
    for (const p of pts) {
      if (p[col] === null) { on = false; continue; }
      on ? ctx.lineTo(X(p[0]), Y(p[col])) : ctx.moveTo(X(p[0]), Y(p[col])); on = true;
    }
    ctx.stroke(); ctx.setLineDash([]);
  };
  line(2, [5, 4], "#1976d2");
  line(1, [], "#1d1d1f");
  ctx.fillStyle = "#c62828";
  for (const p of pts) if (p[9] && p[1] !== null) { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 3, 0, 7); ctx.fill(); }
  ctx.restore();
}

function drawEvidence(pts, thr) {
  const c = $("chart-p"), ctx = c.getContext("2d"), w = c.width, h = c.height, pad = 20;
  ctx.clearRect(0, 0, w, h);
  if (!pts.length) return;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0] || t0 + 1;
  const X = scaler(t0, t1, pad * 2, w - pad), Y = scaler(0, 1, h - pad, pad);
  axes(ctx, w, h, pad, t0, t1, 0, 1, v => v.toFixed(2));
  ctx.strokeStyle = "#c62828"; ctx.setLineDash([4, 4]); ctx.beginPath();
  ctx.moveTo(pad * 2, Y(thr)); ctx.lineTo(w - pad, Y(thr)); ctx.stroke(); ctx.setLineDash([]);
  const series = [[5, "#1d1d1f"], [6, "#8e24aa"], [7, "#ef6c00"]];
  for (const [col, color] of series) {
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.2; ctx.beginPath();
    let on = false;
    for (const p of pts) {
      if (p[col] === null) { on = false; continue; }
      if (col === 6) { ctx.fillRect(X(p[0]) - 1.5, Y(p[col]) - 1.5, 3, 3); continue; }
      on ? ctx.lineTo(X(p[0]), Y(p[col])) : ctx.moveTo(X(p[0]), Y(p[col])); on = true;
    }
    ctx.stroke();
  }
}

const REGIME_COLOR = { none: "#e8f5e9", spike: "#c62828", dip: "#c62828", shift_up: "#ef6c00", shift_down: "#ef6c00", sustained_up: "#8e24aa", sustained_down: "#8e24aa" };

function drawRegime(pts) {
  const c = $("chart-regime"), ctx = c.getContext("2d"), w = c.width, h = c.height, pad = 20;
  ctx.clearRect(0, 0, w, h);
  if (pts.length < 2) return;
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const X = scaler(t0, t1, pad * 2, w - pad);
  for (let i = 0; i + 1 < pts.length; i++) {
    ctx.fillStyle = REGIME_COLOR[pts[i][8]] || "#e0e0e0";
    ctx.fillRect(X(pts[i][0]), 4, Math.max(1, X(pts[i + 1][0]) - X(pts[i][0])), h - 8);
  }
  ctx.fillStyle = "#6e6e73"; ctx.font = "11px system-ui"; ctx.fillText("state", 2, h / 2 + 4);
}

async function refreshSeries() {
  if (!state.overview) await refreshOncall();
  const input = $("series-key");
  if (document.activeElement !== input) input.value = state.key;
  if (!state.key) { $("series-info").textContent = "no series yet"; return; }
  let d;
  try { d = await get("api/series?key=" + encodeURIComponent(state.key)); }
  catch (e) { $("series-info").textContent = "unknown series " + state.key; return; }
  const s = d.series;
  $("series-info").textContent = s.model + " · P(anomalous) " + pct(s.p) + " · " + s.direction +
    (s.abnormal_since > 0 ? " · abnormal since " + when(s.abnormal_since) : "") +
    (s.stale ? " · STALE" : "") + " · " + d.points.length + " points";
  drawValue(d.points, d.threshold); drawEvidence(d.points, d.threshold); drawRegime(d.points);
}

// ---- executive ----

async function refreshExec() {
  const d = await get("api/slo");
  const by = { ok: 0, elevated: 0, high: 0, critical: 0 };
  d.slos.forEach(s => { by[s.risk] = (by[s.risk] || 0) + 1; });
  $("slo-summary").replaceChildren(...Object.entries(by).map(([k, v]) =>
    el("span", {}, el("b", { text: String(v) }), " " + k)));
  const rows = d.slos.sort((a, b) => (b.p_breach || 0) - (a.p_breach || 0)).map(s => el("tr", {},
    el("td", {}, seriesLink(s.key)), el("td", { class: "num", text: num(s.slo) }), el("td", { class: "num", text: num(s.rate) }),
    el("td", { class: "num" }, el("span", { class: "badge " + level(s.p_breach || 0, 0.9), text: pct(s.p_breach) })),
    el("td", { class: "num", text: s.burn_1h === null ? "–" : s.burn_1h.toFixed(2) }),
    el("td", { class: "num", text: s.burn_6h === null ? "–" : s.burn_6h.toFixed(2) }),
    el("td", {}, el("span", { class: "badge " + RISK_CLASS[s.risk], text: s.risk }))));
  $("slos").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "muted", text: "no pooled series with an slo yet" }))]));
}

// ---- routing and polling ----

function route() {
  const h = location.hash.slice(1) || "oncall";
  const [view, query] = h.split("?");
  state.view = ["oncall", "series", "exec"].includes(view) ? view : "oncall";
  const key = new URLSearchParams(query || "").get("key");
  if (key) state.key = key;
  for (const v of ["oncall", "series", "exec"]) {
    $("view-" + v).hidden = v !== state.view;
    $("nav-" + v).classList.toggle("active", v === state.view);
  }
  tick();
}

let busy = false;
async function tick() {
  if (busy) return;
  busy = true;
  try {
    if (state.view === "oncall") await refreshOncall();
    else if (state.view === "series") await refreshSeries();
    else await refreshExec();
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = state.view;
  } catch (e) {
    $("status").textContent = "the stage is unreachable (" + e.message + "); retrying";
  } finally {
    busy = false;
  }
}

$("series-key").addEventListener("change", e => { location.hash = "#series?key=" + encodeURIComponent(e.target.value); });
window.addEventListener("hashchange", route);
route();
setInterval(tick, POLL_MS);
