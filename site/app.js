/*
 * Page: the drawing pad, classification requests to worker.js or to the HTTP API (api.js), and the result view.
 *
 * The worker classifies unless the person ticks #use-server, or the worker cannot start (no WebAssembly, a
 * failed download, ...) or is not ready after WORKER_READY_TIMEOUT_MS. Then the API classifies, until the
 * worker is ready or the box is cleared. Either way, at most one classification is in flight.
 *
 * Stable hooks for tests (keep them when restyling):
 *   #canvas         drawing surface, drawn with Pointer Events, one pointer at a time. A pen replaces a touch
 *                   stroke in progress, which is most likely a palm resting on a tablet. When focused: arrow keys move the pen
 *                   (Shift moves 4 times further), Space puts the pen down or lifts it, Enter classifies,
 *                   Escape or Delete clears. Ctrl+Z or Cmd+Z undoes the last stroke anywhere on the page.
 *   #pad            wrapper of #canvas; data-pen is "hidden", "up" or "down" for the keyboard pen cursor
 *   #clear, #undo   buttons
 *   #photo          file input; the chosen file is sent to the worker as "classify-image", or to the API
 *   #model-select   <select> filled from models/index.json; option values are model names
 *   #model-report   link to the selected model's report page; hidden when the model ships none
 *   #result-label   the top digit as text, empty when no result is shown
 *   #status         loading, ready or failure text; data-state is "loading", "ready" or "failed", and
 *                   data-source is "browser" or "server", the path that classifies now
 *   #use-server     checkbox "Classify on the server"; ticked and disabled while the worker cannot classify
 *   #fallback-note  why the server classifies although the box was not ticked; hidden otherwise
 *   #message        error text for people, empty when there is none. data-code is the worker's or the API's
 *                   error code, "server_timeout", "server_unreachable" or "server_failed" from api.js, or
 *                   "photo_too_large", "photo_unreadable", "model_load_failed" or "worker_timeout" from the page itself.
 *   #probabilities  ten <li>, each with data-digit "0".."9" and data-probability (a decimal number, "0" when empty)
 *   #seen           28x28 canvas showing the image the network saw, blank when no result is shown
 *   #timing         classification time in ms with the model name and version, empty when no result is shown
 *   #result-source  beside #timing: the path that classified; data-source is "browser" or "server", absent when
 *                   no result is shown
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

// build.py sets this to the name of worker.js in dist/, which carries a content hash.
const WORKER_SCRIPT = "worker.js";

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
// After this long without a network loaded in the browser, the server classifies until the worker is
// ready. bench/inference.py measured 3-4 s from navigation to ready on a 2-core x86_64 machine, so this
// leaves room for slower devices.
const WORKER_READY_TIMEOUT_MS = 15_000;
const WORKER_REQUEST_TIMEOUT_MS = 30_000;

const elements = {
  body: document.body,
  pad: document.getElementById("pad"),
  canvas: document.getElementById("canvas"),
  penCursor: document.getElementById("pen-cursor"),
  undo: document.getElementById("undo"),
  clear: document.getElementById("clear"),
  photo: document.getElementById("photo"),
  modelSelect: document.getElementById("model-select"),
  modelReport: document.getElementById("model-report"),
  useServer: document.getElementById("use-server"),
  status: document.getElementById("status"),
  statusText: document.getElementById("status-text"),
  resultLabel: document.getElementById("result-label"),
  emptyHint: document.getElementById("empty-hint"),
  seen: document.getElementById("seen"),
  probabilities: document.getElementById("probabilities"),
  timing: document.getElementById("timing"),
  resultSource: document.getElementById("result-source"),
  fallbackNote: document.getElementById("fallback-note"),
  message: document.getElementById("message"),
  announcer: document.getElementById("announcer"),
};

// ---------------------------------------------------------------------------------------------
// Drawing pad: strokes are lists of {x, y} points in CSS pixels of the canvas as currently laid out.

const pad = {
  strokes: [],
  activeStroke: null,
  activePointerId: null,
  // pointerType of the active pointer: "mouse", "pen" or "touch", or null when no pointer draws.
  activePointerType: null,
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

// The query that watchDevicePixelRatio listens to, referenced here so that it lives as long as the page.
let pixelRatioQuery = null;

// Moving the window to a screen of another pixel density changes devicePixelRatio without a resize event.
// A media query for the current ratio stops matching then, so each change arms a query for the new ratio.
function watchDevicePixelRatio() {
  pixelRatioQuery = window.matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`);
  pixelRatioQuery.addEventListener("change", () => {
    fitCanvasToLayout();
    watchDevicePixelRatio();
  }, { once: true });
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
  pad.activePointerType = null;
  pen.down = false;
  showPenCursor();
}

// Removes the stroke in progress without an undo step or a classification of its own, as if it had never been drawn.
// NOTE: a touch that rested longer than CLASSIFY_DELAY_MS before the pen came has been classified like a
// finger stroke already, and that result shows until the pen's stroke is classified.
function dropActiveStroke() {
  const dropped = pad.activeStroke;
  pad.strokes = pad.strokes.filter((stroke) => stroke !== dropped);
  clearTimeout(classifier.delayTimer);
  finishStroke();
  redrawPad();
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

// A palm resting on a tablet's screen is a touch pointer that often lands before the pen.
function penReplacesTouch(event) {
  return event.pointerType === "pen" && pad.activePointerType === "touch";
}

function onPointerDown(event) {
  if (event.pointerType === "mouse" && event.button !== 0) {
    return;
  }
  // One stroke at a time: a second finger on the pad is ignored, and so is any touch while a pen draws.
  // But a pen replaces a touch stroke in progress, which is most likely the palm of the hand holding the pen.
  if (pad.activePointerId !== null) {
    if (!penReplacesTouch(event)) {
      return;
    }
    dropActiveStroke();
  }
  if (pen.down) {
    finishStroke();
  }
  pen.visible = false;
  showPenCursor();
  elements.canvas.setPointerCapture(event.pointerId);
  pad.activePointerId = event.pointerId;
  pad.activePointerType = event.pointerType;
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
    // A held Space key repeats, so only the first press moves the pen up or down.
    if (!event.repeat) {
      togglePen();
    }
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
  const source = usesServer() ? "server" : "browser";
  if (classifier.inFlight || !job || (source === "browser" && !connection.ready)) {
    return;
  }
  classifier.pending = null;
  if (job.kind === "drawing" && pad.strokes.length === 0) {
    return;
  }
  const id = classifier.nextId++;
  classifier.inFlight = { id, job, epoch: classifier.emptyEpoch, source };
  setBusy(true);
  if (source === "server") {
    sendToServer(id, job);
  } else {
    sendToWorker(id, job);
  }
}

function sendToWorker(id, job) {
  setTimeout(() => onWorkerRequestTimeout(id), WORKER_REQUEST_TIMEOUT_MS);
  if (job.kind === "drawing") {
    const rgba = renderForNetwork();
    const message = { type: "classify", id, width: NETWORK_INPUT_SIDE, height: NETWORK_INPUT_SIDE, rgba };
    connection.worker.postMessage(message, [rgba]);
  } else {
    const bytes = job.bytes.slice(0);
    connection.worker.postMessage({ type: "classify-image", id, bytes }, [bytes]);
  }
}

// Reports the outcome with the same {type: "result" | "error", id, ...} messages the worker posts, plus the
// server's model.
async function sendToServer(id, job) {
  const model = elements.modelSelect.value || null;
  // The drawing is rendered now, before any await, so that it is the drawing of this request.
  const rgba = job.kind === "drawing" ? renderForNetwork() : null;
  let response;
  try {
    if (!window.digitsApi) {
      throw makeWorkerError("server_failed", "the page's API script (api.js) could not be loaded");
    }
    const result = rgba
      ? await window.digitsApi.classifyCanvas(NETWORK_INPUT_SIDE, NETWORK_INPUT_SIDE, rgba, model)
      : await window.digitsApi.classifyPhoto(new Blob([job.bytes]), model);
    response = { type: "result", id, ...result };
    onServerAnswered(null);
  } catch (error) {
    const code = error.code || "server_failed";
    const serverFault = SERVER_FAULT_CODES.includes(code) || error.status >= 500;
    const message = serverFault ? `Classifying on the server failed: ${error.message}` : error.message;
    response = { type: "error", id, code, message };
    onServerAnswered(serverFault ? error.message : null);
  }
  onClassificationResponse(response);
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
      showResult(response, request.job, request.source);
    } else {
      showError(response.message, response.code);
    }
  }
  sendPendingJob();
  setBusy(classifier.inFlight !== null);
}

// A reply that comes later is ignored, because its id is no longer in flight.
function onWorkerRequestTimeout(id) {
  const request = classifier.inFlight;
  if (!request || request.id !== id || request.source !== "browser") {
    return;
  }
  onClassificationResponse({
    type: "error",
    id,
    code: "worker_timeout",
    message: `Classifying in the browser timed out after ${WORKER_REQUEST_TIMEOUT_MS / 1000} s. Try again, or tick "Classify on the server".`,
  });
}

// The pending request stays, because the server may take it.
function abandonWorkerRequests(reason) {
  if (classifier.inFlight && classifier.inFlight.source === "browser") {
    classifier.inFlight = null;
    setBusy(false);
  }
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

function describeModel(model) {
  if (!model) {
    return "";
  }
  return model.version ? `model ${model.name}, version ${model.version}` : `model ${model.name}`;
}

const SOURCE_TEXT = { browser: "in your browser (Pyodide)", server: "on the server" };

function describeTiming(result, source) {
  if (source === "server") {
    // The person waits for the round trip. The server's own figure shows how much of it is computing.
    const model = describeModel(result.model);
    return `${Math.round(result.roundTripMs)} ms (${Math.round(result.ms)} ms computing) with ${model}`;
  }
  return `${Math.round(result.ms)} ms with ${describeModel(connection.model)}`;
}

function showResultSource(source) {
  elements.resultSource.textContent = source ? SOURCE_TEXT[source] : "";
  if (source) {
    elements.resultSource.dataset.source = source;
  } else {
    delete elements.resultSource.dataset.source;
  }
}

function showResult(result, job, source) {
  const probability = result.probabilities[result.label];
  elements.resultLabel.textContent = String(result.label);
  elements.emptyHint.hidden = true;
  updateProbabilityBars(result.probabilities, result.label);
  drawSeenImage(result.image);
  const photo = job.kind === "photo" ? `Photo “${job.name}”: ` : "";
  elements.timing.textContent = `${photo}${describeTiming(result, source)}`;
  showResultSource(source);
  clearMessage();
  announce(`Recognised ${result.label}, ${Math.round(probability * 100)} percent`);
  renderStatus();
  bumpResultId();
}

function blankResult() {
  elements.resultLabel.textContent = "";
  updateProbabilityBars(null, null);
  drawSeenImage(null);
  elements.timing.textContent = "";
  showResultSource(null);
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
  renderStatus();
  bumpResultId();
}

// ---------------------------------------------------------------------------------------------
// Status line, the connection to worker.js, and the choice between the worker and the server.

const connection = {
  worker: null,
  ready: false,
  started: false,
  model: null,
  // Text of the worker's latest progress message.
  progressText: "Starting…",
  // The reason the worker cannot classify (it failed to start or stopped), or null.
  failure: null,
  // True once WORKER_READY_TIMEOUT_MS passed before the worker was ready.
  timedOut: false,
  readyTimer: 0,
  // Option values of #model-select: the model the worker has loaded and the one it is loading.
  // The select is disabled while a model loads, so at most one load-model request is outstanding.
  loadedOption: null,
  requestedOption: null,
};

// The HTTP API: "unchecked", "checking", "ok" or "failed". A classification's outcome updates it too.
const server = {
  state: "unchecked",
  problem: "",
  health: null,
  checkId: 0,
};

// The person's choice in #use-server.
let preferServer = false;

// Error codes of api.js that mean the server, not the input, is at fault.
const SERVER_FAULT_CODES = ["server_timeout", "server_unreachable", "server_failed"];

function workerUnavailable() {
  return connection.failure !== null || (connection.timedOut && !connection.started);
}

function usesServer() {
  if (preferServer || connection.failure !== null) {
    return true;
  }
  // A worker that is only slow is still the better choice when the server cannot be used.
  return workerUnavailable() && server.state !== "failed";
}

// True when the server classifies although the person did not tick #use-server.
function serverForced() {
  return usesServer() && !preferServer;
}

function setStatus(state, text) {
  elements.status.dataset.state = state;
  // Screen readers announce each write to the live region, even of the same text.
  if (elements.statusText.textContent !== text) {
    elements.statusText.textContent = text;
  }
}

function serverModel() {
  const name = elements.modelSelect.value || (server.health && server.health.default_model);
  if (!name) {
    return null;
  }
  const listed = ((server.health && server.health.models) || []).find((entry) => entry.name === name);
  return { name, version: listed ? listed.version : null };
}

// Server problems read "the server ...", so they can end a sentence.
function renderServerStatus() {
  if (server.state === "failed") {
    if (connection.failure) {
      setStatus("failed", `Recognition is unavailable. The network could not start in your browser, and ${server.problem}.`);
    } else {
      setStatus("failed", `${asSentence(server.problem)}. Clear “Classify on the server” to classify in your browser.`);
    }
  } else if (server.state === "ok") {
    const model = serverModel();
    setStatus("ready", model ? `Ready on the server: ${describeModel(model)}` : "Ready on the server");
  } else {
    setStatus("loading", "Connecting to the server…");
  }
}

function renderFallbackNote() {
  let text = "";
  if (connection.failure) {
    text = "The network could not start in your browser, so the server classifies your drawings and photos. "
      + `Details: ${connection.failure}`;
  } else if (serverForced()) {
    text = `The network is taking long to load in your browser (${connection.progressText}), `
      + "so the server classifies your drawings and photos until it is ready.";
  }
  elements.fallbackNote.textContent = text;
  elements.fallbackNote.hidden = text === "";
}

function renderServerToggle() {
  const forced = serverForced();
  elements.useServer.checked = forced || preferServer;
  elements.useServer.disabled = forced;
}

function renderStatus() {
  const source = usesServer() ? "server" : "browser";
  elements.status.dataset.source = source;
  if (source === "server") {
    renderServerStatus();
  } else if (connection.ready) {
    setStatus("ready", `Ready: ${describeModel(connection.model)}`);
  } else {
    setStatus("loading", connection.progressText);
  }
  renderFallbackNote();
  renderServerToggle();
}

function updateModelSelect() {
  const empty = elements.modelSelect.options.length === 0;
  elements.modelSelect.disabled = empty || (!usesServer() && !connection.ready);
  updateReportLink();
}

async function checkServer() {
  const checkId = ++server.checkId;
  server.state = "checking";
  renderStatus();
  let health = null;
  let problem = "";
  try {
    if (!window.digitsApi) {
      throw new Error("the page's API script (api.js) could not be loaded");
    }
    health = await window.digitsApi.health();
  } catch (error) {
    problem = error.message;
    console.warn("app.js: the server's health check failed", error);
  }
  if (checkId !== server.checkId) {
    return;
  }
  const usedServer = usesServer();
  if (health) {
    server.state = "ok";
    server.health = health;
    fillModelSelectFromServer(health);
  } else {
    server.state = "failed";
    server.problem = problem;
  }
  afterServerStateChange(usedServer);
}

// problem is the server's fault in words, or null when it responded with a result or an input error.
function onServerAnswered(problem) {
  const usedServer = usesServer();
  if (problem) {
    server.state = "failed";
    server.problem = problem;
  } else if (server.state !== "checking") {
    server.state = "ok";
  }
  afterServerStateChange(usedServer);
}

// A failing server sends requests back to a worker that is only slow.
function afterServerStateChange(usedServer) {
  if (usesServer() !== usedServer) {
    onRouteChanged();
  } else {
    renderStatus();
  }
}

// Called whenever usesServer() may have changed. The shown result is redone by the path now in use.
function onRouteChanged() {
  if (usesServer()) {
    if (server.state === "unchecked" || server.state === "failed") {
      checkServer();
    }
  } else {
    loadModelInWorker(elements.modelSelect.value);
  }
  updateModelSelect();
  renderStatus();
  rerunLastSource();
}

function onServerToggled() {
  preferServer = elements.useServer.checked;
  onRouteChanged();
}

function giveUpOnWorker(text) {
  clearTimeout(connection.readyTimer);
  connection.ready = false;
  connection.failure = text;
  console.error(`app.js: the network cannot run in this browser: ${text}`);
  abandonWorkerRequests(text);
  onRouteChanged();
}

function onWorkerSlow() {
  if (connection.started || connection.failure) {
    return;
  }
  connection.timedOut = true;
  onRouteChanged();
}

function onWorkerReady(model) {
  clearTimeout(connection.readyTimer);
  const wasUnavailable = workerUnavailable();
  connection.ready = true;
  connection.started = true;
  connection.model = model;
  if (connection.requestedOption !== null) {
    connection.loadedOption = connection.requestedOption;
    connection.requestedOption = null;
  }
  if (wasUnavailable) {
    onRouteChanged();
    return;
  }
  // A model chosen while another one loaded is loaded now.
  if (!usesServer() && elements.modelSelect.value !== connection.loadedOption) {
    loadModelInWorker(elements.modelSelect.value);
    if (connection.requestedOption !== null) {
      return;
    }
  }
  updateModelSelect();
  renderStatus();
  if (usesServer()) {
    sendPendingJob();
  } else {
    rerunLastSource();
  }
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
    giveUpOnWorker(text);
    return;
  }
  // A model switch failed. The worker keeps the previous model, so the page stays usable.
  connection.ready = true;
  selectModelOption(connection.loadedOption);
  updateModelSelect();
  showError(text, "model_load_failed");
  sendPendingJob();
}

function onWorkerProgress(text) {
  connection.progressText = text;
  if (!usesServer()) {
    setStatus(connection.ready ? "ready" : "loading", text);
  }
  renderFallbackNote();
}

function onWorkerMessage(event) {
  const message = event.data;
  switch (message.type) {
    case "progress":
      onWorkerProgress(message.message);
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
    giveUpOnWorker("This browser cannot run WebAssembly, which the network needs. "
      + "Use a current Firefox, Chrome, Edge or Safari with WebAssembly enabled.");
    return;
  }
  if (typeof Worker !== "function") {
    giveUpOnWorker("This browser does not support Web Workers, which the network runs in.");
    return;
  }
  try {
    connection.worker = new Worker(WORKER_SCRIPT);
  } catch (error) {
    giveUpOnWorker(`The worker script (${WORKER_SCRIPT}) could not be started: ${error.message}`);
    return;
  }
  connection.worker.addEventListener("message", onWorkerMessage);
  connection.worker.addEventListener("error", (event) => {
    event.preventDefault();
    const detail = event.message ? `: ${event.message}` : ". It could not be downloaded or has a syntax error.";
    connection.worker.terminate();
    giveUpOnWorker(`The worker script (${WORKER_SCRIPT}) stopped${detail}`);
  });
  connection.readyTimer = setTimeout(onWorkerSlow, WORKER_READY_TIMEOUT_MS);
}

// ---------------------------------------------------------------------------------------------
// Models.

function selectModelOption(name) {
  const option = [...elements.modelSelect.options].find((candidate) => candidate.value === name);
  if (option) {
    elements.modelSelect.value = name;
  }
}

// The build lists a model's report (train/report.py's HTML page) in models/index.json when it ships one.
function updateReportLink() {
  const option = elements.modelSelect.selectedOptions[0];
  const report = option && option.dataset.report;
  elements.modelReport.hidden = !report;
  if (report) {
    elements.modelReport.href = report;
  }
}

function describeModelOption(entry) {
  if (typeof entry.test_accuracy !== "number") {
    return entry.name;
  }
  return `${entry.name} (${(entry.test_accuracy * 100).toFixed(2)} % test accuracy)`;
}

function setModelOptions(entries) {
  elements.modelSelect.replaceChildren();
  for (const entry of entries) {
    const option = document.createElement("option");
    option.value = entry.name;
    option.textContent = describeModelOption(entry);
    if (entry.report) {
      option.dataset.report = entry.report;
    }
    elements.modelSelect.append(option);
  }
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
  const chosen = elements.modelSelect.value;
  setModelOptions(index.models || []);
  // The worker loads the default model by itself at start-up.
  if (connection.loadedOption === null) {
    connection.loadedOption = index.default;
  }
  selectModelOption(usesServer() && chosen ? chosen : connection.loadedOption);
  updateModelSelect();
  renderStatus();
}

// The site's models/index.json is the list to choose from. The server's list is used instead when that
// file could not be read.
function fillModelSelectFromServer(health) {
  if (elements.modelSelect.options.length > 0 || !Array.isArray(health.models)) {
    return;
  }
  setModelOptions(health.models);
  selectModelOption(health.default_model);
  updateModelSelect();
}

function loadModelInWorker(name) {
  if (!name || !connection.started || connection.failure || name === connection.loadedOption
      || connection.requestedOption !== null) {
    return;
  }
  connection.ready = false;
  connection.requestedOption = name;
  connection.progressText = `Loading model ${name}…`;
  updateModelSelect();
  renderStatus();
  connection.worker.postMessage({ type: "load-model", name });
}

function onModelChosen() {
  updateReportLink();
  if (usesServer()) {
    // The worker loads this model when the browser classifies again.
    renderStatus();
    rerunLastSource();
    return;
  }
  loadModelInWorker(elements.modelSelect.value);
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
  // A photo replaces the drawing, so the next stroke starts on an empty canvas.
  if (pad.activeStroke) {
    finishStroke();
  }
  pad.strokes = [];
  redrawPad();
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
      if (!connection.worker || connection.failure) {
        reject(makeWorkerError("worker_failed", connection.failure || "the worker has not been started"));
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
  elements.useServer.addEventListener("change", onServerToggled);
  new ResizeObserver(fitCanvasToLayout).observe(canvas);
  // A zoom change alters devicePixelRatio without resizing the canvas in CSS pixels.
  window.addEventListener("resize", fitCanvasToLayout);
  watchDevicePixelRatio();
}

// The worker first: Pyodide's start-up is the longest wait, and the rest need not delay it.
startWorker();
createProbabilityBars();
drawSeenImage(null);
connectControls();
fitCanvasToLayout();
fillModelSelect();
