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

// Label tags: a filled box in the detection's colour with dark or light text, whichever reads
// better on it; a tag that would cover an earlier one moves below it.
function luminance(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function placeTag(placed, x, y, w, h, limit) {
  const tag = { x, y, w, h };
  while (placed.some((other) => overlaps(tag, other)) && tag.y + h < limit) tag.y += h;
  placed.push(tag);
  return tag;
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
  // Tags keep a readable size on screen whatever the picture's size.
  const scale = current.width / Math.max(1, $("image").clientWidth || current.width);
  const fontSize = 15 * scale;
  const placed = [];
  const ns = "http://www.w3.org/2000/svg";
  const visible = current.detections.filter((d) => d.score >= threshold);
  visible.forEach((d, index) => {
    const [x1, y1, x2, y2] = d.box;
    const row = rows.insertRow();
    row.className = "detection";
    row.insertCell().textContent = String(index + 1);
    const label = row.insertCell();
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(d.label);
    label.append(swatch, d.label);
    row.insertCell().textContent = d.score.toFixed(3);
    row.insertCell().textContent = d.box.map((v) => Math.round(v)).join(", ");

    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", x1); rect.setAttribute("y", y1);
    rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1);
    rect.setAttribute("stroke", colour(d.label));
    rect.setAttribute("class", "box");
    const caption = `${d.label} ${d.score.toFixed(2)}`;
    const height = fontSize * 1.35;
    const width = caption.length * fontSize * 0.62 + fontSize * 0.6;
    const tag = placeTag(placed, Math.min(x1, current.width - width), Math.max(0, y1), width, height,
                         current.height - height);
    const background = document.createElementNS(ns, "rect");
    background.setAttribute("x", tag.x); background.setAttribute("y", tag.y);
    background.setAttribute("width", tag.w); background.setAttribute("height", tag.h);
    background.setAttribute("fill", colour(d.label));
    background.setAttribute("class", "tag");
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", tag.x + fontSize * 0.3);
    text.setAttribute("y", tag.y + fontSize * 1.05);
    text.setAttribute("font-size", fontSize);
    text.setAttribute("fill", luminance(colour(d.label)) > 0.5 ? "#111" : "#fff");
    text.textContent = caption;
    svg.append(rect, background, text);
  });
  const count = visible.length;
  let message = `${count} object${count === 1 ? "" : "s"} scoring at least ${threshold.toFixed(2)}`;
  if (count === 0 && current.detections.length > 0) {
    const best = Math.max(...current.detections.map((d) => d.score));
    message += `; the best candidate scores ${best.toFixed(2)}: lower the threshold to see it`;
  }
  setStatus(message);
}

function show(payload, src) {
  current = { detections: payload.detections, width: payload.image.width, height: payload.image.height };
  $("timing").textContent = "Server time (ms): " +
    Object.entries(payload.timing_ms).map(([k, v]) => `${k} ${v}`).join(", ");
  $("image").src = src;
  $("result").hidden = false;
  render();
}

// A failed request clears the previous picture and table: they belong to another image.
async function run(task) {
  try {
    await task();
  } catch (error) {
    current = null;
    $("result").hidden = true;
    $("overlay").replaceChildren();
    $("detections").tBodies[0].replaceChildren();
    $("image").removeAttribute("src");
    setStatus(error.message, true);
  }
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
window.addEventListener("resize", render);
$("image").addEventListener("load", render);  // tag sizes follow the picture's displayed size

// The slider starts at the served model's own default threshold.
fetch("/v1/model").then((r) => (r.ok ? r.json() : null)).then((model) => {
  if (!model) return;
  $("model-line").textContent = `Model: ${model.name} (${model.weights})` +
    (model.random_init ? " — UNTRAINED, answers are meaningless" : "");
  $("model-license").textContent = model.license ? `Weights licence: ${model.license}` : "";
  $("threshold").value = model.default_threshold;
  $("threshold-value").textContent = Number(model.default_threshold).toFixed(2);
}).catch(() => null);
