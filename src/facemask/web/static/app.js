// The facemask operator console: posts photos to /api/predict and this browser's camera frames to /api/live
// (where the server tracks faces into people), shows every door the server watches with its totals, keeps the
// session's totals, raises an alert for a person without a mask at any door, and logs every result (a photo's
// faces, a person's entrance event at a door) in a history. Records are the server's (facemask.inference.records).
"use strict";

const COLOURS = { WithMask: "#007a1f", WithoutMask: "#c8000a" };
// Photos are shown in a box this size (CSS pixels, narrower on a narrow window): a 160-px photo is scaled up at
// most UPSCALE times, a 4000-px one scaled down.
const VIEW = { width: 720, height: 540 };
const UPSCALE = 3;
const HISTORY_LENGTH = 300; // the oldest events are dropped beyond this
const THUMB = 48; // history thumbnails, CSS pixels
const NO_ANSWER = "The server does not answer";

// --- the server ---------------------------------------------------------------------------------
async function post(path, blob, name, fields = {}) {
  const form = new FormData();
  form.append("image", blob, name);
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form });
  } catch {
    throw new Error(NO_ANSWER); // refused connection, server stopped, network down
  }
  const body = await response.json().catch(() => null);
  if (response.ok && body) return body;
  throw new Error(refusalWords(response.status, body));
}

// The server's own `detail` is already in the operator's words; anything else (a proxy's page, FastAPI's
// validation list) gets a plain sentence.
function refusalWords(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (status >= 500 || !body) return `${NO_ANSWER} properly (error ${status})`;
  return `The server refused this photo (error ${status})`;
}

// --- counting -----------------------------------------------------------------------------------
function count(labels) {
  return {
    people: labels.length,
    mask: labels.filter((label) => label === "WithMask").length,
    nomask: labels.filter((label) => label === "WithoutMask").length,
  };
}

function countText({ people, mask, nomask }) {
  return `${people} ${people === 1 ? "person" : "people"} · ${mask} with mask · ${nomask} without`;
}

function showCount(element, counts) {
  element.querySelector(".counts").textContent = countText(counts);
  Object.assign(element.dataset, { people: counts.people, mask: counts.mask, nomask: counts.nomask });
}

// The session's totals. Photos add their faces; the live camera adds each person once, from their entrance
// event, and shows the people in the current frame (inView).
const session = { people: 0, mask: 0, nomask: 0 };

function addPeople(labels) {
  const counts = count(labels);
  for (const key of Object.keys(session)) session[key] += counts[key];
  showCount(document.getElementById("totals"), session);
}

function showInView(labels) {
  const element = document.getElementById("in-view");
  element.classList.toggle("off", labels === null);
  if (labels === null) {
    element.querySelector(".counts").textContent = "camera off";
    Object.assign(element.dataset, { people: 0, mask: 0, nomask: 0 });
  } else {
    showCount(element, count(labels));
  }
}

// --- alert --------------------------------------------------------------------------------------
let unacknowledged = 0;

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// Raised for every face without a mask, stays up (counting them) until the operator acknowledges it.
function raiseAlert(people, source, time) {
  unacknowledged += people;
  const alert = document.getElementById("alert");
  const who = unacknowledged === 1 ? "1 person" : `${unacknowledged} people`;
  alert.querySelector("#alert-text").textContent =
    `No mask: ${who} without a mask, the latest at ${clock(time)} (${source})`;
  alert.dataset.count = unacknowledged;
  alert.hidden = false;
  document.title = "⚠ no mask · facemask";
}

function acknowledge() {
  const alert = document.getElementById("alert");
  if (alert.hidden) return;
  addEvent({ text: `Alert acknowledged (${unacknowledged} without a mask)`, kind: "note" });
  unacknowledged = 0;
  alert.hidden = true;
  alert.dataset.count = 0;
  document.title = "facemask";
}

// --- history ------------------------------------------------------------------------------------
// One entry, newest first: a face (its thumbnail, tag and where it was seen), an error or a note.
function addEvent({ text, source = "", kind, thumb = null, label = "", time = new Date() }) {
  const entry = document.createElement("li");
  entry.className = `event ${kind}`;
  entry.dataset.label = label;
  if (thumb) entry.append(thumb);
  const words = document.createElement("div");
  words.innerHTML = "<b></b> <span></span> <time></time>";
  words.querySelector("b").textContent = text;
  words.querySelector("span").textContent = source;
  words.querySelector("time").textContent = clock(time);
  words.querySelector("time").dateTime = time.toISOString();
  entry.append(words);
  const history = document.getElementById("history");
  history.prepend(entry);
  while (history.children.length > HISTORY_LENGTH) history.lastElementChild.remove();
}

// A small square cut of the face's crop from the image (any drawable: a bitmap, the camera frame).
function thumbnail(image, face, result) {
  const sx = image.width / result.width; // the server may have decoded a large JPEG smaller
  const sy = image.height / result.height;
  const [x1, y1, x2, y2] = face.crop;
  const side = Math.max(x2 - x1, y2 - y1);
  const cx = (x1 + x2) / 2;
  const cy = (y1 + y2) / 2;
  const canvas = document.createElement("canvas");
  canvas.className = "thumb";
  canvas.width = canvas.height = THUMB * (window.devicePixelRatio || 1);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#333";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(image, (cx - side / 2) * sx, (cy - side / 2) * sy, side * sx, side * sy, 0, 0, canvas.width, canvas.height);
  canvas.style.borderColor = COLOURS[face.label];
  return canvas;
}

// An entrance event's thumbnail: the server's (blurred when the privacy switch is on).
function eventThumbnail(event) {
  if (!event.thumbnail_jpeg) return null;
  const image = new Image();
  image.className = "thumb";
  image.alt = `person ${event.id}`;
  image.src = `data:image/jpeg;base64,${event.thumbnail_jpeg}`;
  image.style.borderColor = COLOURS[event.label];
  return image;
}

function logFaces(faces, image, result, source, time) {
  for (const face of faces) {
    addEvent({ text: face.tag, source, kind: face.label, thumb: thumbnail(image, face, result), label: face.label, time });
  }
}

// --- drawing ------------------------------------------------------------------------------------
const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

// The size a result is shown at, in CSS pixels: fit the view, never more than UPSCALE times the image.
function displaySize(width, height) {
  const room = Math.min(VIEW.width, document.getElementById("work").clientWidth || VIEW.width);
  const scale = Math.min(room / width, VIEW.height / height, UPSCALE);
  return { width: Math.round(width * scale), height: Math.round(height * scale) };
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

// Where each label goes (display pixels): above its box if there is room, else inside the box's top edge, else
// below it; pushed down past labels already placed; always inside the image. Boxes are labelled top to bottom
// so the pushing runs one way. A label that fits nowhere near is put where there is room nearest its box, or
// left out (null) when the image is full of labels.
function placeLabels(boxes, sizes, width, height) {
  const placed = [];
  const spots = new Array(boxes.length).fill(null);
  const order = boxes.map((_, i) => i).sort((a, b) => boxes[a][1] - boxes[b][1] || boxes[a][0] - boxes[b][0]);
  for (const i of order) {
    const [x1, y1, , y2] = boxes[i];
    const { w, h } = sizes[i];
    if (w > width || h > height) continue;
    const x = clamp(x1, 0, width - w);
    let spot = null;
    for (const y of [y1 - h, y1, y2]) {
      spot = pushDown({ x, y: clamp(y, 0, height - h), w, h }, placed, height);
      if (spot) break;
    }
    spot = spot || nearestFree({ x, y: clamp(y1 - h, 0, height - h), w, h }, placed, width, height);
    if (spot) placed.push((spots[i] = spot));
  }
  return spots;
}

function pushDown(rect, placed, height) {
  for (;;) {
    const hit = placed.find((other) => overlaps(rect, other));
    if (!hit) return rect;
    rect = { ...rect, y: hit.y + hit.h + 1 };
    if (rect.y + rect.h > height) return null;
  }
}

function nearestFree(want, placed, width, height) {
  let best = null;
  let bestDistance = Infinity;
  for (let y = 0; y + want.h <= height; y += want.h / 2) {
    for (let x = 0; x + want.w <= width; x += want.w / 4) {
      const rect = { ...want, x, y };
      const distance = Math.hypot(x - want.x, y - want.y);
      if (distance < bestDistance && !placed.some((other) => overlaps(rect, other))) {
        best = rect;
        bestDistance = distance;
      }
    }
  }
  return best;
}

// Draw the image at its display size with one box per face (the region the classifier saw) and its tag.
// The canvas holds display pixels (times the screen's pixel ratio, for sharp text), not the image's: its
// data-width/height give the image's size, data-label-boxes the tags' rectangles in image pixels.
function drawFaces(canvas, image, result) {
  const shown = displaySize(result.width, result.height);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(shown.width * ratio);
  canvas.height = Math.round(shown.height * ratio);
  canvas.style.width = `${shown.width}px`;
  canvas.dataset.width = result.width;
  canvas.dataset.height = result.height;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.drawImage(image, 0, 0, shown.width, shown.height);

  const sx = shown.width / result.width; // image pixels to display pixels (rounding makes sx and sy differ)
  const sy = shown.height / result.height;
  const boxes = result.faces.map(({ box: [x1, y1, x2, y2] }) => [x1 * sx, y1 * sy, x2 * sx, y2 * sy]);
  const font = Math.round(clamp(shown.width / 34, 14, 19)); // readable on a 160-px photo shown at 480
  ctx.font = `bold ${font}px system-ui, sans-serif`;
  const pad = Math.round(font / 3);
  // The tag is the server's: the decision and its confidence, defined once in facemask.decision.
  const tags = result.faces.map(shownTag);
  const sizes = tags.map(({ text }) => ({ w: Math.ceil(ctx.measureText(text).width) + 2 * pad, h: font + 2 * pad }));
  const spots = placeLabels(boxes, sizes, shown.width, shown.height);

  ctx.lineWidth = 2;
  result.faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = boxes[i];
    ctx.strokeStyle = COLOURS[tags[i].label];
    ctx.strokeRect(x1 + 1, y1 + 1, x2 - x1 - 2, y2 - y1 - 2);
  });
  ctx.textBaseline = "middle";
  result.faces.forEach((face, i) => {
    const spot = spots[i];
    if (!spot) return;
    ctx.fillStyle = COLOURS[tags[i].label];
    ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
    ctx.fillStyle = "#fff";
    ctx.fillText(tags[i].text, spot.x + pad, spot.y + spot.h / 2 + 1);
  });
  const inImage = (spot) => spot && [spot.x / sx, spot.y / sy, (spot.x + spot.w) / sx, (spot.y + spot.h) / sy].map((v) => +v.toFixed(1));
  canvas.dataset.labelBoxes = JSON.stringify(spots.map(inImage));
  canvas.dataset.tags = JSON.stringify(tags.map(({ text }) => text));
}

// A face at the camera shows its person: id and the label voted over its frames (stable while one frame
// wavers); a photo's face, or a person's first frame, its own decision.
function shownTag(face) {
  if (!face.person) return { text: face.tag, label: face.label };
  return { text: `#${face.person.id} ${face.person.tag}`, label: face.person.label };
}

// --- photos -------------------------------------------------------------------------------------
// The list is in upload order (first chosen first); the history beside it is newest first.
function showPhotos(files) {
  const results = document.getElementById("results");
  const items = Array.from(files, (file) => {
    const item = document.createElement("article");
    item.className = "result";
    item.dataset.file = file.name;
    item.innerHTML = `<div class="summary"><b></b> <span class="counts">analysing…</span></div><canvas></canvas>`;
    item.querySelector("b").textContent = file.name;
    results.append(item);
    return item;
  });
  if (items.length) items[0].scrollIntoView({ behavior: "smooth", block: "nearest" });
  items.forEach((item, i) => showPhoto(files[i], item));
}

async function showPhoto(file, item) {
  const summary = item.querySelector(".counts");
  try {
    const result = await post("/api/predict", file, file.name); // first: the server names a bad file
    const image = await createImageBitmap(file);
    const time = new Date(); // after the last await: the history stays in time order
    drawFaces(item.querySelector("canvas"), image, result);
    const labels = result.faces.map((face) => face.label);
    summary.textContent = labels.length ? countText(count(labels)) : "no face found";
    item.title = `${result.width} x ${result.height} px, analysed in ${result.milliseconds} ms`;
    item.dataset.labels = labels.join(",");
    addPeople(labels);
    if (!labels.length) addEvent({ text: "no face found", source: file.name, kind: "note", time });
    logFaces(result.faces, image, result, file.name, time);
    const unmasked = count(labels).nomask;
    if (unmasked) raiseAlert(unmasked, file.name, time);
    image.close(); // the thumbnails are cut: free the decoded photo
  } catch (error) {
    item.classList.add("error");
    summary.textContent = error.message;
    item.querySelector("canvas").remove();
    // The server names the file in most of its messages; name it where it did not.
    addEvent({ text: error.message, source: error.message.includes(file.name) ? "" : file.name, kind: "error" });
  }
  item.classList.add("done");
}

// --- live camera --------------------------------------------------------------------------------
let stream = null;
let timer = null;
const alerted = new Set(); // people already alerted for, as "door#id"

function cameraWords(error) {
  if (error.name === "NotAllowedError") return "The camera was not allowed: allow it in the browser and try again";
  if (error.name === "NotFoundError") return "No camera found";
  if (error.name === "NotReadableError") return "The camera is in use by another program";
  return `The camera cannot be used (${error.message})`;
}

async function startCamera() {
  const status = document.getElementById("live-status");
  status.classList.remove("error");
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  } catch (error) {
    status.textContent = cameraWords(error);
    status.classList.add("error");
    return;
  }
  const video = document.getElementById("video");
  video.srcObject = stream;
  await video.play();
  document.getElementById("start").disabled = true;
  document.getElementById("stop").disabled = false;
  showInView([]);
  liveLoop(video, status);
}

async function liveLoop(video, status) {
  if (!stream) return;
  const started = performance.now();
  if (video.videoWidth) {
    const grab = document.createElement("canvas");
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    try {
      const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
      const door = encodeURIComponent(document.getElementById("door").value.trim() || "webcam");
      const result = await post(`/api/live?camera=${door}`, blob, "frame.jpg", { blur: document.getElementById("blur").checked });
      if (!stream) return; // stopped while the frame was on its way
      drawFaces(document.getElementById("live-canvas"), grab, result);
      liveFrame(result);
      status.textContent = result.faces.length ? "" : "no face found";
      status.classList.remove("error");
    } catch (error) {
      status.textContent = error.message;
      status.classList.add("error");
    }
  }
  const period = 1000 / clamp(Number(document.getElementById("rate").value) || 5, 1, 15);
  timer = setTimeout(() => liveLoop(video, status), Math.max(0, period - (performance.now() - started)));
}

// The server tracks the camera's faces into people: the people in view are counted by their voted label and
// a person is alerted for once, as soon as their vote says no mask. Their entrance events come, like every
// door's, from /api/events (pollEvents).
function liveFrame(result) {
  showInView(result.faces.map((face) => shownTag(face).label));
  for (const face of result.faces) {
    if (face.person?.label === "WithoutMask") alertOnce(result.camera, face.person.id, new Date());
  }
}

function alertOnce(camera, id, time) {
  const key = `${camera}#${id}`;
  if (alerted.has(key)) return;
  alerted.add(key);
  raiseAlert(1, `${camera}, person #${id}`, time);
}

// --- doors --------------------------------------------------------------------------------------
// Every door's entrance events, in order, once each: a person adds to the totals and the history (with the
// server's thumbnail), and one without a mask raises the alert unless it already did while in view.
let eventsSeen = null; // the last event taken; null until the first poll (older events are not replayed)

async function pollEvents() {
  try {
    const response = await fetch(`/api/events?after=${eventsSeen ?? 0}`);
    const recent = await response.json();
    if (eventsSeen !== null) {
      for (const event of recent.events) {
        const time = new Date(event.at);
        addPeople([event.label]);
        addEvent({ text: `#${event.id} ${event.tag}`, source: event.camera, kind: event.label, thumb: eventThumbnail(event), label: event.label, time });
        if (event.label === "WithoutMask") alertOnce(event.camera, event.id, time);
      }
    }
    eventsSeen = recent.next;
  } catch {
    // the server is away: the health line says so; try again
  }
  setTimeout(pollEvents, 1000);
}

// The doors side by side: each camera the server reads shows its latest annotated frame; every door (browser
// cameras too) its status and people since the server started.
async function pollDoors() {
  try {
    const stats = await (await fetch("/api/stats")).json();
    const grid = document.getElementById("doors-grid");
    const names = Object.keys(stats.cameras);
    document.getElementById("no-doors").hidden = names.length > 0;
    for (const name of names) showDoor(grid, name, stats.cameras[name]);
  } catch {
    // the server is away: try again
  }
  setTimeout(pollDoors, 2000);
}

function showDoor(grid, name, camera) {
  let figure = grid.querySelector(`figure[data-camera="${CSS.escape(name)}"]`);
  if (!figure) {
    figure = document.createElement("figure");
    figure.className = "door counter";
    figure.dataset.camera = name;
    figure.innerHTML = `<img alt=""><figcaption><b></b> <span class="status"></span><br><span class="counts"></span></figcaption>`;
    figure.querySelector("b").textContent = name;
    figure.querySelector("img").alt = `door ${name}`;
    grid.append(figure);
  }
  const people = camera.people.WithMask || 0;
  const without = camera.people.WithoutMask || 0;
  showCount(figure, { people: people + without, mask: people, nomask: without });
  figure.dataset.status = camera.status;
  figure.querySelector(".status").textContent = `${camera.status} · ${camera.source} · ${camera.frames} frames`;
  const image = figure.querySelector("img");
  image.hidden = camera.source === "browser"; // a browser's camera is shown by that browser
  if (!image.hidden && !document.getElementById("doors").hidden && camera.frames) {
    image.src = `/api/cameras/${encodeURIComponent(name)}/frame.jpg?frame=${camera.frames}`;
  }
}

function stopCamera() {
  clearTimeout(timer);
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  document.getElementById("start").disabled = false;
  document.getElementById("stop").disabled = true;
  showInView(null);
}

// --- wiring -------------------------------------------------------------------------------------
function showTab(name) {
  for (const tab of ["upload", "live", "doors"]) {
    document.getElementById(tab).hidden = tab !== name;
    document.getElementById(`tab-${tab}`).classList.toggle("active", tab === name);
  }
  if (name !== "live") stopCamera();
}

document.getElementById("tab-upload").onclick = () => showTab("upload");
document.getElementById("tab-live").onclick = () => showTab("live");
document.getElementById("tab-doors").onclick = () => showTab("doors");
document.getElementById("files").onchange = (event) => {
  showPhotos(event.target.files);
  event.target.value = ""; // choosing the same photo again is a new upload
};
document.getElementById("start").onclick = startCamera;
document.getElementById("stop").onclick = stopCamera;
document.getElementById("acknowledge").onclick = acknowledge;
const drop = document.getElementById("drop");
drop.ondragover = (event) => { event.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (event) => { event.preventDefault(); drop.classList.remove("over"); showPhotos(event.dataTransfer.files); };

pollEvents();
pollDoors();
fetch("/api/health")
  .then((response) => response.json())
  .then((health) => {
    document.getElementById("health").textContent = `model ${health.model}, threshold ${health.threshold.toFixed(3)}`;
  })
  .catch(() => {
    const health = document.getElementById("health");
    health.textContent = NO_ANSWER;
    health.classList.add("error");
  });
