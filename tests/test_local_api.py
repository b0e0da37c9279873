"""Tests of the API under /api/ on the local server: the Function URL events it builds, the responses
it writes back, its body limit, and dist/config.json, from which the page reads the API address."""

import base64
import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest

import build
import digits
from digits import aws_lambda

NOW = 1_796_385_600.25  # 2026-12-04 12:00:00.25 UTC


def test_event_for_json_post():
    event = build.function_url_event(
        "POST", "/api/classify", [("Host", "127.0.0.1:8000"), ("Content-Type", "application/json"),
                                  ("User-Agent", "test-agent"), ("Origin", "http://127.0.0.1:8000")],
        b'{"pixels": [1]}', "127.0.0.1", "HTTP/1.1", now=NOW)
    request_id = event["requestContext"].pop("requestId")

    assert len(request_id) == 36
    assert event == {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/classify",
        "rawQueryString": "",
        "headers": {"host": "127.0.0.1:8000", "content-type": "application/json", "user-agent": "test-agent",
                    "origin": "http://127.0.0.1:8000"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": "127.0.0.1:8000",
            "domainPrefix": "127",
            "http": {"method": "POST", "path": "/classify", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "test-agent"},
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1_796_385_600_250,
        },
        "body": '{"pixels": [1]}',
        "isBase64Encoded": False,
    }


def test_event_for_get_has_no_body():
    event = build.function_url_event("GET", "/api/health", [("Host", "localhost")], b"", "::1", now=NOW)

    assert "body" not in event
    assert event["isBase64Encoded"] is False
    assert event["rawPath"] == "/health"
    assert event["requestContext"]["http"]["sourceIp"] == "::1"


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("text/plain;charset=UTF-8", b"caf\xc3\xa9", ("café", False)),
    ("application/json; charset=utf-8", b"{}", ("{}", False)),
    ("application/problem+json", b"{}", ("{}", False)),
    ("application/json", b"\xff\xfe", ("//4=", True)),
    ("image/png", b"\x89PNG", ("iVBORw==", True)),
    ("application/octet-stream", b"{}", ("e30=", True)),
    ("", b"{}", ("e30=", True)),
])
def test_event_body_encoding(content_type, body, expected):
    headers = [("Content-Type", content_type)] if content_type else []

    event = build.function_url_event("POST", "/api/classify", headers, body, "127.0.0.1", now=NOW)

    assert (event["body"], event["isBase64Encoded"]) == expected


def test_event_joins_repeated_headers():
    headers = [("Accept", "text/html"), ("X-Thing", "a"), ("accept", "application/json"), ("X-THING", "b")]

    event = build.function_url_event("GET", "/api/health", headers, b"", "127.0.0.1", now=NOW)

    assert event["headers"] == {"accept": "text/html,application/json", "x-thing": "a,b"}


def test_event_cookies_and_query():
    headers = [("Cookie", "a=1; b=2"), ("Cookie", "c=3")]

    event = build.function_url_event("GET", "/api/health?x=1&y=2&x=3&empty=", headers, b"", "127.0.0.1", now=NOW)

    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]
    assert event["rawPath"] == "/health"
    assert event["rawQueryString"] == "x=1&y=2&x=3&empty="
    assert event["queryStringParameters"] == {"x": "1,3", "y": "2", "empty": ""}


@pytest.mark.parametrize(("target", "raw_path"), [
    ("/api/", "/"), ("/api/classify", "/classify"), ("/api/a/b%20c", "/a/b%20c"), ("/api/health/", "/health/")])
def test_event_raw_path(target, raw_path):
    event = build.function_url_event("GET", target, [], b"", "127.0.0.1", now=NOW)

    assert event["rawPath"] == raw_path
    assert event["requestContext"]["http"]["path"] == raw_path


def test_lambda_response_plain():
    response = {"statusCode": 405, "headers": {"Allow": "GET", "Content-Type": "application/json"},
                "cookies": ["a=1"], "body": '{"x": "é"}', "isBase64Encoded": False}

    assert build.lambda_http_response(response) == (
        405, {"Allow": "GET", "Content-Type": "application/json"}, ["a=1"], '{"x": "é"}'.encode())


def test_lambda_response_base64():
    response = {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}

    assert build.lambda_http_response(response) == (200, {}, [], b"\x00\x01")


@pytest.mark.parametrize("result", [{"label": 3}, [1, 2], "text", None])
def test_lambda_response_without_status(result):
    # A Function URL turns a result without statusCode into a 200 response with the result as JSON.
    assert build.lambda_http_response(result) == (200, {"Content-Type": "application/json"}, [],
                                                  json.dumps(result).encode())


# --- the running server ---------------------------------------------------------------------------

@pytest.fixture
def api_models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    layers = [{"type": "flatten"}, {"type": "dense", "weight": np.zeros((784, 10), np.float32),
                                    "bias": np.arange(10, dtype=np.float32)}]
    digits.save_model(folder / "mlp.json", "mlp", layers, 0.1307, 0.3081, test_accuracy=0.5)
    monkeypatch.setenv("DIGITS_MODELS_DIR", str(folder))
    for name in ("DIGITS_DEFAULT_MODEL", "DIGITS_ALLOWED_ORIGINS", "DIGITS_MAX_BODY_BYTES", "DIGITS_MAX_IMAGE_PIXELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(aws_lambda, "_models", None)
    return folder


@pytest.fixture
def server(tmp_path, api_models):
    site = tmp_path / "dist"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>digits</title>")
    server = build.make_server(site, port=0, handler_class=build.SiteAndApiRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def connect(server):
    return http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)


def request(server, method, path, body=None, headers=None):
    connection = connect(server)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def pixels_body():
    image = np.zeros(784)
    image[300:320] = 1.0
    return json.dumps({"pixels": image.tolist()})


def test_server_classify_matches_handler(server):
    status, headers, body = request(server, "POST", "/api/classify", pixels_body(),
                                    {"Content-Type": "application/json", "Origin": "http://127.0.0.1:8000"})

    direct = aws_lambda.handler({"version": "2.0", "rawPath": "/classify", "body": pixels_body(),
                                 "headers": {"content-type": "application/json"},
                                 "requestContext": {"http": {"method": "POST", "path": "/classify"}}})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    served, expected = json.loads(body), json.loads(direct["body"])
    served.pop("ms"), expected.pop("ms")
    assert served == expected
    assert served["label"] == 9


def test_server_passes_function_url_event(server, monkeypatch):
    events = []
    monkeypatch.setattr(aws_lambda, "handler", lambda event, context: events.append(event) or {
        "statusCode": 201, "headers": {"X-Answer": "yes"}, "cookies": ["k=v"], "body": "ok"})

    status, headers, body = request(server, "POST", "/api/classify?debug=1", b"\x00\x01\x02",
                                    {"Content-Type": "application/octet-stream", "Cookie": "session=abc"})

    assert (status, headers["X-Answer"], headers["Set-Cookie"], body) == (201, "yes", "k=v", b"ok")
    (event,) = events
    assert event["rawPath"] == "/classify"
    assert event["rawQueryString"] == "debug=1"
    assert event["cookies"] == ["session=abc"]
    assert (event["body"], event["isBase64Encoded"]) == ("AAEC", True)
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert event["headers"]["content-length"] == "3"


def test_server_health(server):
    status, _, body = request(server, "GET", "/api/health")

    assert status == 200
    assert json.loads(body)["models"][0]["name"] == "mlp"


def test_server_errors_are_json(server):
    checks = [("GET", "/api/nothing", None, 404, "not_found"),
              ("GET", "/api/classify", None, 405, "method_not_allowed"),
              ("POST", "/api/classify", "{", 400, "invalid_json")]
    for method, path, body, expected_status, code in checks:
        status, headers, answer = request(server, method, path, body, {"Content-Type": "application/json"})

        assert status == expected_status
        assert headers["Content-Type"] == "application/json"
        assert json.loads(answer)["error"]["code"] == code


def test_server_preflight(server):
    status, headers, body = request(server, "OPTIONS", "/api/classify", headers={
        "Origin": "http://localhost:8000", "Access-Control-Request-Method": "POST"})

    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:8000"
    assert body == b""


def test_server_body_just_over_limit_reaches_handler(server, monkeypatch):
    monkeypatch.setenv("DIGITS_MAX_BODY_BYTES", "1000")

    status, _, body = request(server, "POST", "/api/classify", "x" * 1001, {"Content-Type": "application/json"})

    assert status == 413
    assert json.loads(body)["error"] == {"code": "body_too_large",
                                         "message": "the request body is larger than the limit of 1000 bytes"}


def test_server_huge_body_refused_unread(server, monkeypatch):
    monkeypatch.setenv("DIGITS_MAX_BODY_BYTES", "1000")
    declared = 1000 + build.API_BODY_MARGIN_BYTES + 1

    # Only the headers are sent, so the server must respond without waiting for the body.
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as connection:
        connection.sendall(f"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {declared}\r\n\r\n".encode())
        reply = b""
        while chunk := connection.recv(4096):
            reply += chunk

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
    assert json.loads(body)["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(("header", "status", "code"), [
    ("Content-Length: abc", 400, "invalid_content_length"),
    ("Content-Length: -5", 400, "invalid_content_length"),
    ("Content-Length: \u00b2", 400, "invalid_content_length"),  # superscript two: isdigit() but not int()
    ("Transfer-Encoding: chunked", 411, "length_required"),
])
def test_server_bad_length(server, header, status, code):
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as connection:
        connection.sendall(f"POST /api/classify HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode("latin-1"))
        reply = b""
        while chunk := connection.recv(4096):
            reply += chunk

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert json.loads(body)["error"]["code"] == code


def test_server_keeps_connection_alive(server):
    connection = connect(server)
    try:
        for _ in range(3):
            connection.request("POST", "/api/classify", body=pixels_body(), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            json.loads(response.read())
        connection.request("GET", "/index.html")
        page = connection.getresponse()
        assert page.status == 200
        assert page.read() == b"<!doctype html><title>digits</title>"
    finally:
        connection.close()


def test_server_keep_alive_not_delayed(server):
    # With Nagle's algorithm on, each keep-alive response waits about 40 ms for the client's delayed ACK.
    connection = connect(server)
    try:
        started = time.perf_counter()
        for _ in range(25):
            connection.request("GET", "/api/health")
            response = connection.getresponse()
            response.read()
        seconds = time.perf_counter() - started
    finally:
        connection.close()

    assert seconds < 0.5, f"25 keep-alive requests took {seconds:.2f} s"


def test_server_handler_crash_is_502(server, monkeypatch, capsys):
    def crash(event, context):
        raise RuntimeError("handler bug")
    monkeypatch.setattr(aws_lambda, "handler", crash)

    status, _, body = request(server, "GET", "/api/health")

    assert status == 502
    assert json.loads(body)["error"]["code"] == "handler_failed"
    assert b"handler bug" not in body
    assert "handler bug" in capsys.readouterr().err


def test_server_static_files_refuse_other_methods(server):
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        assert request(server, method, "/index.html")[0] == 405


# --- the API address in dist/config.json -------------------------------------------------------------

@pytest.mark.parametrize(("given", "written"), [
    ("/api/", "/api/"),
    ("/api", "/api/"),
    ("https://abc.lambda-url.us-east-1.on.aws", "https://abc.lambda-url.us-east-1.on.aws/"),
    ("http://127.0.0.1:9000/prod/", "http://127.0.0.1:9000/prod/"),
])
def test_api_url_normalised(given, written):
    assert build.normalise_api_url(given) == written


@pytest.mark.parametrize("given", ["api/", "ftp://example.com/", "https://", "//example.com/api/",
                                   "https://example.com/?x=1", "/api/#top", "javascript:alert(1)"])
def test_api_url_rejected(given):
    with pytest.raises(build.BuildError, match="is not valid"):
        build.normalise_api_url(given)


def fake_build_inputs(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("page")
    node_pyodide = tmp_path / "pyodide"
    node_pyodide.mkdir()
    for name in build.PYODIDE_CORE_FILES:
        (node_pyodide / name).write_text(name)
    (node_pyodide / "pyodide-lock.json").write_text('{"info": {"version": "0.27.7"}}')
    return site, node_pyodide


def test_assemble_dist_writes_api_url(tmp_path):
    site, node_pyodide = fake_build_inputs(tmp_path)

    build.assemble_dist(tmp_path / "dist", {}, site_dir=site, node_pyodide_dir=node_pyodide,
                        api_url="https://abc.lambda-url.eu-west-1.on.aws")

    config = json.loads((tmp_path / "dist" / "config.json").read_text())
    assert config == {"api_url": "https://abc.lambda-url.eu-west-1.on.aws/"}


def test_assemble_dist_default_api_url(tmp_path):
    site, node_pyodide = fake_build_inputs(tmp_path)

    build.assemble_dist(tmp_path / "dist", {}, site_dir=site, node_pyodide_dir=node_pyodide)

    assert json.loads((tmp_path / "dist" / "config.json").read_text()) == {"api_url": "/api/"}


def test_parse_args_api_url():
    assert build.parse_args(["build"]).api_url == "/api/"
    assert build.parse_args(["build", "--api-url", "https://x.example/"]).api_url == "https://x.example/"
    assert build.parse_args(["serve", "--api-url", "https://x.example/"]).api_url == "https://x.example/"


def test_serve_runs_in_venv():
    assert "serve" in build.COMMANDS_RUN_IN_VENV


def test_served_origin_allowed_unless_set():
    environ = {}
    build.allow_served_origin("127.0.0.1", 8731, environ)
    assert environ["DIGITS_ALLOWED_ORIGINS"] == "http://127.0.0.1:8731,http://localhost:8731"

    environ = {"DIGITS_ALLOWED_ORIGINS": "https://digits.example"}
    build.allow_served_origin("127.0.0.1", 8731, environ)
    assert environ["DIGITS_ALLOWED_ORIGINS"] == "https://digits.example"
