/*
 * Web Worker that runs the `digits` Python package in Pyodide, off the page's main thread.
 *
 * Messages posted to the page:
 *   {type: "progress", message}                      while starting or loading
 *   {type: "ready", model: {name, version, test_accuracy}}
 *   {type: "failed", message}                        start-up or a model switch failed
 *   {type: "result", id, label, probabilities, image, ms}
 *   {type: "error", id, code, message}               code is digits.InputError.code, "not_ready",
 *                                                    "image_decoder_unavailable" or "internal_error"
 * Messages accepted from the page:
 *   {type: "classify", id, width, height, rgba}      rgba: ArrayBuffer of width*height*4 bytes
 *   {type: "classify-image", id, bytes}              bytes: ArrayBuffer of a PNG, JPEG, ... file
 *   {type: "load-model", name}                       a name from models/index.json; the previous
 *                                                    model stays loaded if this one fails
 * Messages are handled one at a time, in the order they arrive; those that arrive during
 * start-up wait for it to finish.
 */
"use strict";

// build.py sets these to the names in dist/: digits.zip with a content hash in its name, and the
// folder named after the Pyodide version, such as "pyodide/0.27.7/".
const PACKAGE_FILE = "digits.zip";
const PYODIDE_FOLDER = "pyodide/";

let pyodideScriptError = null;
try {
  importScripts(`${PYODIDE_FOLDER}pyodide.js`);
} catch (error) {
  pyodideScriptError = error;
}

const SITE_URL = new URL("./", self.location.href);
const PYODIDE_URL = new URL(PYODIDE_FOLDER, SITE_URL).href;
const PACKAGE_URL = new URL(PACKAGE_FILE, SITE_URL);
const MODELS_URL = new URL("models/", SITE_URL);
const PACKAGE_DIR = "/home/pyodide/py";

// All real work is done by the digits package. These helpers only convert between JS and Python values.
const PYTHON_HELPERS = `
import json
import sys

sys.path.insert(0, ${JSON.stringify(PACKAGE_DIR)})
import digits

MODEL = None


def load_model(text):
    global MODEL
    try:
        model = digits.load_model(text)
    except digits.ModelFileError as error:
        return json.dumps({"ok": False, "message": str(error)})
    MODEL = model
    return json.dumps({"ok": True, "name": model.name, "version": model.version,
                       "test_accuracy": model.test_accuracy})


def classify_to_json(read_drawing):
    try:
        result = digits.classify(MODEL, read_drawing())
    except digits.InputError as error:
        return json.dumps({"ok": False, "code": error.code, "message": str(error)})
    return json.dumps({"ok": True, **result.to_dict()})


def classify_rgba(rgba, width, height):
    return classify_to_json(lambda: digits.canvas_to_array(rgba.to_bytes(), width, height))


def classify_image(data):
    return classify_to_json(lambda: digits.decode_image(data.to_bytes()))
`;

let pyodide = null;
let python = null;
let modelIndex = null;
let modelLoaded = false;
let startFailure = null;
let pillowLoading = null;

function post(message) {
  self.postMessage(message);
}

function progress(text) {
  post({ type: "progress", message: text });
}

// A Python exception's message is the whole traceback. Its last line names the exception and its message.
function describeError(error) {
  if (error && error.type && typeof error.message === "string") {
    const lines = error.message.trim().split("\n");
    return lines[lines.length - 1];
  }
  return error && error.message ? error.message : String(error);
}

function endSentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

async function runStep(description, action) {
  progress(`${description}…`);
  try {
    return await action();
  } catch (error) {
    console.error(`worker.js: ${description} failed`, error);
    throw new Error(`${description} failed: ${describeError(error)}`);
  }
}

async function fetchChecked(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`could not download ${url} (${error.message})`);
  }
  if (!response.ok) {
    throw new Error(`could not download ${url} (HTTP status ${response.status})`);
  }
  return response;
}

// NOTE: Pyodide 0.27.7 reports a failed WebAssembly instantiation (for example a missing
// pyodide.asm.wasm) only with console.warn("wasm instantiation failed!", then the error), and
// loadPyodide never settles. This turns that warning into a rejection.
function loadPyodideOrReportWasmFailure(options) {
  const originalWarn = console.warn;
  let rejectOnWasmFailure;
  const wasmFailure = new Promise((resolve, reject) => {
    rejectOnWasmFailure = reject;
  });
  let failureAnnounced = false;
  console.warn = (...args) => {
    originalWarn.apply(console, args);
    if (failureAnnounced) {
      const reason = args[0] && args[0].message ? args[0].message : String(args[0]);
      rejectOnWasmFailure(new Error(`${PYODIDE_FOLDER}pyodide.asm.wasm could not be loaded or compiled (${reason})`));
    } else if (args[0] === "wasm instantiation failed!") {
      failureAnnounced = true;
    }
  };
  return Promise.race([loadPyodide(options), wasmFailure]).finally(() => {
    console.warn = originalWarn;
  });
}

const RUNTIME_FILES = ["pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"];

// Pyodide's own errors for a missing file can be vague ("Program terminated with exit(1)"),
// so after a failure each runtime file is checked with a HEAD request.
async function listMissingRuntimeFiles() {
  const checks = RUNTIME_FILES.map(async (name) => {
    try {
      const response = await fetch(new URL(name, PYODIDE_URL), { method: "HEAD" });
      return response.ok ? null : `${PYODIDE_FOLDER}${name} (HTTP status ${response.status})`;
    } catch (error) {
      return `${PYODIDE_FOLDER}${name} (${error.message})`;
    }
  });
  return (await Promise.all(checks)).filter((problem) => problem !== null);
}

async function loadRuntime() {
  try {
    return await loadPyodideOrReportWasmFailure({ indexURL: PYODIDE_URL });
  } catch (error) {
    const missing = await listMissingRuntimeFiles();
    if (missing.length > 0) {
      console.error("worker.js: Pyodide failed", error);
      throw new Error(`could not download ${missing.join(", ")}`);
    }
    throw error;
  }
}

// Pyodide reports a wheel it could not download as "Failed to fetch", without the file name, so after a
// failure the wheel named in pyodide-lock.json is checked with a HEAD request. Returns null when it is there.
async function findMissingWheel(name) {
  try {
    const lock = await (await fetchChecked(new URL("pyodide-lock.json", PYODIDE_URL))).json();
    const fileName = lock.packages[name.toLowerCase()].file_name;
    const response = await fetch(new URL(fileName, PYODIDE_URL), { method: "HEAD" });
    return response.ok ? null : `could not download ${PYODIDE_FOLDER}${fileName} (HTTP status ${response.status})`;
  } catch (error) {
    console.error(`worker.js: the ${name} wheel could not be checked`, error);
    return null;
  }
}

async function loadPackageChecked(name) {
  const problems = [];
  await pyodide.loadPackage(name, {
    messageCallback: () => {},
    errorCallback: (text) => problems.push(text),
  });
  // loadedPackages is keyed by the name in pyodide-lock.json, which may differ in case ("Pillow").
  const loaded = Object.keys(pyodide.loadedPackages).map((key) => key.toLowerCase());
  if (!loaded.includes(name.toLowerCase())) {
    const missing = await findMissingWheel(name);
    throw new Error(missing || problems.join(" ") || `the ${name} wheel could not be installed`);
  }
}

// Started before the runtime, so that these downloads overlap Pyodide's start-up instead of following it.
// Each promise is awaited in the step that needs it, which reports its failure.
function startDownloads() {
  const packageArchive = fetchChecked(PACKAGE_URL).then((response) => response.arrayBuffer());
  const index = fetchChecked(new URL("index.json", MODELS_URL)).then((response) => response.json());
  const defaultModelText = index.then((loaded) => downloadModelText(findModelEntry(loaded, loaded.default)));
  for (const download of [packageArchive, index, defaultModelText]) {
    // Marks the rejection as handled until the step that awaits it reports it.
    download.catch(() => {});
  }
  return { packageArchive, index, defaultModelText };
}

async function start() {
  if (pyodideScriptError) {
    throw new Error(`Loading the Python runtime (Pyodide) failed: could not download ${PYODIDE_FOLDER}pyodide.js `
      + `(${describeError(pyodideScriptError)})`);
  }
  if (typeof WebAssembly !== "object") {
    throw new Error("This browser cannot run WebAssembly, which the Python runtime needs.");
  }
  const downloads = startDownloads();
  pyodide = await runStep("Loading the Python runtime (Pyodide)", loadRuntime);
  // NOTE: loadPyodide's packages option would load numpy while the runtime starts. In Pyodide 0.27.7 a
  // numpy download that fails early can then leave loadPyodide unsettled, with an uncaught
  // "_emscripten_stack_get_current is not a function", so numpy loads after the runtime, not alongside.
  await runStep("Loading numpy", () => loadPackageChecked("numpy"));
  await runStep("Loading the digits package", async () => {
    pyodide.unpackArchive(await downloads.packageArchive, "zip", { extractDir: PACKAGE_DIR });
    const namespace = pyodide.globals.get("dict")();
    pyodide.runPython(PYTHON_HELPERS, { globals: namespace });
    python = {
      loadModel: namespace.get("load_model"),
      classifyRGBA: namespace.get("classify_rgba"),
      classifyImage: namespace.get("classify_image"),
    };
    namespace.destroy();
  });
  modelIndex = await runStep("Loading the list of models", () => downloads.index);
  await loadModel(modelIndex.default, downloads.defaultModelText);
}

function findModelEntry(index, name) {
  const entry = (index.models || []).find((candidate) => candidate.name === name);
  if (!entry) {
    const known = (index.models || []).map((candidate) => candidate.name).join(", ");
    throw new Error(`Model "${name}" is not in models/index.json (available: ${known || "none"}).`);
  }
  return entry;
}

async function downloadModelText(entry) {
  return (await fetchChecked(new URL(entry.file, MODELS_URL))).text();
}

// modelText is a promise of the model file's text when its download has already started, else null.
async function loadModel(name, modelText = null) {
  const entry = findModelEntry(modelIndex, name);
  const text = await runStep(`Loading model ${name}`, () => modelText || downloadModelText(entry));
  const output = await runStep(`Reading model ${name}`, () => JSON.parse(python.loadModel(text)));
  if (!output.ok) {
    throw new Error(`Model file ${entry.file} is not valid: ${output.message}`);
  }
  modelLoaded = true;
  post({
    type: "ready",
    model: { name: output.name, version: output.version, test_accuracy: output.test_accuracy },
  });
}

async function startOrReportFailure() {
  try {
    await start();
  } catch (error) {
    startFailure = error.message;
    post({ type: "failed", message: error.message });
  }
}

async function switchModel(name) {
  if (!python) {
    post({ type: "failed", message: `Model ${name} cannot be loaded because start-up failed: ${startFailure}` });
    return;
  }
  try {
    await loadModel(name);
  } catch (error) {
    const previousModelNote = modelLoaded ? " The previous model is still in use." : "";
    post({ type: "failed", message: `${endSentence(error.message)}${previousModelNote}` });
  }
}

function ensurePillow() {
  if (!pillowLoading) {
    progress("Loading Pillow to decode the photo…");
    pillowLoading = loadPackageChecked("pillow");
    pillowLoading.catch(() => {
      pillowLoading = null;
    });
  }
  return pillowLoading;
}

function timedCall(pythonFunction, ...args) {
  const started = performance.now();
  const text = pythonFunction(...args);
  return { text, ms: performance.now() - started };
}

async function classify(id, runPython) {
  if (!modelLoaded) {
    const reason = startFailure || "start-up has not finished";
    post({ type: "error", id, code: "not_ready", message: `The network is not loaded: ${reason}` });
    return;
  }
  let output;
  let ms;
  try {
    const call = await runPython();
    output = JSON.parse(call.text);
    ms = call.ms;
  } catch (error) {
    console.error(`worker.js: request ${id} failed`, error);
    const code = error.code || "internal_error";
    post({ type: "error", id, code, message: `Classification failed: ${describeError(error)}` });
    return;
  }
  if (output.ok) {
    post({ type: "result", id, label: output.label, probabilities: output.probabilities, image: output.image, ms });
  } else {
    post({ type: "error", id, code: output.code, message: output.message });
  }
}

function classifyPixels(message) {
  return classify(message.id, async () => {
    if (!(message.rgba instanceof ArrayBuffer)) {
      throw Object.assign(new Error("the drawing must be an ArrayBuffer of width × height × 4 RGBA bytes."),
        { code: "invalid_drawing" });
    }
    return timedCall(python.classifyRGBA, new Uint8Array(message.rgba), message.width, message.height);
  });
}

function classifyImageFile(message) {
  return classify(message.id, async () => {
    if (!(message.bytes instanceof ArrayBuffer)) {
      throw Object.assign(new Error("the image must be an ArrayBuffer with the bytes of an image file."),
        { code: "invalid_image" });
    }
    try {
      await ensurePillow();
    } catch (error) {
      throw Object.assign(new Error(`Pillow, which decodes photos, could not be loaded (${error.message})`),
        { code: "image_decoder_unavailable" });
    }
    return timedCall(python.classifyImage, new Uint8Array(message.bytes));
  });
}

function handleMessage(message) {
  switch (message && message.type) {
    case "classify":
      return classifyPixels(message);
    case "classify-image":
      return classifyImageFile(message);
    case "load-model":
      return switchModel(message.name);
    default:
      console.warn("worker.js: ignored message of unknown type", message);
      return undefined;
  }
}

let queue = startOrReportFailure();
self.onmessage = (event) => {
  queue = queue
    .then(() => handleMessage(event.data))
    .catch((error) => console.error("worker.js: message handling failed", event.data, error));
};
