"""AWS Lambda handler: the HTTP API around the same classify code the page runs.

Accepts the events of a Lambda Function URL and of an API Gateway HTTP API (payload
format 2.0), and of an API Gateway REST API (payload format 1.0). Routes:

    POST /classify   {"pixels": [784 numbers]} | {"image": "<base64 file>"} |
                     {"canvas": {"width": W, "height": H, "rgba": "<base64>"}}, optional "model"
    GET  /health     the loaded models' names and versions
    OPTIONS *        CORS preflight

Settings come from environment variables: DIGITS_MODELS_DIR (folder of model files),
DIGITS_DEFAULT_MODEL, DIGITS_ALLOWED_ORIGINS (comma-separated, or *), DIGITS_MAX_BODY_BYTES
and DIGITS_MAX_IMAGE_PIXELS. Every rejected request gets {"error": {"code": ..., "message": ...}}
with a 4xx status. Only a fault in this code or a broken model folder gives 500, whose details go
to the log, not the response.
"""

import base64
import binascii
import glob
import json
import logging
import os
import threading
import time

import numpy as np

from .classify import canvas_to_array, classify, classify_pixels
from .errors import InputError
from .images import decode_image, encode_png
from .model_file import load_model
from .preprocess import SIZE

logger = logging.getLogger("digits.api")

DEFAULT_MAX_BODY_BYTES = 1_000_000
# Decoding and preprocessing take about 85 bytes of memory and 0.5 us of CPU per pixel (measured
# with numpy 2.4 on x86_64), so 4.2 million pixels stay near 350 MB and 2 s. The package's own limit
# for the command line is 25 million pixels, which would need about 2 GB.
DEFAULT_MAX_IMAGE_PIXELS = 2048 * 2048
DEFAULT_ALLOWED_ORIGINS = "http://127.0.0.1:8000,http://localhost:8000"
ROUTES = {"/classify": ("POST",), "/health": ("GET",)}
# Stripped from the front of a path so the same routes work behind the local server and API stages.
PATH_PREFIXES = ("/api",)
JSON_CONTENT_TYPES = ("application/json", "text/plain", "")

_models = None
_models_lock = threading.Lock()


class ApiError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def models_dir():
    configured = os.environ.get("DIGITS_MODELS_DIR")
    if configured:
        return configured
    here = os.path.dirname(os.path.abspath(__file__))
    # In the Lambda zip the models sit beside the package; in the repository, under site/.
    for candidate in (os.path.join(here, "..", "models"), os.path.join(here, "..", "..", "site", "models")):
        if glob.glob(os.path.join(candidate, "*.json")):
            return os.path.normpath(candidate)
    return os.path.join(here, "..", "models")


def loaded_models():
    """Load every model file once per container; later requests reuse them."""
    global _models
    if _models is not None:
        return _models
    # The local development server calls the handler from several threads at once.
    with _models_lock:
        if _models is None:
            _models = load_models_from(models_dir())
    return _models


def load_models_from(folder):
    models = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        if os.path.basename(path) == "index.json":
            continue
        model = load_model(path)
        models[model.name] = model
        logger.info("loaded model %s version %s from %s", model.name, model.version, path)
    if not models:
        raise RuntimeError(f"no model files found in {folder}")
    return models


def default_model_name(models):
    configured = os.environ.get("DIGITS_DEFAULT_MODEL")
    if configured in models:
        return configured
    return "cnn" if "cnn" in models else sorted(models)[0]


def allowed_origins():
    return {origin.strip() for origin in os.environ.get("DIGITS_ALLOWED_ORIGINS", DEFAULT_ALLOWED_ORIGINS).split(",") if origin.strip()}


def max_body_bytes():
    return int(os.environ.get("DIGITS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def max_image_pixels():
    return int(os.environ.get("DIGITS_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))


class Request:
    """The parts of an HTTP request the API needs, read from any of the three event formats."""

    def __init__(self, method, path, headers, body, is_base64):
        self.method = method.upper()
        self.path = path
        self.headers = {str(key).lower(): str(value) for key, value in (headers or {}).items()}
        self.raw_body = body or ""
        self.is_base64 = bool(is_base64)

    @classmethod
    def from_event(cls, event):
        if not isinstance(event, dict):
            raise ApiError(400, "invalid_event", "the Lambda event is not a JSON object")
        context = event.get("requestContext") or {}
        if not isinstance(context, dict) or not isinstance(context.get("http", {}), dict):
            raise ApiError(400, "invalid_event", "the event's requestContext must be an object")
        if isinstance(context.get("http"), dict):  # Function URL and HTTP API, payload format 2.0
            method = context["http"].get("method", "")
            path = event.get("rawPath") or context["http"].get("path", "/")
        elif "httpMethod" in event:  # REST API, payload format 1.0
            method = event["httpMethod"]
            path = event.get("path") or "/"
        else:
            raise ApiError(400, "invalid_event", "unrecognised event: expected a Function URL, HTTP API or REST API event")
        headers, body = event.get("headers"), event.get("body")
        if not isinstance(method, str) or not isinstance(path, str) or not isinstance(headers, (dict, type(None))):
            raise ApiError(400, "invalid_event", "the event's method and path must be strings and its headers an object")
        if not isinstance(body, (str, type(None))):
            raise ApiError(400, "invalid_event", "the event's body must be a string")
        return cls(method, strip_prefixes(path, context.get("stage")), headers, body, event.get("isBase64Encoded"))

    def body_bytes(self, limit):
        body = self.raw_body
        if self.is_base64:
            # Base64 text is 4/3 of its bytes, so a longer text cannot be under the limit.
            if len(body) > (limit + 2) // 3 * 4:
                raise body_too_large(limit)
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "invalid_body", "the request body is marked base64 but is not valid base64") from None
        else:
            # A lone surrogate (possible after a JSON \ud800 escape) fails strict encoding, and json.loads
            # decodes bytes with surrogatepass anyway.
            data = body.encode("utf-8", errors="surrogatepass")
        if len(data) > limit:
            raise body_too_large(limit)
        return data


def body_too_large(limit):
    return ApiError(413, "body_too_large", f"the request body is larger than the limit of {limit} bytes")


def strip_prefixes(path, stage=None):
    """Remove the API stage, then /api, from the front of `path`."""
    path = "/" + path.strip("/")
    prefixes = []
    if isinstance(stage, str) and stage and stage != "$default":
        prefixes.append("/" + stage)
    prefixes.extend(PATH_PREFIXES)
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix):] or "/"
    return path


def cors_headers(request):
    origin = request.headers.get("origin")
    allowed = allowed_origins()
    if origin and (origin in allowed or "*" in allowed):
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
    return {"Vary": "Origin"}


def json_response(status, payload, headers=None):
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(payload, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_response(error):
    return json_response(error.status, {"error": {"code": error.code, "message": error.message}}, error.headers)


def parse_json_body(request):
    # text/plain is accepted because a browser sends it without a CORS preflight.
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type not in JSON_CONTENT_TYPES:
        raise ApiError(415, "unsupported_media_type", f"send the request body as application/json or text/plain, not {content_type}")
    data = request.body_bytes(max_body_bytes())
    try:
        payload = json.loads(data, parse_constant=reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {error}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON: it is nested too deeply") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return payload


def reject_constant(name):
    raise ApiError(400, "invalid_number", f"{name} is not a valid number here: send finite numbers only")


def decode_base64_field(value, field):
    if not isinstance(value, str):
        raise ApiError(400, "invalid_request", f"{field} must be a base64 string")
    if value.startswith("data:") and "," in value:  # accept a data URL as the page's canvas gives it
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_base64", f"{field} is not valid base64") from None


def choose_model(payload):
    models = loaded_models()
    name = payload.get("model", default_model_name(models))
    if not isinstance(name, str) or name not in models:
        raise ApiError(400, "unknown_model", f"unknown model {name!r}; available: {', '.join(sorted(models))}")
    return models[name]


def run_classification(model, payload):
    inputs = [key for key in ("pixels", "image", "canvas") if key in payload]
    if len(inputs) != 1:
        raise ApiError(400, "invalid_request", 'send exactly one of "pixels", "image" or "canvas"')
    kind = inputs[0]
    if kind == "pixels":
        return classify_pixels(model, pixel_array(payload["pixels"]))
    if kind == "image":
        return classify(model, decode_image_field(payload["image"]))
    canvas = payload["canvas"]
    if not isinstance(canvas, dict):
        raise ApiError(400, "invalid_canvas", 'canvas must be {"width": W, "height": H, "rgba": "<base64>"}')
    rgba = decode_base64_field(canvas.get("rgba"), "canvas.rgba")
    return classify(model, canvas_to_array(rgba, canvas.get("width"), canvas.get("height")))


def pixel_array(pixels):
    """Return the "pixels" field as float64, rejecting anything but a flat list of JSON numbers."""
    expected = SIZE * SIZE
    if not isinstance(pixels, list) or len(pixels) != expected:
        found = f"{len(pixels)} values" if isinstance(pixels, list) else type(pixels).__name__
        raise ApiError(400, "invalid_pixels", f"pixels must be a list of {expected} numbers in 0..1, got {found}")
    # bool is a subclass of int, and numpy would turn true into 1.0 and "0.5" into 0.5, so check types first.
    if not set(map(type, pixels)) <= {int, float}:
        raise ApiError(400, "invalid_pixels", f"pixels must be a list of {expected} numbers in 0..1, "
                                              "not strings, booleans, lists or null")
    try:
        return np.asarray(pixels, dtype=np.float64)
    except OverflowError:  # an integer too large for a float
        raise ApiError(400, "invalid_pixels", "pixel values must be in 0..1") from None


def decode_image_field(value):
    data = decode_base64_field(value, "image")
    try:
        return decode_image(data, max_pixels=max_image_pixels())
    except InputError as error:
        status = 413 if error.code == "image_too_large" else 415
        raise ApiError(status, error.code, str(error)) from None


def handle_classify(request):
    started = time.perf_counter()
    payload = parse_json_body(request)
    model = choose_model(payload)
    try:
        result = run_classification(model, payload)
    except InputError as error:
        raise ApiError(400, error.code, str(error)) from None
    return json_response(200, {
        "label": result.label,
        "probabilities": [float(p) for p in result.probabilities],
        "model": {"name": model.name, "version": model.version},
        "image": base64.b64encode(encode_png(result.image)).decode("ascii"),
        "ms": round((time.perf_counter() - started) * 1000, 3),
    })


def handle_health(request):
    models = loaded_models()
    return json_response(200, {
        "status": "ok",
        "default_model": default_model_name(models),
        "models": [{"name": model.name, "version": model.version, "test_accuracy": model.test_accuracy} for model in models.values()],
    })


HANDLERS = {"/classify": handle_classify, "/health": handle_health}


def route(request):
    if request.path not in ROUTES:
        raise ApiError(404, "not_found", f"no route {request.path}; the API has POST /classify and GET /health")
    methods = ROUTES[request.path]
    if request.method == "OPTIONS":
        return {"statusCode": 204, "headers": {"Allow": ", ".join(methods + ("OPTIONS",))}, "body": "", "isBase64Encoded": False}
    if request.method not in methods:
        allow = ", ".join(methods + ("OPTIONS",))
        raise ApiError(405, "method_not_allowed", f"{request.path} accepts {allow}, not {request.method}", {"Allow": allow})
    return HANDLERS[request.path](request)


def handler(event, context=None):
    """The Lambda entry point."""
    request = None
    try:
        request = Request.from_event(event)
        response = route(request)
    except ApiError as error:
        logger.warning("request rejected: %s %s", error.code, error.message)
        response = error_response(error)
    except Exception:
        logger.exception("unexpected error while handling a request")
        response = error_response(ApiError(500, "internal_error", "the server failed to handle this request"))
    if request is not None:
        response["headers"] = {**response.get("headers", {}), **cors_headers(request)}
    return response
