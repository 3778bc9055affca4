// The facemask page: posts photos (or webcam frames) to /api/predict and draws the faces it returns.
"use strict";

const COLOURS = { WithMask: "#00b000", WithoutMask: "#e00000" };

async function predict(blob, name) {
  const form = new FormData();
  form.append("image", blob, name);
  const response = await fetch("/api/predict", { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

// Draw the image with one box per face (the region the classifier saw) and its label.
function drawFaces(canvas, image, result) {
  canvas.width = result.width;
  canvas.height = result.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, result.width, result.height);
  const line = Math.max(2, Math.round(Math.max(result.width, result.height) / 300));
  ctx.font = `${Math.max(14, line * 7)}px system-ui, sans-serif`;
  for (const face of result.faces) {
    const [x1, y1, x2, y2] = face.crop;
    const text = face.tag; // the decision and its confidence, as the server defines them
    ctx.strokeStyle = ctx.fillStyle = COLOURS[face.label];
    ctx.lineWidth = line;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const height = line * 9;
    ctx.fillRect(x1, Math.max(0, y1 - height), ctx.measureText(text).width + 8, height);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x1 + 4, Math.max(height, y1) - line * 2);
  }
}

function summarise(result) {
  const counts = { WithMask: 0, WithoutMask: 0 };
  result.faces.forEach((face) => counts[face.label]++);
  if (!result.faces.length) return "no face found";
  return `${counts.WithMask} with mask, ${counts.WithoutMask} without (${result.milliseconds} ms)`;
}

// --- photos -------------------------------------------------------------------------------------
async function showPhoto(file) {
  const item = document.createElement("div");
  item.className = "result";
  item.dataset.file = file.name;
  item.innerHTML = `<div class="summary"><b></b> <span>…</span></div><canvas></canvas>`;
  item.querySelector("b").textContent = file.name;
  document.getElementById("results").prepend(item);
  try {
    const result = await predict(file, file.name); // first: the server names what is wrong with a bad file
    const image = await createImageBitmap(file);
    drawFaces(item.querySelector("canvas"), image, result);
    item.querySelector("span").textContent = summarise(result);
    item.dataset.labels = result.faces.map((face) => face.label).join(",");
    item.classList.add("done");
  } catch (error) {
    item.classList.add("error", "done");
    item.querySelector("span").textContent = `error: ${error.message}`;
    item.querySelector("canvas").remove();
  }
}

function showPhotos(files) {
  for (const file of files) showPhoto(file);
}

// --- live camera --------------------------------------------------------------------------------
let stream = null;
let timer = null;

async function startCamera() {
  const status = document.getElementById("live-status");
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  } catch (error) {
    status.textContent = `camera unavailable: ${error.message}`;
    return;
  }
  const video = document.getElementById("video");
  video.srcObject = stream;
  await video.play();
  document.getElementById("start").disabled = true;
  document.getElementById("stop").disabled = false;
  liveLoop(video, status);
}

async function liveLoop(video, status) {
  if (!stream) return;
  const started = performance.now();
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  try {
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
    const result = await predict(blob, "frame.jpg");
    drawFaces(document.getElementById("live-canvas"), grab, result);
    status.textContent = summarise(result);
  } catch (error) {
    status.textContent = `error: ${error.message}`;
  }
  const period = 1000 / Number(document.getElementById("rate").value || 5);
  timer = setTimeout(() => liveLoop(video, status), Math.max(0, period - (performance.now() - started)));
}

function stopCamera() {
  clearTimeout(timer);
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  document.getElementById("start").disabled = false;
  document.getElementById("stop").disabled = true;
}

// --- wiring -------------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of ["upload", "live"]) {
    document.getElementById(tab).hidden = tab !== name;
    document.getElementById(`tab-${tab}`).classList.toggle("active", tab === name);
  }
  if (name !== "live") stopCamera();
}

document.getElementById("tab-upload").onclick = () => showTab("upload");
document.getElementById("tab-live").onclick = () => showTab("live");
document.getElementById("files").onchange = (event) => showPhotos(event.target.files);
document.getElementById("start").onclick = startCamera;
document.getElementById("stop").onclick = stopCamera;
const drop = document.getElementById("drop");
drop.ondragover = (event) => { event.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (event) => { event.preventDefault(); drop.classList.remove("over"); showPhotos(event.dataTransfer.files); };

fetch("/api/health")
  .then((response) => response.json())
  .then((health) => {
    document.getElementById("health").textContent = `model ${health.model}, threshold ${health.threshold.toFixed(3)}`;
  })
  .catch(() => { document.getElementById("health").textContent = "server not reachable"; });
