// deltanet playground: draws the frames the server computes with deltanet; sends the user's choices back.
// No number drawn here is computed here: losses, weights, gradients, deltas, norms, heatmaps all come
// from the server's frames (GET /api/state, the /api/events stream) and GET /api/data.
"use strict";

const NEG = [228, 87, 46], POS = [46, 134, 171], WHITE = [255, 255, 255];
const CLASS_COLOURS = [[228, 87, 46], [46, 134, 171], [118, 176, 65], [240, 185, 20], [142, 68, 173],
  [23, 170, 190], [127, 127, 127], [188, 189, 34], [227, 119, 194], [140, 86, 75]];
const LR = [1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const REG = [0, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const DROPOUT = [0, 0.1, 0.2, 0.3, 0.5];
const DATASETS = [["circle", "circle"], ["xor", "xor"], ["gauss", "gauss"], ["spiral", "spiral"],
  ["plane", "plane (regr.)"], ["multigauss", "bumps (regr.)"]];
const FEATURES = ["x1", "x2", "x1^2", "x2^2", "x1x2", "sin x1", "sin x2"];
const FEATURE_LABELS = {"x1": "x\u2081", "x2": "x\u2082", "x1^2": "x\u2081\u00b2", "x2^2": "x\u2082\u00b2",
  "x1x2": "x\u2081x\u2082", "sin x1": "sin x\u2081", "sin x2": "sin x\u2082"};
const HIDDEN_ACTS = ["tanh", "relu", "sigmoid", "leaky_relu", "identity"];
const PHASES = ["forward", "loss", "backward", "update"];
const MAX_UNITS = 12, MAX_LAYERS = 10;

const S = {frame: null, data: null, view: "forward", dataVersion: null, structure: null, nodes: null, links: null,
  loadingData: false, lastHash: null};
const $ = (id) => document.getElementById(id);

// -- talking to the server ------------------------------------------------------------------
function toast(message) {
  const t = $("toast");
  t.textContent = message;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 6000);
}

async function api(path, body, filename) {
  const opts = {};
  if (body !== undefined) {
    opts.method = "POST";
    if (filename !== undefined) {
      opts.body = body;
      opts.headers = {"Content-Type": "application/octet-stream", "X-Filename": filename};
    } else {
      opts.body = JSON.stringify(body);
      opts.headers = {"Content-Type": "application/json"};
    }
  }
  const r = await fetch(path, opts);
  const j = await r.json();
  if (!r.ok) {
    toast(j.error || r.statusText);
    throw new Error(j.error || r.statusText);
  }
  return j;
}

async function post(path, body, filename) {
  try {
    onFrame(await api(path, body, filename));
  } catch (e) { /* shown by toast */ }
}

const configure = (changes) => post("api/config", changes);
const control = (action, extra) => post("api/control", Object.assign({action}, extra || {}));

function connect() {
  const es = new EventSource("api/events");
  es.addEventListener("frame", (e) => onFrame(JSON.parse(e.data)));
}

// -- numbers and colours ------------------------------------------------------------------
function fmt(v, digits) {
  if (v === null || v === undefined) return "-";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e4) return v.toExponential(Math.max(0, (digits || 4) - 2));
  return Number(v.toPrecision(digits || 4)).toString();
}
const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");
const mix = (a, b, t) => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
const rgb = (c) => `rgb(${c[0] | 0},${c[1] | 0},${c[2] | 0})`;
const diverging = (v) => (v < 0 ? mix(WHITE, NEG, Math.min(1, -v)) : mix(WHITE, POS, Math.min(1, v)));
const logScale = (v, lo, hi) => (v > 0 ? Math.max(0, Math.min(1, (Math.log10(v) - lo) / (hi - lo))) : 0);

function bytes(b64) {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function drawDiverging(canvas, b64, size, strength) {
  const q = bytes(b64), ctx = canvas.getContext("2d"), k = strength || 1;
  if (canvas.width !== size) { canvas.width = size; canvas.height = size; }
  const img = ctx.createImageData(size, size);
  for (let i = 0; i < q.length; i++) {
    const c = diverging(k * (q[i] / 127.5 - 1));
    img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function drawOutput(f) {
  const canvas = $("output"), ctx = canvas.getContext("2d"), n = f.output_map.size;
  if (canvas.width !== n) { canvas.width = n; canvas.height = n; }
  const img = ctx.createImageData(n, n);
  if (f.task === "classification") {
    const maps = f.output_map.maps.map(bytes), C = maps.length;
    for (let i = 0; i < n * n; i++) {
      let c = [0, 0, 0], best = 0;
      for (let k = 0; k < C; k++) {
        const p = maps[k][i] / 255;
        const col = CLASS_COLOURS[k % CLASS_COLOURS.length];
        c = [c[0] + p * col[0], c[1] + p * col[1], c[2] + p * col[2]];
        best = Math.max(best, p);
      }
      const conf = Math.max(0, (best - 1 / C) / (1 - 1 / C));
      const out = mix(WHITE, c, 0.12 + 0.5 * conf);
      img.data.set([out[0], out[1], out[2], 255], 4 * i);
    }
  } else {
    const q = bytes(f.output_map.maps[0]);
    for (let i = 0; i < n * n; i++) {
      const c = diverging(0.7 * (q[i] / 127.5 - 1));
      img.data.set([c[0], c[1], c[2], 255], 4 * i);
    }
  }
  ctx.putImageData(img, 0, 0);
}

function drawPoints() {
  const d = S.data, canvas = $("points"), ctx = canvas.getContext("2d");
  if (!d) return;
  const W = canvas.width, [lo, hi] = d.domain, sx = (x) => ((x - lo) / (hi - lo)) * W, sy = (y) => W - ((y - lo) / (hi - lo)) * W;
  ctx.clearRect(0, 0, W, W);
  const parts = [["train", "#fff"]];
  if ($("show-test").checked) parts.push(["test", "#222"]);
  const [tlo, thi] = d.target_range;
  for (const [part, stroke] of parts) {
    const xs = d[part].x, ys = d[part].y;
    for (let i = 0; i < xs.length; i++) {
      const c = d.task === "classification" ? CLASS_COLOURS[ys[i] % CLASS_COLOURS.length]
        : diverging((2 * (ys[i] - tlo)) / (thi - tlo) - 1);
      ctx.beginPath();
      ctx.arc(sx(xs[i][0]), sy(xs[i][1]), 3.2, 0, 2 * Math.PI);
      ctx.fillStyle = rgb(c);
      ctx.fill();
      ctx.lineWidth = 1;
      ctx.strokeStyle = stroke;
      ctx.stroke();
    }
  }
  ctx.fillStyle = "rgba(0,0,0,.55)";
  ctx.font = "10px sans-serif";
  ctx.fillText(`${d.axes[0]} \u2192`, W - 48, W - 5);
  ctx.save(); ctx.translate(10, 50); ctx.rotate(-Math.PI / 2); ctx.fillText(`${d.axes[1]} \u2192`, 0, 0); ctx.restore();
}

function drawCurve(canvas, series, opts) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = {l: 38, r: 6, t: 6, b: 16};
  ctx.clearRect(0, 0, W, H);
  const xs = series.x;
  if (!xs.length) return;
  let lo = Infinity, hi = -Infinity;
  for (const line of series.lines) for (const v of line.values) {
    if (v === null || !(opts.log ? v > 0 : isFinite(v))) continue;
    const y = opts.log ? Math.log10(v) : v;
    lo = Math.min(lo, y); hi = Math.max(hi, y);
  }
  if (!isFinite(lo)) return;
  if (!opts.log) lo = Math.min(0, lo);
  if (opts.log) { lo = Math.floor(lo); hi = Math.ceil(hi); if (hi === lo) hi = lo + 1; } else if (hi === lo) hi = lo + 1;
  const x0 = xs[0], x1 = Math.max(xs[xs.length - 1], x0 + 1);
  const px = (x) => pad.l + ((x - x0) / (x1 - x0)) * (W - pad.l - pad.r);
  const py = (y) => H - pad.b - ((y - lo) / (hi - lo)) * (H - pad.t - pad.b);
  ctx.strokeStyle = "#e5e8ec"; ctx.fillStyle = "#6b7480"; ctx.font = "9px sans-serif"; ctx.lineWidth = 1;
  const ticks = opts.log ? Array.from({length: hi - lo + 1}, (_, i) => lo + i) : [lo, (lo + hi) / 2, hi];
  const step = Math.ceil(ticks.length / 6);
  ticks.forEach((t, i) => {
    if (i % step) return;
    ctx.beginPath(); ctx.moveTo(pad.l, py(t)); ctx.lineTo(W - pad.r, py(t)); ctx.stroke();
    ctx.fillText(opts.log ? `1e${t}` : fmt(t, 2), 2, py(t) + 3);
  });
  ctx.fillText(`step ${x1}`, W - 52, H - 4);
  for (const line of series.lines) {
    ctx.strokeStyle = line.colour; ctx.lineWidth = opts.width || 1.4; ctx.beginPath();
    let pen = false;
    line.values.forEach((v, i) => {
      if (v === null || !(opts.log ? v > 0 : isFinite(v))) { pen = false; return; }
      const y = py(opts.log ? Math.log10(v) : v);
      if (pen) ctx.lineTo(px(xs[i]), y); else { ctx.moveTo(px(xs[i]), y); pen = true; }
    });
    ctx.stroke();
  }
}

const layerColour = (i, n) => `hsl(${275 - (235 * i) / Math.max(1, n - 1)}, 65%, ${42 + 10 * (i % 2)}%)`;

// -- the network ----------------------------------------------------------------------------
function structureKey(f) {
  return JSON.stringify([f.version, f.inputs, f.layers.map((l) => [l.units, l.fan_in, l.activation, l.residual])]);
}

function buildNetwork(f) {
  const net = $("network"), nodes = $("nodes"), svg = $("links");
  nodes.innerHTML = ""; svg.innerHTML = "";
  const W = net.clientWidth, H = net.clientHeight;
  const hidden = f.layers.slice(0, -1), out = f.layers[f.layers.length - 1];
  const nCols = hidden.length + 2, padX = 46;
  const colW = (W - 2 * padX) / (nCols - 1);
  const maxUnits = Math.max(FEATURES.length, ...hidden.map((l) => l.units));
  const top = 62, bottom = 62;
  const tile = Math.max(16, Math.min(38, colW * 0.55, ((H - top - bottom) / maxUnits) * 0.72));
  const gap = Math.min(tile + 14, (H - top - bottom) / maxUnits);
  const colX = (c) => padX + c * colW;
  const ys = (n) => Array.from({length: n}, (_, i) => top + (H - top - bottom - gap * n) / 2 + i * gap + (gap - tile) / 2);
  const pos = [];           // pos[c][j] = {x, y} centre of node j of column c
  const make = (cls, x, y, size) => {
    const el = document.createElement("div");
    el.className = "node " + cls;
    Object.assign(el.style, {left: `${x - size / 2}px`, top: `${y}px`, width: `${size}px`, height: `${size}px`});
    nodes.appendChild(el);
    return el;
  };
  // inputs: every feature, the unused ones dimmed (click toggles)
  const S0 = {features: [], hidden: [], outputs: []};
  const active = f.inputs;
  const fy = ys(FEATURES.length);
  pos.push([]);
  FEATURES.forEach((name, j) => {
    const el = make("feature" + (active.includes(name) ? "" : " off"), colX(0), fy[j], tile);
    el.dataset.feature = name;
    el.title = `input feature ${name} (click to use it or not)`;
    el.innerHTML = `<span class="lbl">${FEATURE_LABELS[name]}</span>`;
    const canvas = document.createElement("canvas");
    el.appendChild(canvas);
    el.addEventListener("click", () => {
      const next = active.includes(name) ? active.filter((a) => a !== name) : active.concat([name]);
      if (next.length) configure({features: next});
    });
    S0.features.push({name, canvas});
    if (active.includes(name)) pos[0].push({x: colX(0), y: fy[j] + tile / 2});
  });
  hidden.forEach((lay, i) => {
    const y = ys(lay.units), c = i + 1, units = [];
    pos.push([]);
    for (let j = 0; j < lay.units; j++) {
      const el = make("hidden", colX(c), y[j], tile);
      el.dataset.layer = lay.index; el.dataset.unit = j + 1;
      const canvas = document.createElement("canvas");
      const bar = document.createElement("div");
      bar.className = "delta";
      el.append(canvas, bar);
      units.push({el, canvas, bar});
      pos[c].push({x: colX(c), y: y[j] + tile / 2});
    }
    S0.hidden.push(units);
    const head = document.createElement("div");
    head.className = "layer-head";
    head.style.left = `${colX(c)}px`;
    const opts = HIDDEN_ACTS.map((a) => `<option value="${a}"${a === lay.activation ? " selected" : ""}>${a}</option>`).join("");
    head.innerHTML = `<button data-d="1" title="add a unit">+</button> <button data-d="-1" title="remove a unit">&minus;</button>`
      + `<div>${lay.units} unit${lay.units === 1 ? "" : "s"}${lay.residual ? " &#x21B7;" : ""}</div><select title="activation of this layer">${opts}</select>`;
    head.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => {
      const h = f.config.hidden.slice();
      h[i] = Math.max(1, Math.min(MAX_UNITS, h[i] + Number(b.dataset.d)));
      configure({hidden: h});
    }));
    head.querySelector("select").addEventListener("change", (e) => {
      const a = f.config.activations.slice();
      a[i] = e.target.value;
      configure({activations: a});
    });
    nodes.appendChild(head);
    const foot = document.createElement("div");
    foot.className = "layer-foot";
    foot.style.left = `${colX(c)}px`;
    foot.dataset.layer = lay.index;
    nodes.appendChild(foot);
    units.foot = foot;
  });
  const oy = ys(out.units), oc = nCols - 1, osize = Math.max(12, tile * 0.55);
  pos.push([]);
  for (let j = 0; j < out.units; j++) {
    const el = make("out", colX(oc), oy[j] + (tile - osize) / 2, osize);
    const name = f.task === "classification" ? `class ${f.classes[j]}` : "y";
    el.innerHTML = `<span class="lbl" style="left:calc(100% + 4px);right:auto">${name}</span>`;
    if (f.task === "classification") el.style.background = rgb(CLASS_COLOURS[j % CLASS_COLOURS.length]);
    S0.outputs.push(el);
    pos[oc].push({x: colX(oc), y: oy[j] + tile / 2});
  }
  const ohead = document.createElement("div");
  ohead.className = "layer-head"; ohead.style.left = `${colX(oc)}px`;
  ohead.innerHTML = `<div>output</div><div>${f.task === "classification" ? "softmax + CE" : "MSE"}</div>`;
  nodes.appendChild(ohead);
  const ofoot = document.createElement("div");
  ofoot.className = "layer-foot"; ofoot.style.left = `${colX(oc)}px`; ofoot.dataset.layer = out.index;
  nodes.appendChild(ofoot);
  S0.outputFoot = ofoot;
  const ihead = document.createElement("div");
  ihead.className = "layer-head"; ihead.style.left = `${colX(0)}px`;
  ihead.innerHTML = `<div>features</div><div>${active.length} in use</div>`;
  nodes.appendChild(ihead);
  // links: one SVG path per weight, layer by layer
  const links = [];
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  f.layers.forEach((lay, i) => {
    const from = pos[i], to = pos[i + 1], paths = [];
    for (let j = 0; j < to.length; j++) {
      for (let k = 0; k < from.length; k++) {
        const a = {x: from[k].x + (i === 0 ? tile / 2 : tile / 2), y: from[k].y}, b = {x: to[j].x - (i === f.layers.length - 1 ? osize / 2 : tile / 2), y: to[j].y};
        const mx = (a.x + b.x) / 2;
        const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
        p.setAttribute("d", `M${a.x},${a.y} C${mx},${a.y} ${mx},${b.y} ${b.x},${b.y}`);
        p.setAttribute("fill", "none");
        p.dataset.l = i; p.dataset.j = j; p.dataset.k = k;
        svg.appendChild(p);
        paths.push(p);
      }
    }
    links.push(paths);
  });
  S.nodes = S0; S.links = links; S.tile = tile;
}

function linkValue(lay, j, k, mode) {
  const m = mode === "weight" ? lay.weight : mode === "grad" ? lay.grad : lay.update;
  return m ? m[j][k] : null;
}

function updateNetwork(f) {
  const backward = S.view === "backward", mode = backward ? $("link-mode").value : "weight";
  f.layers.forEach((lay, i) => {
    const paths = S.links[i];
    for (const p of paths) {
      const v = linkValue(lay, +p.dataset.j, +p.dataset.k, mode);
      if (v === null) { p.setAttribute("stroke", "#ccd"); p.setAttribute("stroke-width", 0.4); p.setAttribute("stroke-opacity", 0.4); continue; }
      const t = mode === "weight" ? Math.min(1, Math.abs(v) / 1.5) : logScale(Math.abs(v), -8, -1);
      p.setAttribute("stroke", rgb(v < 0 ? NEG : POS));
      p.setAttribute("stroke-width", (0.35 + 3.6 * t).toFixed(2));
      p.setAttribute("stroke-opacity", (0.25 + 0.7 * t).toFixed(2));
    }
  });
  const d = S.data;
  if (d && d.version === f.version) {
    let m = 0;
    S.nodes.features.forEach((feat) => {
      const idx = d.features.indexOf(feat.name);
      if (idx >= 0) drawDiverging(feat.canvas, d.feature_maps[idx], d.neuron_grid);
      else feat.canvas.getContext("2d").clearRect(0, 0, feat.canvas.width, feat.canvas.height);
      m++;
    });
  }
  f.layers.slice(0, -1).forEach((lay, i) => {
    const units = S.nodes.hidden[i];
    units.forEach((u, j) => {
      drawDiverging(u.canvas, lay.maps[j], f.neuron_grid);
      const dv = lay.delta ? lay.delta[j] : null;
      u.bar.style.width = `${(S.tile * Math.max(0.03, logScale(dv, -8, -1))).toFixed(1)}px`;
      u.bar.style.opacity = dv === null ? 0.15 : 1;
      u.el.title = `layer ${lay.index}, unit ${j + 1} (${lay.activation}): its output over the plane\n`
        + `mean |delta| = ${fmt(dv)} (dL/dz over the batch)`;
    });
    units.foot.innerHTML = footText(lay);
  });
  S.nodes.outputFoot.innerHTML = footText(f.layers[f.layers.length - 1]);
  $("legend").textContent = backward
    ? `links: ${mode === "grad" ? "dL/dw of the last step" : "the last update \u0394w"}, width on a log scale (1e-8 \u2026 0.1); blue > 0, orange < 0. Bars under units: mean |delta| (log scale).`
    : "links: weights (width |w|; blue > 0, orange < 0). Tiles: each unit's output over the plane.";
}

function footText(lay) {
  const dead = lay.dead !== undefined && lay.dead !== null ? `<div class="bw">dead <b>${lay.dead}</b>/${lay.units}</div>` : "";
  const sat = lay.saturated !== undefined && lay.saturated !== null ? `<div class="bw">saturated <b>${lay.saturated}</b>/${lay.units}</div>` : "";
  const extra = [lay.batch_norm ? "BN" : "", lay.dropout ? `drop ${lay.dropout}` : ""].filter(Boolean).join(" \u00b7 ");
  return `<div class="bw">\u2016\u2207W\u2016 <b>${fmt(lay.grad_norm, 2)}</b></div>`
    + `<div class="bw">\u0394W/W <b>${fmt(lay.update_ratio, 2)}</b></div>${dead}${sat}`
    + `<div class="fw">${extra}</div>`;
}

// -- panels -------------------------------------------------------------------------------
function setNumber(id, v, text) {
  const el = $(id);
  el.textContent = text !== undefined ? text : fmt(v);
  el.dataset.value = v === null || v === undefined ? "" : String(v);
}

function updateMetrics(f) {
  const m = f.metrics;
  setNumber("train-loss", m.train_loss);
  setNumber("test-loss", m.test_loss);
  setNumber("train-accuracy", m.train_accuracy, pct(m.train_accuracy));
  setNumber("test-accuracy", m.test_accuracy, pct(m.test_accuracy));
  setNumber("current-lr", m.lr);
  $("step-count").textContent = f.step;
  $("epoch-count").textContent = f.epoch;
  const play = $("play");
  play.classList.toggle("playing", !!f.playing);
  play.innerHTML = f.playing ? "&#x275A;&#x275A; pause" : "&#x25B6; play";
  document.body.classList.toggle("task-regression", f.task !== "classification");
  const conf = $("confusion");
  if (f.confusion) {
    const names = f.classes;
    conf.innerHTML = `<tr><th></th>${names.map((n) => `<th>${n}</th>`).join("")}</tr>`
      + f.confusion.map((row, i) => {
        const total = row.reduce((a, b) => a + b, 0) || 1;
        return `<tr><th>${names[i]}</th>${row.map((v, j) => `<td style="background:rgba(${i === j ? "46,134,171" : "228,87,46"},${(0.6 * v / total).toFixed(2)})">${v}</td>`).join("")}</tr>`;
      }).join("");
  } else conf.innerHTML = "";
  drawCurve($("loss-curve"), {x: f.loss_curve.step, lines: [{values: f.loss_curve.train, colour: "#22272e"}, {values: f.loss_curve.test, colour: "#e0a030"}]}, {log: false});
  const n = f.layers.length;
  const norms = f.norm_curve.norms;
  drawCurve($("norm-curve"), {x: f.norm_curve.step, lines: f.layers.map((lay, i) => ({values: norms.map((r) => r[i]), colour: layerColour(i, n)}))}, {log: true, width: 1});
  $("norm-legend").innerHTML = f.layers.map((lay, i) => `<span><i style="background:${layerColour(i, n)}"></i>${i === n - 1 ? "output" : "layer " + lay.index}</span>`).join("");
  const rows = f.layers.map((lay) => {
    const bad = lay.update_ratio !== null && (lay.update_ratio < 1e-5 || lay.update_ratio > 1e-1);
    const cell = (cls, v, text, warn) => `<td class="${cls}${warn ? " warn" : ""}" data-layer="${lay.index}" data-value="${v === null || v === undefined ? "" : v}">${text}</td>`;
    const meanDelta = lay.delta ? lay.delta.reduce((a, b) => a + b, 0) / lay.delta.length : null;
    return `<tr><td>${lay.activation === "output" ? "output" : "layer " + lay.index} <span class="hint">${lay.activation === "output" ? "" : lay.activation}</span></td>`
      + cell("grad-norm", lay.grad_norm, fmt(lay.grad_norm, 3))
      + cell("mean-delta", meanDelta, fmt(meanDelta, 3))
      + cell("update-ratio", lay.update_ratio, fmt(lay.update_ratio, 2), bad)
      + cell("dead", lay.dead, lay.dead === undefined || lay.dead === null ? "-" : `${lay.dead}/${lay.units}`, lay.dead > 0)
      + cell("saturated", lay.saturated, lay.saturated === undefined || lay.saturated === null ? "-" : `${lay.saturated}/${lay.units}`, lay.saturated > 0)
      + "</tr>";
  });
  $("layer-table").innerHTML = `<tr><th>layer</th><th title="Frobenius norm of dL/dW">\u2016dL/dW\u2016</th><th title="mean |dL/dz| over units and the batch">|\u03b4|</th>`
    + `<th title="||W_after - W_before|| / ||W_before|| of the last step (rule of thumb: about 1e-3)">\u2016\u0394W\u2016/\u2016W\u2016</th><th>dead</th><th>sat.</th></tr>` + rows.join("");
}

const escape = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const GREEK = [[/\bdelta/g, "\u03b4"], [/\beta\b/g, "\u03b7"], [/\blambda\b/g, "\u03bb"], [/<-/g, "\u2190"],
  [/->/g, "\u2192"], [/\bsqrt/g, "\u221a"], [/\bsum_b\b/g, "\u03a3_b"], [/\bsum\b/g, "\u03a3"], [/\*/g, "\u00b7"]];

function greek(t) {
  for (const [re, to] of GREEK) t = t.replace(re, to);
  return t;
}

function equation(t) {
  // course notation as text -> HTML with subscripts and superscripts
  return escape(greek(t)).replace(/_\{([^}]*)\}/g, "<sub>$1</sub>").replace(/_([A-Za-z0-9]+)/g, "<sub>$1</sub>")
    .replace(/\^([A-Z0-9])/g, "<sup>$1</sup>").replace(/\u00b7/g, " \u2299 ");
}

function updatePhases(f) {
  const ex = f.explain, list = $("phase-list");
  const done = {};
  for (const s of ex.steps) done[s.phase] = s;
  list.innerHTML = PHASES.map((p) => {
    const s = done[p];
    const cls = p === ex.phase ? "current" : s ? "" : "todo";
    const lines = s ? s.lines.map((l) => escape(greek(l).replace(/\u00b7/g, "\u00d7"))).join("\n") : "";
    return `<li class="${cls}" data-phase="${p}"><div class="pname">${PHASES.indexOf(p) + 1}. ${p}</div>`
      + `<div class="eq">${equation(ex.equations[p])}</div><div class="live">${lines}</div></li>`;
  }).join("");
}

// -- settings: the server's configuration <-> the controls and the URL hash ------------------------------
function fillSelect(el, values, label) {
  el.innerHTML = values.map((v) => `<option value="${v}">${label ? label(v) : v}</option>`).join("");
}

function setSelect(el, value) {
  if (document.activeElement === el) return;
  const v = String(value);
  let opt = [...el.options].find((o) => Number(o.value) === Number(value) || o.value === v);
  if (!opt) {
    opt = new Option(v, v);
    el.add(opt);
  }
  el.value = opt.value;
}

function syncControls(c) {
  for (const key of ["lr", "optimizer", "schedule", "regularization", "reg_rate", "dropout", "classes", "n_samples"]) setSelect($(key), c[key]);
  $("batch_norm").checked = c.batch_norm;
  $("residual").checked = c.residual;
  for (const key of ["noise", "test_ratio", "batch_size"]) if (document.activeElement !== $(key)) $(key).value = c[key];
  $("noise-out").textContent = c.noise;
  $("test-ratio-out").textContent = `${Math.round(c.test_ratio * 100)}%`;
  $("batch-size-out").textContent = c.batch_size;
  document.querySelectorAll(".dataset").forEach((b) => b.classList.toggle("active", b.dataset.name === c.dataset));
  $("classes").disabled = !["spiral", "gauss"].includes(c.dataset);
  $("remove-layer").disabled = c.hidden.length === 0;
  $("add-layer").disabled = c.hidden.length >= MAX_LAYERS;
}

const HASH_KEYS = ["dataset", "classes", "noise", "n_samples", "test_ratio", "seed", "features", "hidden", "activations",
  "residual", "batch_norm", "dropout", "optimizer", "lr", "schedule", "batch_size", "regularization", "reg_rate", "init_seed"];

function hashOf(c) {
  const parts = HASH_KEYS.filter((k) => k in c).map((k) => `${k}=${encodeURIComponent(Array.isArray(c[k]) ? c[k].join(",") : c[k])}`);
  parts.push(`view=${S.view}`);
  return "#" + parts.join("&");
}

function updateHash(c) {
  const h = hashOf(c);
  if (h !== S.lastHash) {
    S.lastHash = h;
    history.replaceState(null, "", h);
  }
}

function parseHash() {
  const out = {};
  let view = null;
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    if (!part) continue;
    const [k, v = ""] = part.split("=");
    const value = decodeURIComponent(v);
    if (k === "view") view = value;
    else if (HASH_KEYS.includes(k)) out[k] = ["features", "hidden", "activations"].includes(k) ? value.split(",").filter(Boolean) : value;
  }
  if (out.hidden) out.hidden = out.hidden.map(Number);
  if (out.hidden && out.hidden.length === 0) out.activations = [];
  return {config: out, view};
}

function setView(view) {
  S.view = view === "backward" ? "backward" : "forward";
  document.body.classList.toggle("view-backward", S.view === "backward");
  document.body.classList.toggle("view-forward", S.view === "forward");
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === S.view));
  if (S.frame) { updateNetwork(S.frame); updateHash(S.frame.config); }
}

// -- frames --------------------------------------------------------------------------------
async function loadData(version) {
  if (S.loadingData) return;
  S.loadingData = true;
  try {
    const d = await api("api/data");
    S.data = d;
    S.dataVersion = d.version;
    $("upload-name").textContent = d.upload ? `uploaded: ${d.upload}` : "";
    drawPoints();
    if (S.frame) updateNetwork(S.frame);
  } catch (e) { /* toast */ } finally {
    S.loadingData = false;
    if (S.frame && S.frame.version !== S.dataVersion && version !== S.frame.version) loadData(S.frame.version);
  }
}

function onFrame(f) {
  if (S.frame && f.version === S.frame.version && f.step < S.frame.step && f.playing) return;   // an older frame
  S.frame = f;
  if (f.version !== S.dataVersion) loadData(f.version);
  const key = structureKey(f);
  if (key !== S.structure) { S.structure = key; buildNetwork(f); }
  syncControls(f.config);
  updateMetrics(f);
  updateNetwork(f);
  drawOutput(f);
  updatePhases(f);
  updateHash(f.config);
  if (f.notice) toast(f.notice);
  document.body.dataset.step = f.step;
}

// -- wiring ---------------------------------------------------------------------------------
function datasetIcon(canvas, name) {
  const ctx = canvas.getContext("2d"), W = (canvas.width = 44), H = (canvas.height = 44);
  ctx.fillStyle = "#f4f5f7"; ctx.fillRect(0, 0, W, H);
  const dot = (x, y, c) => { ctx.fillStyle = rgb(c); ctx.beginPath(); ctx.arc(x, y, 1.8, 0, 7); ctx.fill(); };
  if (name === "circle") {
    for (let i = 0; i < 28; i++) { const a = (i / 28) * 7; dot(22 + 17 * Math.cos(a), 22 + 17 * Math.sin(a), NEG); }
    for (let i = 0; i < 12; i++) { const a = (i / 12) * 7; dot(22 + 7 * Math.cos(a), 22 + 7 * Math.sin(a), POS); }
  } else if (name === "xor") {
    for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) {
      dot(4 + i * 3.4, 4 + j * 3.4, POS); dot(26 + i * 3.4, 26 + j * 3.4, POS);
      dot(26 + i * 3.4, 4 + j * 3.4, NEG); dot(4 + i * 3.4, 26 + j * 3.4, NEG);
    }
  } else if (name === "gauss") {
    for (let i = 0; i < 14; i++) { const a = i * 2.4, r = 2 + (i % 4) * 1.6; dot(14 + r * Math.cos(a), 30 + r * Math.sin(a), NEG); dot(30 + r * Math.cos(a), 14 + r * Math.sin(a), POS); }
  } else if (name === "spiral") {
    for (let i = 0; i < 26; i++) { const t = i / 26, a = 9 * t; dot(22 + 19 * t * Math.sin(a), 22 + 19 * t * Math.cos(a), NEG); dot(22 - 19 * t * Math.sin(a), 22 - 19 * t * Math.cos(a), POS); }
  } else {
    for (let i = 0; i < 11; i++) for (let j = 0; j < 11; j++) {
      const x = -1 + i / 5, y = 1 - j / 5;
      const v = name === "plane" ? (x + y) / 2 : Math.exp(-((x - 0.4) ** 2 + (y - 0.4) ** 2) / 0.18) - Math.exp(-((x + 0.4) ** 2 + (y + 0.4) ** 2) / 0.18);
      dot(2 + i * 4, 2 + j * 4, diverging(v));
    }
  }
}

function wire() {
  fillSelect($("lr"), LR);
  fillSelect($("reg_rate"), REG);
  fillSelect($("dropout"), DROPOUT);
  const box = $("datasets");
  for (const [name, label] of DATASETS) {
    const b = document.createElement("button");
    b.className = "dataset"; b.dataset.name = name; b.id = `dataset-${name}`; b.title = label;
    const c = document.createElement("canvas");
    datasetIcon(c, name);
    b.append(c, document.createTextNode(label));
    b.addEventListener("click", () => configure({dataset: name}));
    box.appendChild(b);
  }
  $("play").addEventListener("click", () => control(S.frame && S.frame.playing ? "pause" : "play"));
  $("step").addEventListener("click", () => control("step"));
  $("phase").addEventListener("click", () => { if (S.view !== "backward") setView("backward"); control("phase"); });
  $("reset").addEventListener("click", () => control("reset"));
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => setView(t.dataset.view)));
  document.querySelectorAll(".preset").forEach((b) => b.addEventListener("click", () => post("api/preset", {name: b.dataset.preset})));
  for (const key of ["lr", "reg_rate", "dropout", "classes", "n_samples", "noise", "test_ratio", "batch_size"]) {
    $(key).addEventListener("change", (e) => configure({[key]: Number(e.target.value)}));
  }
  $("noise").addEventListener("input", (e) => { $("noise-out").textContent = e.target.value; });
  $("test_ratio").addEventListener("input", (e) => { $("test-ratio-out").textContent = `${Math.round(e.target.value * 100)}%`; });
  $("batch_size").addEventListener("input", (e) => { $("batch-size-out").textContent = e.target.value; });
  for (const key of ["optimizer", "schedule", "regularization"]) $(key).addEventListener("change", (e) => configure({[key]: e.target.value}));
  for (const key of ["batch_norm", "residual"]) $(key).addEventListener("change", (e) => configure({[key]: e.target.checked}));
  $("regenerate").addEventListener("click", () => configure({seed: (S.frame ? S.frame.config.seed : 0) + 1}));
  $("add-layer").addEventListener("click", () => {
    const c = S.frame.config;
    configure({hidden: c.hidden.concat([c.hidden.length ? c.hidden[c.hidden.length - 1] : 4]),
      activations: c.activations.concat([c.activations.length ? c.activations[c.activations.length - 1] : "tanh"])});
  });
  $("remove-layer").addEventListener("click", () => {
    const c = S.frame.config;
    configure({hidden: c.hidden.slice(0, -1), activations: c.activations.slice(0, -1)});
  });
  $("link-mode").addEventListener("change", () => S.frame && updateNetwork(S.frame));
  $("show-test").addEventListener("change", drawPoints);
  $("csv-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (file) await post("api/upload", await file.text(), file.name);
    e.target.value = "";
  });
  $("import").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (file) await post("api/model", await file.arrayBuffer(), file.name);
    e.target.value = "";
  });
  $("links").addEventListener("mousemove", (e) => {
    const p = e.target;
    if (!p.dataset || p.dataset.l === undefined || !S.frame) return;
    const lay = S.frame.layers[+p.dataset.l], j = +p.dataset.j, k = +p.dataset.k;
    $("legend").textContent = `W_${lay.index}[${j + 1},${k + 1}] = ${fmt(lay.weight[j][k])},  dL/dw = ${fmt(linkValue(lay, j, k, "grad"))},  `
      + `last update = ${fmt(linkValue(lay, j, k, "update"))}`;
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === " ") { e.preventDefault(); $("play").click(); }
    if (e.key === "n") $("phase").click();
    if (e.key === "s") $("step").click();
  });
  window.addEventListener("resize", () => { S.structure = null; if (S.frame) onFrame(S.frame); });
  window.addEventListener("hashchange", () => {          // a URL edited or pasted by hand: apply its settings
    if (location.hash === S.lastHash) return;
    const {config, view} = parseHash();
    if (view) setView(view);
    if (Object.keys(config).length) configure(config);
  });
}

async function main() {
  wire();
  const {config, view} = parseHash();
  setView(view || "forward");
  if (Object.keys(config).length) {
    try { onFrame(await api("api/config", config)); } catch (e) { /* toast */ }
  }
  connect();
}

main();
