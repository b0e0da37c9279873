/*
 * The HTTP API fallback: classification by the same digits package on a server (py/digits/aws_lambda.py).
 *
 * app.js uses it when Pyodide cannot start in the browser, and when the person chooses
 * "Classify on the server". Its address is "api_url" in config.json, else "api/" beside the page.
 *
 *   window.digitsApi.classifyCanvas(width, height, rgba, model)  rgba: ArrayBuffer of width*height*4 bytes
 *   window.digitsApi.classifyPhoto(file, model)                  file: a File or Blob of an image file
 *       Resolve to {label, probabilities, image: 784 numbers in 0..1, ms, roundTripMs, model: {name, version}}.
 *       Reject with an Error whose .code is the API's error code, or "server_timeout", "server_unreachable"
 *       or "server_failed" from this file, whose .status is the HTTP status (0 without a response), and whose
 *       message is for people.
 *   window.digitsApi.health()   resolves to the API's {status, default_model, models: [{name, version, ...}]}
 *   window.digitsApi.baseUrl()  resolves to the API's address, ending in "/"
 * model may be null, and then the API uses its default model.
 */
"use strict";

(() => {
  const CONFIG_URL = "config.json";
  const DEFAULT_API_PATH = "api/";
  const REQUEST_TIMEOUT_MS = 10_000;
  // The API rejects request bodies over 1 MB unless DIGITS_MAX_BODY_BYTES is raised, and base64 adds a third.
  // Larger photos are decoded and shrunk in the browser, then sent as pixels.
  const MAX_PHOTO_FILE_BYTES = 500_000;
  // 384 x 384 RGBA pixels are 590 kB, 786 kB in base64. The digit is scaled to 20 pixels anyway.
  const SHRUNK_PHOTO_SIDE = 384;
  const IMAGE_SIDE = 28;

  let baseUrlPromise = null;

  // status is the HTTP status of the server's response, 0 when there was none.
  function makeApiError(code, message, status = 0) {
    const error = new Error(message);
    error.code = code;
    error.status = status;
    return error;
  }

  async function readConfiguredUrl() {
    const fallback = new URL(DEFAULT_API_PATH, document.baseURI).href;
    let config;
    try {
      const response = await fetch(CONFIG_URL, { cache: "no-cache" });
      if (!response.ok) {
        console.warn(`api.js: ${CONFIG_URL} returned HTTP status ${response.status}; using ${fallback}`);
        return fallback;
      }
      config = await response.json();
    } catch (error) {
      console.warn(`api.js: ${CONFIG_URL} could not be read (${error.message}); using ${fallback}`);
      return fallback;
    }
    if (!config || typeof config.api_url !== "string" || config.api_url === "") {
      return fallback;
    }
    let url;
    try {
      url = new URL(config.api_url, document.baseURI);
    } catch (error) {
      console.warn(`api.js: api_url ${config.api_url} in ${CONFIG_URL} is not a URL (${error.message}); using ${fallback}`);
      return fallback;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      console.warn(`api.js: api_url ${config.api_url} in ${CONFIG_URL} is not http(s); using ${fallback}`);
      return fallback;
    }
    return url.href.endsWith("/") ? url.href : `${url.href}/`;
  }

  function baseUrl() {
    if (!baseUrlPromise) {
      baseUrlPromise = readConfiguredUrl();
    }
    return baseUrlPromise;
  }

  function statusDescription(response) {
    return response.statusText ? `${response.status} ${response.statusText}` : String(response.status);
  }

  // The API's errors are {"error": {"code", "message"}}. Anything else (a proxy's HTML page, an empty
  // body) becomes a message with the HTTP status.
  async function errorFromResponse(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      console.warn(`api.js: the error response (HTTP status ${response.status}) is not JSON`, error);
    }
    const detail = body && body.error;
    if (detail && typeof detail.message === "string") {
      const code = typeof detail.code === "string" ? detail.code : "server_failed";
      return makeApiError(code, detail.message, response.status);
    }
    return makeApiError("server_failed", `the server responded with HTTP status ${statusDescription(response)}`,
      response.status);
  }

  async function request(path, options = {}) {
    const url = new URL(path, await baseUrl()).href;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      let response;
      try {
        response = await fetch(url, { ...options, signal: controller.signal, cache: "no-store" });
      } catch (error) {
        if (controller.signal.aborted) {
          throw makeApiError("server_timeout",
            `the server did not answer within ${REQUEST_TIMEOUT_MS / 1000} s (${url})`);
        }
        throw makeApiError("server_unreachable", `the server could not be reached at ${url} (${error.message})`);
      }
      if (!response.ok) {
        throw await errorFromResponse(response);
      }
      try {
        return await response.json();
      } catch (error) {
        if (controller.signal.aborted) {
          throw makeApiError("server_timeout",
            `the server did not finish its answer within ${REQUEST_TIMEOUT_MS / 1000} s (${url})`);
        }
        throw makeApiError("server_failed", `the server's response from ${url} is not valid JSON`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  function bytesToBase64(bytes) {
    const view = new Uint8Array(bytes);
    let binary = "";
    // String.fromCharCode takes its arguments on the stack, so the bytes go in slices.
    for (let start = 0; start < view.length; start += 0x8000) {
      binary += String.fromCharCode.apply(null, view.subarray(start, start + 0x8000));
    }
    return btoa(binary);
  }

  function base64ToBytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let index = 0; index < binary.length; index++) {
      bytes[index] = binary.charCodeAt(index);
    }
    return bytes;
  }

  // The API returns what the network saw as a greyscale PNG, ink bright. The page draws 784 values in 0..1.
  async function decodeSeenImage(base64Png) {
    const bitmap = await createImageBitmap(new Blob([base64ToBytes(base64Png)], { type: "image/png" }),
      { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const canvas = document.createElement("canvas");
    canvas.width = IMAGE_SIDE;
    canvas.height = IMAGE_SIDE;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0, IMAGE_SIDE, IMAGE_SIDE);
    bitmap.close();
    const pixels = context.getImageData(0, 0, IMAGE_SIDE, IMAGE_SIDE).data;
    const image = new Array(IMAGE_SIDE * IMAGE_SIDE);
    for (let index = 0; index < image.length; index++) {
      image[index] = pixels[4 * index] / 255;
    }
    return image;
  }

  async function classify(payload, model) {
    if (model) {
      payload.model = model;
    }
    const started = performance.now();
    const response = await request("classify", {
      method: "POST",
      // A CORS-safelisted type, so that an API on another origin needs no preflight request.
      // The API reads text/plain bodies as JSON.
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify(payload),
    });
    const roundTripMs = performance.now() - started;
    if (typeof response.label !== "number" || !Array.isArray(response.probabilities)) {
      throw makeApiError("server_failed", "the server's response has no label and probabilities");
    }
    let image = null;
    try {
      image = typeof response.image === "string" ? await decodeSeenImage(response.image) : null;
    } catch (error) {
      console.warn("api.js: the image in the server's response could not be decoded", error);
    }
    return {
      label: response.label,
      probabilities: response.probabilities,
      image,
      ms: Number(response.ms) || 0,
      roundTripMs,
      model: response.model || null,
    };
  }

  function classifyCanvas(width, height, rgba, model) {
    return classify({ canvas: { width, height, rgba: bytesToBase64(rgba) } }, model);
  }

  // Returns the RGBA pixels of an image file scaled to fit SHRUNK_PHOTO_SIDE, or null when the browser
  // cannot decode it. Orientation follows the file's EXIF data, as the digits package does.
  async function shrinkPhoto(file) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (error) {
      console.warn("api.js: the browser could not decode the photo", error);
      return null;
    }
    const scale = Math.min(1, SHRUNK_PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
    const width = Math.max(1, Math.round(bitmap.width * scale));
    const height = Math.max(1, Math.round(bitmap.height * scale));
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0, width, height);
    bitmap.close();
    return { width, height, rgba: context.getImageData(0, 0, width, height).data.buffer };
  }

  // Small files go as they are, so the server decodes them as the worker would. Larger ones are shrunk;
  // one the browser cannot decode also goes as it is, and the server reports what is wrong with it.
  async function classifyPhoto(file, model) {
    if (file.size > MAX_PHOTO_FILE_BYTES) {
      const shrunk = await shrinkPhoto(file);
      if (shrunk) {
        return classifyCanvas(shrunk.width, shrunk.height, shrunk.rgba, model);
      }
    }
    return classify({ image: bytesToBase64(await file.arrayBuffer()) }, model);
  }

  function health() {
    return request("health");
  }

  window.digitsApi = { baseUrl, classifyCanvas, classifyPhoto, health };
})();
