/*
 * Page: the drawing pad, classification requests to worker.js and the result view.
 *
 * Stable hooks for tests (keep them when restyling):
 *   #canvas         drawing surface, drawn with Pointer Events. When focused: arrow keys move the pen
 *                   (Shift moves 4 times further), Space puts the pen down or lifts it, Enter classifies,
 *                   Escape or Delete clears. Ctrl+Z or Cmd+Z undoes the last stroke anywhere on the page.
 *   #pad            wrapper of #canvas; data-pen is "hidden", "up" or "down" for the keyboard pen cursor
 *   #clear, #undo   buttons
 *   #photo          file input; the chosen file is sent to the worker as "classify-image"
 *   #model-select   <select> filled from models/index.json; option values are model names
 *   #result-label   the top digit as text, empty when no result is shown
 *   #status         loading, ready or failure text; data-state is "loading", "ready" or "failed"
 *   #message        error text for people, empty when there is none. data-code is the worker's error code,
 *                   or "photo_too_large", "photo_unreadable" or "model_load_failed" from the page itself.
 *   #probabilities  ten <li>, each with data-digit "0".."9" and data-probability (a decimal number, "0" when empty)
 *   #seen           28x28 canvas showing the image the network saw, blank when no result is shown
 *   #timing         classification time in ms with the model name and version, empty when no result is shown
 *   #announcer      aria-live="polite" text for screen readers, for example "Recognised 7, 96 percent"
 *   body[data-busy]       "true" while one of the page's own classifications is in flight, else "false"
 *   body[data-result-id]  integer, incremented each time a result, an error or the empty state is displayed
 *   window.digitsWorker.classifyRGBA(width, height, rgba)
 *       Sends exact pixels (ArrayBuffer, typed array or array of width*height*4 RGBA bytes) to the same worker.
 *       Resolves to the worker's {type: "result", id, label, probabilities, image, ms}. Rejects with an Error
 *       whose .code is the worker's error code (for example "empty_drawing") and whose message is for people.
 *       It changes nothing on the page.
 */
"use strict";

// The worker gets a small fixed-size copy of the drawing so that Pyodide has little to preprocess.
const NETWORK_INPUT_SIDE = 140;
// MNIST strokes are about 2-3 px wide in the 20 px box that contains the digit, so about 1/14 of the canvas.
const BRUSH_FRACTION = 1 / 14;
const INK = "#000";
const CLASSIFY_DELAY_MS = 120;
// One arrow key press moves the keyboard pen by about one pixel of the 28x28 image.
const PEN_STEP_FRACTION = 1 / 28;
const PEN_FAST_STEP_FACTOR = 4;
const MAX_PHOTO_BYTES = 20 * 1024 * 1024;

const elements = {
  body: document.body,
  pad: document.getElementById("pad"),
  canvas: document.getElementById("canvas"),
  penCursor: document.getElementById("pen-cursor"),
  undo: document.getElementById("undo"),
  clear: document.getElementById("clear"),
  photo: document.getElementById("photo"),
  modelSelect: document.getElementById("model-select"),
  status: document.getElementById("status"),
  statusText: document.getElementById("status-text"),
  resultLabel: document.getElementById("result-label"),
  emptyHint: document.getElementById("empty-hint"),
  seen: document.getElementById("seen"),
  probabilities: document.getElementById("probabilities"),
  timing: document.getElementById("timing"),
  message: document.getElementById("message"),
  announcer: document.getElementById("announcer"),
};

// ---------------------------------------------------------------------------------------------
// Drawing pad: strokes are lists of {x, y} points in CSS pixels of the canvas as currently laid out.

const pad = {
  strokes: [],
  activeStroke: null,
  activePointerId: null,
  side: 0,
  context: elements.canvas.getContext("2d"),
};

const pen = { x: 0, y: 0, down: false, visible: false };

function brushWidth(side) {
  return side * BRUSH_FRACTION;
}

function setInkStyle(context, lineWidth) {
  context.lineWidth = lineWidth;
  context.lineCap = "round";
  context.lineJoin = "round";
  context.strokeStyle = INK;
  context.fillStyle = INK;
}

function traceStroke(context, points, lineWidth) {
  setInkStyle(context, lineWidth);
  if (points.length === 1) {
    context.beginPath();
    context.arc(points[0].x, points[0].y, lineWidth / 2, 0, 2 * Math.PI);
    context.fill();
    return;
  }
  context.beginPath();
  context.moveTo(points[0].x, points[0].y);
  for (const point of points.slice(1)) {
    context.lineTo(point.x, point.y);
  }
  context.stroke();
}

function redrawPad() {
  const context = pad.context;
  const scale = elements.canvas.width / pad.side;
  context.setTransform(1, 0, 0, 1, 0, 0);
  context.clearRect(0, 0, elements.canvas.width, elements.canvas.height);
  context.setTransform(scale, 0, 0, scale, 0, 0);
  for (const stroke of pad.strokes) {
    traceStroke(context, stroke, brushWidth(pad.side));
  }
}

function scaleStrokes(factor) {
  for (const stroke of pad.strokes) {
    for (const point of stroke) {
      point.x *= factor;
      point.y *= factor;
    }
  }
  pen.x *= factor;
  pen.y *= factor;
}

// Keeps the backing store at device resolution so lines stay crisp on high-DPI screens.
function fitCanvasToLayout() {
  const side = elements.canvas.clientWidth;
  if (side === 0) {
    return;
  }
  if (pad.side === 0) {
    pen.x = side / 2;
    pen.y = side / 2;
  } else if (side !== pad.side) {
    scaleStrokes(side / pad.side);
  }
  pad.side = side;
  const backingSide = Math.round(side * (window.devicePixelRatio || 1));
  if (elements.canvas.width !== backingSide) {
    elements.canvas.width = backingSide;
    elements.canvas.height = backingSide;
  }
  redrawPad();
  showPenCursor();
}

function startStroke(point) {
  const stroke = [point];
  pad.strokes.push(stroke);
  pad.activeStroke = stroke;
  traceStroke(pad.context, stroke, brushWidth(pad.side));
}

function extendStroke(points) {
  const stroke = pad.activeStroke;
  const previous = stroke[stroke.length - 1];
  const added = [];
  let last = previous;
  for (const point of points) {
    if (point.x !== last.x || point.y !== last.y) {
      added.push(point);
      last = point;
    }
  }
  if (added.length === 0) {
    return false;
  }
  stroke.push(...added);
  // Only the new segment is drawn. Round caps make it join the earlier ones without a seam.
  traceStroke(pad.context, [previous, ...added], brushWidth(pad.side));
  return true;
}

function finishStroke() {
  pad.activeStroke = null;
  pad.activePointerId = null;
  pen.down = false;
  showPenCursor();
}

function clampToPad(value) {
  return Math.min(Math.max(value, 0), pad.side);
}

function pointFromEvent(event) {
  const box = elements.canvas.getBoundingClientRect();
  const factor = pad.side / box.width;
  return {
    x: clampToPad((event.clientX - box.left) * factor),
    y: clampToPad((event.clientY - box.top) * factor),
  };
}

function coalescedEvents(event) {
  if (typeof event.getCoalescedEvents === "function") {
    const events = event.getCoalescedEvents();
    if (events.length > 0) {
      return events;
    }
  }
  return [event];
}

function onPointerDown(event) {
  // One stroke at a time: a second finger on the pad is ignored.
  if (pad.activePointerId !== null) {
    return;
  }
  if (event.pointerType === "mouse" && event.button !== 0) {
    return;
  }
  if (pen.down) {
    finishStroke();
  }
  pen.visible = false;
  showPenCursor();
  elements.canvas.setPointerCapture(event.pointerId);
  pad.activePointerId = event.pointerId;
  startStroke(pointFromEvent(event));
  onDrawingChanged();
  scheduleDrawingClassification();
}

function onPointerMove(event) {
  if (event.pointerId !== pad.activePointerId) {
    return;
  }
  const points = coalescedEvents(event).map(pointFromEvent);
  if (extendStroke(points)) {
    scheduleDrawingClassification();
  }
}

function onPointerEnd(event) {
  if (event.pointerId !== pad.activePointerId) {
    return;
  }
  finishStroke();
  requestDrawingClassification();
}

// ---------------------------------------------------------------------------------------------
// Keyboard pen: a visible cursor moved with the arrow keys, drawing while it is down.

function showPenCursor() {
  let state = "hidden";
  if (pen.visible) {
    state = pen.down ? "down" : "up";
  }
  elements.pad.dataset.pen = state;
  const size = brushWidth(pad.side);
  const cursor = elements.penCursor;
  cursor.style.width = `${size}px`;
  cursor.style.height = `${size}px`;
  cursor.style.transform = `translate(${pen.x - size / 2}px, ${pen.y - size / 2}px)`;
}

function movePen(dx, dy, fast) {
  const step = pad.side * PEN_STEP_FRACTION * (fast ? PEN_FAST_STEP_FACTOR : 1);
  pen.x = clampToPad(pen.x + dx * step);
  pen.y = clampToPad(pen.y + dy * step);
  pen.visible = true;
  if (pen.down && pad.activeStroke && extendStroke([{ x: pen.x, y: pen.y }])) {
    scheduleDrawingClassification();
  }
  showPenCursor();
}

function togglePen() {
  pen.visible = true;
  if (pen.down) {
    finishStroke();
    requestDrawingClassification();
    return;
  }
  if (pad.activeStroke) {
    finishStroke();
  }
  pen.down = true;
  startStroke({ x: pen.x, y: pen.y });
  onDrawingChanged();
  showPenCursor();
  scheduleDrawingClassification();
}

const PEN_MOVES = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
};

function onCanvasKeyDown(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) {
    return;
  }
  if (event.key in PEN_MOVES) {
    const [dx, dy] = PEN_MOVES[event.key];
    movePen(dx, dy, event.shiftKey);
  } else if (event.key === " ") {
    togglePen();
  } else if (event.key === "Enter") {
    requestDrawingClassification();
  } else if (event.key === "Escape" || event.key === "Delete") {
    clearDrawing();
  } else {
    return;
  }
  event.preventDefault();
}

function onDocumentKeyDown(event) {
  const isUndo = (event.ctrlKey || event.metaKey) && !event.shiftKey && !event.altKey
    && event.key.toLowerCase() === "z";
  if (isUndo) {
    event.preventDefault();
    undoStroke();
  }
}

function onCanvasFocus() {
  // Focus from Tab shows the keyboard pen, but focus from a click or touch does not.
  if (elements.canvas.matches(":focus-visible")) {
    pen.visible = true;
    showPenCursor();
  }
}

function onCanvasBlur() {
  if (pen.down) {
    finishStroke();
    requestDrawingClassification();
  }
  pen.visible = false;
  showPenCursor();
}

// ---------------------------------------------------------------------------------------------
// Undo and clear.

let lastSource = { kind: "drawing" };

function onDrawingChanged() {
  lastSource = { kind: "drawing" };
}

function undoStroke() {
  if (pad.activeStroke) {
    finishStroke();
  }
  if (pad.strokes.length === 0) {
    return;
  }
  pad.strokes.pop();
  redrawPad();
  onDrawingChanged();
  requestDrawingClassification();
}

function clearDrawing() {
  if (pad.activeStroke) {
    finishStroke();
  }
  pad.strokes = [];
  redrawPad();
  onDrawingChanged();
  requestDrawingClassification();
}

// Renders the strokes into a NETWORK_INPUT_SIDE square with the same relative brush width.
function renderForNetwork() {
  const canvas = document.createElement("canvas");
  canvas.width = NETWORK_INPUT_SIDE;
  canvas.height = NETWORK_INPUT_SIDE;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const scale = NETWORK_INPUT_SIDE / pad.side;
  context.setTransform(scale, 0, 0, scale, 0, 0);
  for (const stroke of pad.strokes) {
    traceStroke(context, stroke, brushWidth(pad.side));
  }
  return context.getImageData(0, 0, NETWORK_INPUT_SIDE, NETWORK_INPUT_SIDE).data.buffer;
}

// ---------------------------------------------------------------------------------------------
// Classification queue: at most one request in flight and one pending. A pending drawing is
// rendered when it is sent, so it is always the newest drawing.

const classifier = {
  nextId: 1,
  inFlight: null,
  pending: null,
  delayTimer: 0,
  // Incremented whenever the drawing becomes empty, so that a late result for an older
  // drawing does not replace the empty state.
  emptyEpoch: 0,
  testRequests: new Map(),
};

function scheduleDrawingClassification() {
  clearTimeout(classifier.delayTimer);
  classifier.delayTimer = setTimeout(requestDrawingClassification, CLASSIFY_DELAY_MS);
}

function requestDrawingClassification() {
  clearTimeout(classifier.delayTimer);
  if (pad.strokes.length === 0) {
    classifier.pending = null;
    classifier.emptyEpoch += 1;
    showEmptyResult();
    return;
  }
  submitJob({ kind: "drawing" });
}

function submitJob(job) {
  classifier.pending = job;
  sendPendingJob();
}

function sendPendingJob() {
  const job = classifier.pending;
  if (!connection.ready || classifier.inFlight || !job) {
    return;
  }
  classifier.pending = null;
  if (job.kind === "drawing" && pad.strokes.length === 0) {
    return;
  }
  const id = classifier.nextId++;
  if (job.kind === "drawing") {
    const rgba = renderForNetwork();
    const message = { type: "classify", id, width: NETWORK_INPUT_SIDE, height: NETWORK_INPUT_SIDE, rgba };
    connection.worker.postMessage(message, [rgba]);
  } else {
    const bytes = job.bytes.slice(0);
    connection.worker.postMessage({ type: "classify-image", id, bytes }, [bytes]);
  }
  classifier.inFlight = { id, job, epoch: classifier.emptyEpoch };
  setBusy(true);
}

function onClassificationResponse(response) {
  const testRequest = classifier.testRequests.get(response.id);
  if (testRequest) {
    classifier.testRequests.delete(response.id);
    settleTestRequest(testRequest, response);
    return;
  }
  const request = classifier.inFlight;
  if (!request || request.id !== response.id) {
    return;
  }
  classifier.inFlight = null;
  if (request.epoch === classifier.emptyEpoch) {
    if (response.type === "result") {
      showResult(response, request.job);
    } else {
      showError(response.message, response.code);
    }
  }
  sendPendingJob();
  setBusy(classifier.inFlight !== null);
}

function abandonRequests(reason) {
  classifier.inFlight = null;
  classifier.pending = null;
  setBusy(false);
  for (const request of classifier.testRequests.values()) {
    request.reject(makeWorkerError("worker_failed", reason));
  }
  classifier.testRequests.clear();
}

function setBusy(busy) {
  elements.body.dataset.busy = busy ? "true" : "false";
}

// ---------------------------------------------------------------------------------------------
// Result view.

function createProbabilityBars() {
  for (let digit = 0; digit < 10; digit++) {
    const item = document.createElement("li");
    item.dataset.digit = String(digit);
    item.dataset.probability = "0";
    const name = document.createElement("span");
    name.className = "bar-digit";
    name.textContent = String(digit);
    const track = document.createElement("span");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    track.append(fill);
    const percent = document.createElement("span");
    percent.className = "bar-percent";
    percent.textContent = formatPercent(0);
    item.append(name, track, percent);
    elements.probabilities.append(item);
  }
}

function formatPercent(probability) {
  return `${(probability * 100).toFixed(1)} %`;
}

function updateProbabilityBars(probabilities, topLabel) {
  for (const item of elements.probabilities.children) {
    const digit = Number(item.dataset.digit);
    const probability = probabilities ? probabilities[digit] : 0;
    item.dataset.probability = String(probability);
    item.classList.toggle("top", digit === topLabel);
    item.querySelector(".bar-fill").style.width = `${(probability * 100).toFixed(2)}%`;
    item.querySelector(".bar-percent").textContent = formatPercent(probability);
  }
}

// The network's input has ink = 1. It is shown dark on light, like the drawing.
function drawSeenImage(image) {
  const context = elements.seen.getContext("2d");
  const pixels = context.createImageData(28, 28);
  for (let index = 0; index < 28 * 28; index++) {
    const ink = image ? image[index] : 0;
    const shade = Math.round(255 * (1 - Math.min(Math.max(ink, 0), 1)));
    pixels.data[4 * index] = shade;
    pixels.data[4 * index + 1] = shade;
    pixels.data[4 * index + 2] = shade;
    pixels.data[4 * index + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
}

function bumpResultId() {
  elements.body.dataset.resultId = String(Number(elements.body.dataset.resultId || "0") + 1);
}

function clearMessage() {
  elements.message.textContent = "";
  delete elements.message.dataset.code;
}

function announce(text) {
  elements.announcer.textContent = text;
}

function describeModel() {
  const model = connection.model;
  if (!model) {
    return "";
  }
  return model.version ? `model ${model.name}, version ${model.version}` : `model ${model.name}`;
}

function showResult(result, job) {
  const probability = result.probabilities[result.label];
  elements.resultLabel.textContent = String(result.label);
  elements.emptyHint.hidden = true;
  updateProbabilityBars(result.probabilities, result.label);
  drawSeenImage(result.image);
  const source = job.kind === "photo" ? `Photo “${job.name}”: ` : "";
  elements.timing.textContent = `${source}${Math.round(result.ms)} ms with ${describeModel()}`;
  clearMessage();
  announce(`Recognised ${result.label}, ${Math.round(probability * 100)} percent`);
  if (connection.ready) {
    setStatus("ready", readyText());
  }
  bumpResultId();
}

function blankResult() {
  elements.resultLabel.textContent = "";
  updateProbabilityBars(null, null);
  drawSeenImage(null);
  elements.timing.textContent = "";
}

function showEmptyResult() {
  blankResult();
  elements.emptyHint.hidden = false;
  clearMessage();
  announce("");
  bumpResultId();
}

// The digits package starts its messages in lower case so that they can follow a prefix.
// Shown on their own, they start with a capital letter.
function asSentence(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function showError(message, code) {
  blankResult();
  elements.emptyHint.hidden = true;
  elements.message.textContent = asSentence(message);
  if (code) {
    elements.message.dataset.code = code;
  }
  announce(asSentence(message));
  if (connection.ready) {
    setStatus("ready", readyText());
  }
  bumpResultId();
}

// ---------------------------------------------------------------------------------------------
// Status line and the connection to worker.js.

const connection = {
  worker: null,
  ready: false,
  started: false,
  model: null,
  // Option values of #model-select: the model the worker has loaded and the one it is loading.
  // The select is disabled while a model loads, so at most one load-model request is outstanding.
  loadedOption: null,
  requestedOption: null,
};

function setStatus(state, text) {
  elements.status.dataset.state = state;
  elements.statusText.textContent = text;
}

function readyText() {
  return `Ready: ${describeModel()}`;
}

function failStartup(text) {
  connection.ready = false;
  setStatus("failed", text);
  elements.modelSelect.disabled = true;
  abandonRequests(text);
}

function onWorkerReady(model) {
  connection.ready = true;
  connection.started = true;
  connection.model = model;
  if (connection.requestedOption !== null) {
    connection.loadedOption = connection.requestedOption;
    connection.requestedOption = null;
  }
  setStatus("ready", readyText());
  elements.modelSelect.disabled = elements.modelSelect.options.length === 0;
  rerunLastSource();
}

function rerunLastSource() {
  if (lastSource.kind === "photo") {
    submitJob(lastSource);
  } else if (pad.strokes.length > 0) {
    submitJob({ kind: "drawing" });
  } else {
    sendPendingJob();
  }
}

function onWorkerFailed(text) {
  connection.requestedOption = null;
  if (!connection.started) {
    failStartup(text);
    return;
  }
  // A model switch failed. The worker keeps the previous model, so the page stays usable.
  connection.ready = true;
  setStatus("ready", readyText());
  elements.modelSelect.disabled = false;
  selectModelOption(connection.loadedOption);
  showError(text, "model_load_failed");
  sendPendingJob();
}

function onWorkerMessage(event) {
  const message = event.data;
  switch (message.type) {
    case "progress":
      setStatus(connection.ready ? "ready" : "loading", message.message);
      break;
    case "ready":
      onWorkerReady(message.model);
      break;
    case "failed":
      onWorkerFailed(message.message);
      break;
    case "result":
    case "error":
      onClassificationResponse(message);
      break;
    default:
      console.warn("app.js: ignored worker message of unknown type", message);
  }
}

function startWorker() {
  if (typeof WebAssembly !== "object") {
    failStartup("This browser cannot run WebAssembly, which the network needs. "
      + "Use a current Firefox, Chrome, Edge or Safari with WebAssembly enabled.");
    return;
  }
  if (typeof Worker !== "function") {
    failStartup("This browser does not support Web Workers, which the network runs in.");
    return;
  }
  try {
    connection.worker = new Worker("worker.js");
  } catch (error) {
    failStartup(`The worker script (worker.js) could not be started: ${error.message}`);
    return;
  }
  connection.worker.addEventListener("message", onWorkerMessage);
  connection.worker.addEventListener("error", (event) => {
    event.preventDefault();
    const detail = event.message ? `: ${event.message}` : ". It could not be downloaded or has a syntax error.";
    failStartup(`The worker script (worker.js) stopped${detail}`);
    connection.worker.terminate();
  });
}

// ---------------------------------------------------------------------------------------------
// Models.

function selectModelOption(name) {
  const option = [...elements.modelSelect.options].find((candidate) => candidate.value === name);
  if (option) {
    elements.modelSelect.value = name;
  }
}

function describeModelOption(entry) {
  if (typeof entry.test_accuracy !== "number") {
    return entry.name;
  }
  return `${entry.name} (${(entry.test_accuracy * 100).toFixed(2)} % test accuracy)`;
}

async function fillModelSelect() {
  let index;
  try {
    const response = await fetch("models/index.json");
    if (!response.ok) {
      throw new Error(`HTTP status ${response.status}`);
    }
    index = await response.json();
  } catch (error) {
    // The worker reads the same file and reports the failure in the status line.
    console.error("app.js: models/index.json could not be loaded", error);
    return;
  }
  for (const entry of index.models || []) {
    const option = document.createElement("option");
    option.value = entry.name;
    option.textContent = describeModelOption(entry);
    elements.modelSelect.append(option);
  }
  // The worker loads the default model by itself at start-up.
  if (connection.loadedOption === null) {
    connection.loadedOption = index.default;
  }
  selectModelOption(connection.loadedOption);
  elements.modelSelect.disabled = !connection.ready || elements.modelSelect.options.length === 0;
}

function onModelChosen() {
  const name = elements.modelSelect.value;
  if (!connection.worker || !connection.started || name === connection.loadedOption) {
    return;
  }
  connection.ready = false;
  connection.requestedOption = name;
  elements.modelSelect.disabled = true;
  setStatus("loading", `Loading model ${name}…`);
  connection.worker.postMessage({ type: "load-model", name });
}

// ---------------------------------------------------------------------------------------------
// Photo upload.

async function onPhotoChosen() {
  const file = elements.photo.files[0];
  elements.photo.value = "";
  if (!file) {
    return;
  }
  if (file.size > MAX_PHOTO_BYTES) {
    const megabytes = (file.size / 1024 / 1024).toFixed(1);
    showError(`The photo “${file.name}” is ${megabytes} MB. Files up to ${MAX_PHOTO_BYTES / 1024 / 1024} MB are accepted.`,
      "photo_too_large");
    return;
  }
  let bytes;
  try {
    bytes = await file.arrayBuffer();
  } catch (error) {
    showError(`The photo “${file.name}” could not be read: ${error.message}`, "photo_unreadable");
    return;
  }
  lastSource = { kind: "photo", bytes, name: file.name };
  submitJob(lastSource);
}

// ---------------------------------------------------------------------------------------------
// Test hook: exact pixels to the same worker.

function makeWorkerError(code, message) {
  const error = new Error(message);
  error.code = code;
  return error;
}

function settleTestRequest(request, response) {
  if (response.type === "result") {
    request.resolve(response);
  } else {
    request.reject(makeWorkerError(response.code, response.message));
  }
}

function copyToArrayBuffer(rgba) {
  if (rgba instanceof ArrayBuffer) {
    return rgba.slice(0);
  }
  if (ArrayBuffer.isView(rgba)) {
    return new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength).slice().buffer;
  }
  return Uint8Array.from(rgba).buffer;
}

window.digitsWorker = {
  classifyRGBA(width, height, rgba) {
    return new Promise((resolve, reject) => {
      if (!connection.worker || (elements.status.dataset.state === "failed" && !connection.started)) {
        reject(makeWorkerError("worker_failed", elements.statusText.textContent));
        return;
      }
      const buffer = copyToArrayBuffer(rgba);
      const id = classifier.nextId++;
      classifier.testRequests.set(id, { resolve, reject });
      connection.worker.postMessage({ type: "classify", id, width, height, rgba: buffer }, [buffer]);
    });
  },
};

// ---------------------------------------------------------------------------------------------
// Start-up.

function connectControls() {
  const canvas = elements.canvas;
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerEnd);
  canvas.addEventListener("pointercancel", onPointerEnd);
  canvas.addEventListener("lostpointercapture", onPointerEnd);
  canvas.addEventListener("keydown", onCanvasKeyDown);
  canvas.addEventListener("focus", onCanvasFocus);
  canvas.addEventListener("blur", onCanvasBlur);
  document.addEventListener("keydown", onDocumentKeyDown);
  elements.undo.addEventListener("click", undoStroke);
  elements.clear.addEventListener("click", clearDrawing);
  elements.photo.addEventListener("change", onPhotoChosen);
  elements.modelSelect.addEventListener("change", onModelChosen);
  new ResizeObserver(fitCanvasToLayout).observe(canvas);
  // A zoom change alters devicePixelRatio without resizing the canvas in CSS pixels.
  window.addEventListener("resize", fitCanvasToLayout);
}

createProbabilityBars();
drawSeenImage(null);
connectControls();
fitCanvasToLayout();
startWorker();
fillModelSelect();
