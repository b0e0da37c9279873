"""Tests of the Lambda handler: the three event formats, both routes, CORS and every kind of bad input.

The models here are small files written with digits.save_model. Their weights are zero, so their
outputs do not depend on the input and every probability is known exactly. The shipped models are
tested through the Lambda package.
"""

import base64
import io
import json
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import digits
from digits import aws_lambda

SITE_ORIGIN = "http://127.0.0.1:8000"
MLP_BIAS = np.log(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 55], dtype=np.float64))
CNN_BIAS = np.log(np.array([3, 40, 1, 1, 1, 1, 1, 1, 1, 50], dtype=np.float64))
TRACEBACK_MARKERS = ("Traceback", 'File "', ".py\"")


def save_constant_model(folder, name, bias):
    """Save a model whose logits are `bias` for every input, so its probabilities are softmax(bias)."""
    layers = [{"type": "flatten"},
              {"type": "dense", "weight": np.zeros((784, 10), np.float32), "bias": bias.astype(np.float32)}]
    return digits.save_model(folder / f"{name}.json", name, layers, 0.1307, 0.3081, test_accuracy=0.5)


def expected_probabilities(bias):
    logits = bias.astype(np.float32).astype(np.float64)
    exps = np.exp(logits - logits.max())
    return exps / exps.sum()


@pytest.fixture
def models(tmp_path, monkeypatch):
    """Two constant models in a fresh folder, with the handler's model cache and settings reset."""
    folder = tmp_path / "models"
    folder.mkdir()
    saved = {"mlp": save_constant_model(folder, "mlp", MLP_BIAS), "cnn": save_constant_model(folder, "cnn", CNN_BIAS)}
    (folder / "index.json").write_text('{"default": "cnn", "models": []}')
    monkeypatch.setenv("DIGITS_MODELS_DIR", str(folder))
    for name in ("DIGITS_DEFAULT_MODEL", "DIGITS_ALLOWED_ORIGINS", "DIGITS_MAX_BODY_BYTES", "DIGITS_MAX_IMAGE_PIXELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(aws_lambda, "_models", None)
    return saved


# --- events in the three formats, as AWS sends them -----------------------------------------------

def function_url_event(method, path, body=None, headers=None, is_base64=False):
    headers = {"content-type": "application/json", "origin": SITE_ORIGIN, **(headers or {})}
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {name: value for name, value in headers.items() if value is not None},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abc123", "domainName": "abc123.lambda-url.us-east-1.on.aws",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "id", "routeKey": "$default", "stage": "$default", "time": "04/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1796385600000,
        },
        "isBase64Encoded": is_base64,
    }
    if body is not None:
        event["body"] = body
    return event


def http_api_event(method, path, body=None, headers=None, stage="prod"):
    """An API Gateway HTTP API event: payload 2.0 with the stage at the front of rawPath."""
    event = function_url_event(method, f"/{stage}{path}", body, headers)
    event["routeKey"] = f"{method} {path}"
    event["requestContext"].update({"stage": stage, "routeKey": f"{method} {path}", "domainName": "api.example.com"})
    return event


def rest_api_event(method, path, body=None, headers=None, stage="prod"):
    """An API Gateway REST API event: payload 1.0, headers in their original case."""
    headers = {"Content-Type": "application/json", "Origin": SITE_ORIGIN, **(headers or {})}
    return {
        "resource": path, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": path, "httpMethod": method, "path": f"/{stage}{path}", "stage": stage,
                           "identity": {"sourceIp": "192.0.2.1"}, "requestId": "id"},
        "body": body, "isBase64Encoded": False,
    }


EVENT_FORMATS = {"function_url": function_url_event, "http_api": http_api_event, "rest_api": rest_api_event}


def call(event):
    response = aws_lambda.handler(event, None)
    for marker in TRACEBACK_MARKERS:
        assert marker not in response["body"], f"traceback text {marker!r} in the answer: {response['body']}"
    return response


def post(payload, headers=None, raw=None):
    body = raw if raw is not None else json.dumps(payload)
    return call(function_url_event("POST", "/classify", body, headers))


def answer(response):
    return json.loads(response["body"])


def assert_error(response, status, code):
    assert response["statusCode"] == status, response["body"]
    assert response["headers"]["Content-Type"] == "application/json"
    error = answer(response)["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(answer(response)) == {"error"}


# --- inputs ---------------------------------------------------------------------------------------

def digit_pixels():
    """A vertical bar in MNIST form: 784 values in 0..1."""
    image = np.zeros((28, 28))
    image[6:22, 13:15] = 1.0
    image[6:22, 12] = 0.5
    return image


def canvas_payload(width=40, height=30):
    """A black stroke on an opaque white canvas, as getImageData gives it."""
    rgba = np.full((height, width, 4), 255, dtype=np.uint8)
    rgba[5:25, 18:22, :3] = 0
    return rgba, {"canvas": {"width": width, "height": height, "rgba": base64.b64encode(rgba.tobytes()).decode()}}


def png_of(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(text):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def png_header_only(width, height):
    """A PNG that declares a size in its header but carries almost no data, as a decompression bomb does."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


# --- classify -------------------------------------------------------------------------------------

@pytest.mark.parametrize("event_format", sorted(EVENT_FORMATS))
def test_classify_in_each_event_format(models, event_format):
    event = EVENT_FORMATS[event_format]("POST", "/classify", json.dumps({"pixels": digit_pixels().ravel().tolist()}))

    response = call(event)

    assert response["statusCode"] == 200, response["body"]
    result = answer(response)
    assert result["label"] == 9
    assert result["model"] == {"name": "cnn", "version": models["cnn"]["version"]}
    np.testing.assert_allclose(result["probabilities"], expected_probabilities(CNN_BIAS), rtol=1e-12)
    assert response["headers"]["Access-Control-Allow-Origin"] == SITE_ORIGIN


@pytest.mark.parametrize("event_format", sorted(EVENT_FORMATS))
def test_health_in_each_event_format(models, event_format):
    response = call(EVENT_FORMATS[event_format]("GET", "/health"))

    assert response["statusCode"] == 200
    assert answer(response) == {
        "status": "ok",
        "default_model": "cnn",
        "models": [{"name": "cnn", "version": models["cnn"]["version"], "test_accuracy": 0.5},
                   {"name": "mlp", "version": models["mlp"]["version"], "test_accuracy": 0.5}],
    }


def test_classify_pixels_answer(models):
    pixels = digit_pixels()

    result = answer(post({"pixels": pixels.ravel().tolist(), "model": "mlp"}))

    assert set(result) == {"label", "probabilities", "model", "image", "ms"}
    assert result["label"] == 9
    assert result["model"] == {"name": "mlp", "version": models["mlp"]["version"]}
    np.testing.assert_allclose(result["probabilities"], expected_probabilities(MLP_BIAS), rtol=1e-12)
    assert math.isclose(sum(result["probabilities"]), 1.0, rel_tol=1e-12)
    np.testing.assert_array_equal(decode_png(result["image"]), np.round(pixels * 255).astype(np.uint8))
    assert 0 <= result["ms"] < 10_000


def test_classify_pixels_accepts_integers(models):
    pixels = (digit_pixels() == 1.0).astype(int)

    response = post({"pixels": pixels.ravel().tolist()})

    assert response["statusCode"] == 200
    np.testing.assert_array_equal(decode_png(answer(response)["image"]), pixels * 255)


def test_classify_canvas_image_seen(models):
    rgba, payload = canvas_payload()

    result = answer(post(payload))

    expected = np.round(digits.preprocess(rgba) * 255).astype(np.uint8)
    np.testing.assert_array_equal(decode_png(result["image"]), expected)
    assert result["label"] == 9


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_classify_image_file(models, prefix):
    rgba, _ = canvas_payload()
    encoded = prefix + base64.b64encode(png_of(rgba)).decode()

    result = answer(post({"image": encoded, "model": "mlp"}))

    expected = np.round(digits.preprocess(rgba) * 255).astype(np.uint8)
    np.testing.assert_array_equal(decode_png(result["image"]), expected)
    assert result["model"]["name"] == "mlp"


def test_classify_text_plain_body(models):
    # A browser sends text/plain without a CORS preflight.
    response = post({"pixels": digit_pixels().ravel().tolist()}, headers={"content-type": "text/plain;charset=UTF-8"})

    assert response["statusCode"] == 200


def test_classify_base64_body(models):
    body = base64.b64encode(json.dumps({"pixels": digit_pixels().ravel().tolist()}).encode()).decode()

    response = call(function_url_event("POST", "/classify", body, is_base64=True))

    assert response["statusCode"] == 200
    assert answer(response)["label"] == 9


def test_default_model_from_environment(models, monkeypatch):
    monkeypatch.setenv("DIGITS_DEFAULT_MODEL", "mlp")

    result = answer(post({"pixels": digit_pixels().ravel().tolist()}))

    assert result["model"]["name"] == "mlp"
    assert answer(call(function_url_event("GET", "/health")))["default_model"] == "mlp"


def test_api_prefix_stripped(models):
    response = call(function_url_event("GET", "/api/health"))

    assert response["statusCode"] == 200


def test_models_loaded_once(models, monkeypatch):
    loads = []
    original = aws_lambda.load_model
    monkeypatch.setattr(aws_lambda, "load_model", lambda path: loads.append(path) or original(path))

    for _ in range(3):
        assert post({"pixels": digit_pixels().ravel().tolist()})["statusCode"] == 200
    assert call(function_url_event("GET", "/health"))["statusCode"] == 200

    assert sorted(path.rsplit("/", 1)[1] for path in loads) == ["cnn.json", "mlp.json"]


def test_encode_png_round_trip():
    image = np.linspace(0, 1, 28 * 28).reshape(28, 28)

    decoded = np.asarray(Image.open(io.BytesIO(digits.images.encode_png(image))))

    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, np.round(image * 255).astype(np.uint8))


# --- CORS -----------------------------------------------------------------------------------------

def test_preflight_allowed_origin(models):
    response = call(function_url_event("OPTIONS", "/classify", headers={
        "access-control-request-method": "POST", "access-control-request-headers": "content-type"}))

    assert response["statusCode"] == 204
    assert response["headers"]["Access-Control-Allow-Origin"] == SITE_ORIGIN
    assert response["headers"]["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response["headers"]["Access-Control-Allow-Headers"] == "Content-Type"
    assert response["headers"]["Allow"] == "POST, OPTIONS"
    assert response["headers"]["Vary"] == "Origin"


def test_preflight_refused_origin(models):
    response = call(function_url_event("OPTIONS", "/classify", headers={"origin": "https://evil.example"}))

    assert "Access-Control-Allow-Origin" not in response["headers"]
    assert "Access-Control-Allow-Methods" not in response["headers"]
    assert response["headers"]["Vary"] == "Origin"


def test_refused_origin_gets_no_cors_on_answers(models):
    response = post({"pixels": digit_pixels().ravel().tolist()}, headers={"origin": "https://evil.example"})

    assert response["statusCode"] == 200
    assert "Access-Control-Allow-Origin" not in response["headers"]


def test_configured_origins(models, monkeypatch):
    monkeypatch.setenv("DIGITS_ALLOWED_ORIGINS", "https://digits.example, https://other.example")

    allowed = post({"pixels": digit_pixels().ravel().tolist()}, headers={"origin": "https://other.example"})
    default_origin_rejected = post({"pixels": digit_pixels().ravel().tolist()})

    assert allowed["headers"]["Access-Control-Allow-Origin"] == "https://other.example"
    assert "Access-Control-Allow-Origin" not in default_origin_rejected["headers"]


def test_wildcard_origin(models, monkeypatch):
    monkeypatch.setenv("DIGITS_ALLOWED_ORIGINS", "*")

    response = call(function_url_event("GET", "/health", headers={"origin": "https://anyone.example"}))

    assert response["headers"]["Access-Control-Allow-Origin"] == "https://anyone.example"


def test_errors_carry_cors_headers(models):
    response = post(None, raw="{")

    assert response["statusCode"] == 400
    assert response["headers"]["Access-Control-Allow-Origin"] == SITE_ORIGIN


# --- bad input ------------------------------------------------------------------------------------

def pixels_with(value, index=100):
    pixels = digit_pixels().ravel().tolist()
    pixels[index] = value
    return pixels


BAD_JSON_BODIES = {
    "truncated": '{"pixels": [0.1, 0.2',
    "not json": "hello",
    "trailing comma": '{"pixels": [1,],}',
    "single quotes": "{'pixels': []}",
    "deeply nested": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", sorted(BAD_JSON_BODIES))
def test_malformed_json(models, case):
    assert_error(post(None, raw=BAD_JSON_BODIES[case]), 400, "invalid_json")


def test_invalid_utf8_body(models):
    body = base64.b64encode(b'{"pixels": "\xff\xfe"}').decode()

    assert_error(call(function_url_event("POST", "/classify", body, is_base64=True)), 400, "invalid_json")


def test_lone_surrogate_in_body(models):
    assert_error(post(None, raw='{"pixels": "\ud800"}'), 400, "invalid_pixels")


def test_invalid_base64_body(models):
    assert_error(call(function_url_event("POST", "/classify", "not base64!", is_base64=True)), 400, "invalid_body")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals(models, constant):
    pixels = json.dumps(digit_pixels().ravel().tolist()).replace("0.0", constant, 1)

    assert_error(post(None, raw=f'{{"pixels": {pixels}}}'), 400, "invalid_number")


def test_overflowing_float(models):
    # 1e999 is valid JSON that Python reads as infinity.
    pixels = json.dumps(digit_pixels().ravel().tolist()).replace("0.0", "1e999", 1)

    assert_error(post(None, raw=f'{{"pixels": {pixels}}}'), 400, "invalid_drawing")


def test_huge_integer(models):
    assert_error(post({"pixels": pixels_with(10 ** 400)}), 400, "invalid_pixels")


WRONG_REQUESTS = {
    "body is a list": ([1, 2, 3], 400, "invalid_request"),
    "body is a number": (7, 400, "invalid_request"),
    "no input": ({"model": "mlp"}, 400, "invalid_request"),
    "two inputs": ({"pixels": digit_pixels().ravel().tolist(), "image": "aGk="}, 400, "invalid_request"),
    "pixels is a string": ({"pixels": "0.5"}, 400, "invalid_pixels"),
    "pixels is null": ({"pixels": None}, 400, "invalid_pixels"),
    "pixels too few": ({"pixels": [0.5] * 783}, 400, "invalid_pixels"),
    "pixels too many": ({"pixels": [0.5] * 785}, 400, "invalid_pixels"),
    "pixels nested": ({"pixels": digit_pixels().tolist()}, 400, "invalid_pixels"),
    "pixel is a string": ({"pixels": pixels_with("0.5")}, 400, "invalid_pixels"),
    "pixel is a boolean": ({"pixels": pixels_with(True)}, 400, "invalid_pixels"),
    "pixel is null": ({"pixels": pixels_with(None)}, 400, "invalid_pixels"),
    "pixel above 1": ({"pixels": pixels_with(1.5)}, 400, "invalid_drawing"),
    "pixel below 0": ({"pixels": pixels_with(-0.1)}, 400, "invalid_drawing"),
    "empty pixels": ({"pixels": [0.0] * 784}, 400, "empty_drawing"),
    "model is a number": ({"pixels": digit_pixels().ravel().tolist(), "model": 3}, 400, "unknown_model"),
    "unknown model": ({"pixels": digit_pixels().ravel().tolist(), "model": "resnet"}, 400, "unknown_model"),
    "image is a number": ({"image": 12}, 400, "invalid_request"),
    "image not base64": ({"image": "@@@"}, 400, "invalid_base64"),
    "canvas is a list": ({"canvas": [1, 2]}, 400, "invalid_canvas"),
    "canvas rgba missing": ({"canvas": {"width": 2, "height": 2}}, 400, "invalid_request"),
    "canvas width a string": ({"canvas": {"width": "2", "height": 2, "rgba": "AAAA"}}, 400, "invalid_drawing"),
    "canvas width zero": ({"canvas": {"width": 0, "height": 2, "rgba": ""}}, 400, "invalid_drawing"),
    "canvas bytes short": ({"canvas": {"width": 2, "height": 2,
                                       "rgba": base64.b64encode(bytes(15)).decode()}}, 400, "invalid_drawing"),
    "canvas over the pixel limit": ({"canvas": {"width": 5000, "height": 5000, "rgba": ""}}, 400, "invalid_drawing"),
    "empty canvas": ({"canvas": {"width": 3, "height": 3,
                                 "rgba": base64.b64encode(bytes([255] * 36)).decode()}}, 400, "empty_drawing"),
}


@pytest.mark.parametrize("case", sorted(WRONG_REQUESTS))
def test_wrong_request(models, case):
    payload, status, code = WRONG_REQUESTS[case]

    assert_error(post(payload), status, code)


def test_empty_drawing_message(models):
    message = answer(post({"pixels": [0.0] * 784}))["error"]["message"]

    assert message == "the drawing is empty: draw a digit first"


def test_bytes_not_an_image(models):
    assert_error(post({"image": base64.b64encode(b"this is plain text, not a picture").decode()}), 415, "invalid_image")


@pytest.mark.parametrize(("image_format", "kept_bytes"), [("PNG", 16), ("JPEG", 6), ("ICO", 26), ("PPM", 2)])
def test_damaged_image_header(models, image_format, kept_bytes):
    # Headers cut at these lengths make Pillow 13 raise OSError or ValueError while opening the file.
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(buffer, format=image_format)
    damaged = buffer.getvalue()[:kept_bytes]

    assert_error(post({"image": base64.b64encode(damaged).decode()}), 415, "invalid_image")


def test_image_over_pixel_limit(models):
    too_large = np.full((2049, 2049), 255, dtype=np.uint8)

    response = post({"image": base64.b64encode(png_of(too_large)).decode()})

    assert_error(response, 413, "image_too_large")
    assert "2049x2049" in answer(response)["error"]["message"]


def test_image_pixel_limit_configurable(models, monkeypatch):
    monkeypatch.setenv("DIGITS_MAX_IMAGE_PIXELS", "100")
    rgba, _ = canvas_payload(width=11, height=10)

    assert_error(post({"image": base64.b64encode(png_of(rgba)).decode()}), 413, "image_too_large")


def test_decompression_bomb(models):
    # Pillow itself refuses images over twice its MAX_IMAGE_PIXELS while reading the header.
    bomb = png_header_only(20_000, 20_000)

    assert_error(post({"image": base64.b64encode(bomb).decode()}), 413, "image_too_large")


def test_body_over_limit(models):
    body = json.dumps({"pixels": digit_pixels().ravel().tolist(), "padding": "x" * 1_000_000})

    response = post(None, raw=body)

    assert_error(response, 413, "body_too_large")
    assert "1000000 bytes" in answer(response)["error"]["message"]


def test_base64_body_over_limit(models):
    body = base64.b64encode(b"{" + b" " * 1_000_000 + b"}").decode()

    assert_error(call(function_url_event("POST", "/classify", body, is_base64=True)), 413, "body_too_large")


def test_body_limit_configurable(models, monkeypatch):
    monkeypatch.setenv("DIGITS_MAX_BODY_BYTES", "100")

    assert_error(post({"pixels": [0.5] * 50}), 413, "body_too_large")
    assert_error(post({"model": "x" * 200}), 413, "body_too_large")
    assert answer(post(None, raw='{"pixels": 1}'))["error"]["code"] == "invalid_pixels"


@pytest.mark.parametrize("content_type", ["image/png", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_unsupported_content_type(models, content_type):
    response = post({"pixels": digit_pixels().ravel().tolist()}, headers={"content-type": content_type})

    assert_error(response, 415, "unsupported_media_type")
    assert answer(response)["error"]["message"] == (
        f"send the request body as application/json or text/plain, not {content_type}")


@pytest.mark.parametrize("event_format", sorted(EVENT_FORMATS))
@pytest.mark.parametrize("path", ["/", "/classify/extra", "/predict", "/api"])
def test_unknown_route(models, event_format, path):
    assert_error(call(EVENT_FORMATS[event_format]("GET", path)), 404, "not_found")


@pytest.mark.parametrize("event_format", sorted(EVENT_FORMATS))
@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/classify", "POST, OPTIONS"),
    ("PUT", "/classify", "POST, OPTIONS"),
    ("POST", "/health", "GET, OPTIONS"),
    ("DELETE", "/health", "GET, OPTIONS"),
])
def test_wrong_method(models, event_format, method, path, allow):
    response = call(EVENT_FORMATS[event_format](method, path))

    assert_error(response, 405, "method_not_allowed")
    assert response["headers"]["Allow"] == allow


@pytest.mark.parametrize("event", [None, [], "text", {}, {"requestContext": {}}, {"httpMethod": 5, "path": "/health"},
                                   {"httpMethod": "POST", "path": "/classify", "body": {"pixels": []}},
                                   {"requestContext": "text", "httpMethod": "GET", "path": "/health"},
                                   {"requestContext": {"http": "GET"}, "rawPath": "/health"}])
def test_unrecognised_event(models, event):
    assert_error(call(event), 400, "invalid_event")


def test_internal_error_hides_details(models, monkeypatch):
    def broken(model, pixels):
        raise RuntimeError("secret detail /var/task/digits/classify.py")
    monkeypatch.setattr(aws_lambda, "classify_pixels", broken)

    response = post({"pixels": digit_pixels().ravel().tolist()})

    assert_error(response, 500, "internal_error")
    assert "secret" not in response["body"]
    assert "classify.py" not in response["body"]


def test_missing_models_is_500(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITS_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(aws_lambda, "_models", None)

    response = call(function_url_event("GET", "/health"))

    assert_error(response, 500, "internal_error")
    assert str(tmp_path) not in response["body"]
