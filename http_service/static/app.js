// The demo page: one /v1/detect call per image at the lowest threshold, then the
// slider filters what is drawn without asking the server again.
"use strict";

const MIN_THRESHOLD = 0.05;
const PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#0082c8", "#f58230", "#911eb4",
                 "#46f0f0", "#f032e6", "#d2f53c", "#fabed4", "#008080", "#aa6e28"];
const $ = (id) => document.getElementById(id);
let current = null;   // {detections, width, height}
let objectUrl = null;

function colour(label) {
  let hash = 0;
  for (const ch of label) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function detect(body, headers, query = "") {
  setStatus("Detecting…");
  const params = new URLSearchParams(query);
  const response = await fetch("/v1/detect" + (params.toString() ? "?" + params : ""),
                               { method: "POST", headers, body });
  const payload = await response.json();
  if (!response.ok) {
    const error = payload.error || {};
    throw new Error(`${error.code || response.status}: ${error.message || "request failed"}`);
  }
  return payload;
}

function render() {
  if (!current) return;
  const threshold = Number($("threshold").value);
  $("threshold-value").textContent = threshold.toFixed(2);
  const svg = $("overlay");
  svg.setAttribute("viewBox", `0 0 ${current.width} ${current.height}`);
  svg.replaceChildren();
  const rows = $("detections").tBodies[0];
  rows.replaceChildren();
  let shown = 0;
  current.detections.forEach((d, index) => {
    const visible = d.score >= threshold;
    const [x1, y1, x2, y2] = d.box;
    const row = rows.insertRow();
    row.className = visible ? "detection" : "detection hidden";
    row.insertCell().textContent = String(index + 1);
    const label = row.insertCell();
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(d.label);
    label.append(swatch, d.label);
    row.insertCell().textContent = d.score.toFixed(3);
    row.insertCell().textContent = d.box.map((v) => Math.round(v)).join(", ");
    if (!visible) return;
    shown += 1;
    const ns = "http://www.w3.org/2000/svg";
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", x1); rect.setAttribute("y", y1);
    rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1);
    rect.setAttribute("stroke", colour(d.label));
    rect.setAttribute("class", "box");
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", x1 + 4);
    text.setAttribute("y", Math.max(y1 + 16, 16));
    text.setAttribute("fill", colour(d.label));
    text.setAttribute("font-size", Math.max(14, current.width / 40));
    text.textContent = `${d.label} ${d.score.toFixed(2)}`;
    svg.append(rect, text);
  });
  setStatus(`${shown} of ${current.detections.length} detections at threshold ${threshold.toFixed(2)}`);
}

function show(payload, src) {
  current = { detections: payload.detections, width: payload.image.width, height: payload.image.height };
  $("timing").textContent = "Server time (ms): " +
    Object.entries(payload.timing_ms).map(([k, v]) => `${k} ${v}`).join(", ");
  $("image").src = src;
  $("result").hidden = false;
  render();
}

async function run(task) {
  try { await task(); } catch (error) { setStatus(error.message, true); }
}

function options() {
  return { threshold: MIN_THRESHOLD, max_detections: 100 };
}

$("url-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const url = $("url").value.trim();
  run(async () => {
    const payload = await detect(JSON.stringify({ url, ...options() }), { "Content-Type": "application/json" });
    show(payload, url);
  });
});

function upload(file) {
  if (!file) return;
  run(async () => {
    const payload = await detect(file, { "Content-Type": file.type || "image/jpeg" }, options());
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    show(payload, objectUrl);
  });
}

$("file").addEventListener("change", () => upload($("file").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload(event.dataTransfer.files[0]);
});
$("threshold").addEventListener("input", render);

// The slider starts at the served model's own default threshold.
fetch("/v1/model").then((r) => (r.ok ? r.json() : null)).then((model) => {
  if (!model) return;
  $("model-line").textContent = `Model: ${model.name} (${model.weights})` +
    (model.random_init ? " — UNTRAINED, answers are meaningless" : "");
  $("model-license").textContent = model.license ? `Weights licence: ${model.license}` : "";
  $("threshold").value = model.default_threshold;
  $("threshold-value").textContent = Number(model.default_threshold).toFixed(2);
}).catch(() => null);
