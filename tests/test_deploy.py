"""Tests of `build.py deploy` against moto's AWS server on 127.0.0.1, started by these tests.

moto creates Lambda functions without Docker but cannot run them, so nothing here invokes the function.
"""

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import build

pytestmark = pytest.mark.slow

REGION = "us-east-1"
BUCKET = "digits-site-test"
FUNCTION = "digits-api-test"
SITE_ORIGIN = f"http://{BUCKET}.s3-website-us-east-1.amazonaws.com"
IMMUTABLE = "public, max-age=31536000, immutable"
PYODIDE_FOLDER = f"pyodide/{build.pyodide_version(build.read_pyodide_lock())}"
NUMPY_WHEEL = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
AWS_CLI = str(build.VENV_DIR / "bin" / "aws")
ASSUME_ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


# --- pieces ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("region", "origin"), [
    ("us-east-1", "http://b.s3-website-us-east-1.amazonaws.com"),
    ("eu-west-1", "http://b.s3-website-eu-west-1.amazonaws.com"),
    ("eu-central-1", "http://b.s3-website.eu-central-1.amazonaws.com"),
    ("ap-south-1", "http://b.s3-website.ap-south-1.amazonaws.com"),
])
def test_s3_website_origin(region, origin):
    assert build.s3_website_origin("b", region) == origin


def hashed(name: str, data: bytes) -> str:
    """The content-hashed form of `name`, computed here rather than by build.py."""
    stem, _, suffix = name.rpartition(".")
    return f"{stem}.{hashlib.sha256(data).hexdigest()[:8]}.{suffix}"


LOCK_0_27_7 = b'{"info": {"version": "0.27.7"}}'
# A built site's files -> their bytes, with the hashed names computed from those bytes.
BUILT_SITE = {
    "index.html": b"page",
    "config.json": b"{}",
    "models/index.json": b"{}",
    "reports/cnn.html": b"report",
    hashed("app.js", b"app"): b"app",
    hashed("style.css", b"style"): b"style",
    hashed("digits.zip", b"zip"): b"zip",
    hashed("models/mlp.json", b"mlp"): b"mlp",
    "pyodide/0.27.7/pyodide-lock.json": LOCK_0_27_7,
    "pyodide/0.27.7/pyodide.asm.wasm": b"wasm",
    "pyodide/0.27.7/pyodide.js": b"js",
    "pyodide/0.27.7/python_stdlib.zip": b"stdlib",
    f"pyodide/0.27.7/{NUMPY_WHEEL}": b"wheel",
}


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_upload_groups(tmp_path):
    write_files(tmp_path, BUILT_SITE)

    groups = build.upload_groups(tmp_path)

    assert groups == [
        ("application/json", "no-cache", ["models/index.json"]),
        ("application/json", IMMUTABLE, [hashed("models/mlp.json", b"mlp"), "pyodide/0.27.7/pyodide-lock.json"]),
        ("application/octet-stream", IMMUTABLE, [hashed("digits.zip", b"zip"), f"pyodide/0.27.7/{NUMPY_WHEEL}",
                                                 "pyodide/0.27.7/python_stdlib.zip"]),
        ("application/wasm", IMMUTABLE, ["pyodide/0.27.7/pyodide.asm.wasm"]),
        ("text/css; charset=utf-8", IMMUTABLE, [hashed("style.css", b"style")]),
        ("text/html; charset=utf-8", "no-cache", ["reports/cnn.html"]),
        ("text/javascript; charset=utf-8", IMMUTABLE, [hashed("app.js", b"app"), "pyodide/0.27.7/pyodide.js"]),
        ("application/json", "no-cache", ["config.json"]),
        ("text/html; charset=utf-8", "no-cache", ["index.html"]),
    ]


@pytest.mark.parametrize(("name", "data", "cache_control"), [
    ("index.html", b"page", "no-cache"),
    ("config.json", b"{}", "no-cache"),
    ("models/index.json", b"{}", "no-cache"),
    ("reports/cnn.html", b"report", "no-cache"),
    (hashed("app.js", b"app"), b"app", IMMUTABLE),
    (hashed("models/mlp.json", b"mlp"), b"mlp", IMMUTABLE),
    # A name whose hash is not that of the content: edited after the build, or never hashed.
    (hashed("app.js", b"app"), b"edited", "no-cache"),
    ("app.00000000.js", b"app", "no-cache"),
    ("app.js", b"app", "no-cache"),
    ("pyodide/0.27.7/pyodide.js", b"js", IMMUTABLE),
    ("pyodide/pyodide.js", b"js", "no-cache"),
])
def test_cache_control_for(tmp_path, name, data, cache_control):
    write_files(tmp_path, {"pyodide/0.27.7/pyodide-lock.json": LOCK_0_27_7, name: data})

    assert build.cache_control_for(tmp_path, name) == cache_control


@pytest.mark.parametrize("lock", [b'{"info": {"version": "0.28.0"}}', b"not json", None])
def test_cache_control_pyodide_folder_needs_its_lock(tmp_path, lock):
    files = {"pyodide/0.27.7/pyodide.js": b"js"}
    if lock is not None:
        files["pyodide/0.27.7/pyodide-lock.json"] = lock
    write_files(tmp_path, files)

    assert build.cache_control_for(tmp_path, "pyodide/0.27.7/pyodide.js") == "no-cache"


@pytest.mark.parametrize(("stderr", "not_found", "conflict"), [
    ("An error occurred (ResourceNotFoundException) when calling the GetFunction operation: x", True, False),
    ("An error occurred (404) when calling the HeadBucket operation: Not Found", True, False),
    ("An error occurred (ResourceConflictException) when calling the AddPermission operation", False, True),
    ("An error occurred (403) when calling the HeadBucket operation: Forbidden", False, False),
])
def test_aws_cli_error_kinds(stderr, not_found, conflict):
    error = build.AwsCliError("aws x", stderr)

    assert (error.is_not_found(), error.is_conflict()) == (not_found, conflict)
    assert stderr in str(error)


def test_deploy_rejects_python_311():
    with pytest.raises(build.BuildError, match="needs --python 3.12 or later"):
        build.deploy(build.parse_args(["deploy", "--bucket", "b", "--function", "f", "--python", "3.11"]))


def test_parse_args_deploy_defaults():
    args = build.parse_args(["deploy", "--bucket", "b", "--function", "f"])

    assert (args.arch, args.python, args.create, args.dry_run, args.role, args.region) == (
        "x86_64", "3.12", False, False, None, None)
    assert (args.memory, args.timeout, args.site_dir, args.lambda_zip) == (1024, 30, build.DEPLOY_SITE_DIR, None)


# --- against moto ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory):
    """Environment variables that send the AWS CLI to a moto server on 127.0.0.1 with fake credentials."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto server did not start on port {port}: {log.read_text()}", pytrace=False)
            time.sleep(0.2)
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
           "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    yield env
    server.terminate()
    server.wait(timeout=10)


def aws(env, *args):
    completed = subprocess.run([AWS_CLI, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout) if completed.stdout.strip() else {}


def aws_fails(env, *args):
    completed = subprocess.run([AWS_CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    return completed.returncode != 0


@pytest.fixture(scope="module")
def role_arn(aws_env):
    return aws(aws_env, "iam", "create-role", "--role-name", "digits-test",
               "--assume-role-policy-document", ASSUME_ROLE_POLICY)["Role"]["Arn"]


def small_zip(path, text):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("digits/__init__.py", text)
    return path


def code_sha256(path):
    return base64.b64encode(hashlib.sha256(Path(path).read_bytes()).digest()).decode()


def run_deploy(env, *args):
    return subprocess.run([sys.executable, "build.py", "deploy", *args], cwd=build.ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def dry_run(aws_env, role_arn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dry-run")
    completed = run_deploy(aws_env, "--bucket", BUCKET, "--function", FUNCTION, "--create", "--role", role_arn,
                           "--dry-run", "--lambda-zip", str(small_zip(folder / "code.zip", "# dry run")),
                           "--site-dir", str(folder / "site"))
    return completed


@pytest.fixture(scope="module")
def deployed(aws_env, role_arn, dry_run, tmp_path_factory):
    """A first deploy with --create, run after the dry run so that the dry run finds nothing."""
    folder = tmp_path_factory.mktemp("deploy")
    zip_path = small_zip(folder / "code.zip", "# first deploy")
    completed = run_deploy(aws_env, "--bucket", BUCKET, "--function", FUNCTION, "--create", "--role", role_arn,
                           "--arch", "arm64", "--lambda-zip", str(zip_path), "--site-dir", str(folder / "site"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return {"output": completed.stdout, "site": folder / "site", "zip": zip_path}


def test_dry_run_prints_commands(dry_run):
    output = dry_run.stdout

    assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
    assert "would run: aws lambda create-function --function-name digits-api-test --runtime python3.12" in output
    assert "would run: aws lambda create-function-url-config --function-name digits-api-test --auth-type NONE" in output
    assert "would run: aws s3api create-bucket --bucket digits-site-test" in output
    assert (f"--include {PYODIDE_FOLDER}/pyodide.asm.wasm --content-type application/wasm "
            f"--cache-control '{IMMUTABLE}'") in output
    assert "--include index.html --content-type 'text/html; charset=utf-8' --cache-control no-cache" in output
    assert "Dry run: nothing was changed in AWS." in output
    assert "running:" not in output


def test_dry_run_changes_nothing(aws_env, dry_run):
    assert dry_run.returncode == 0
    assert aws_fails(aws_env, "lambda", "get-function", "--function-name", FUNCTION)
    assert aws_fails(aws_env, "s3api", "head-bucket", "--bucket", BUCKET)


def test_deploy_uploads_every_file(aws_env, deployed):
    local = sorted(path.relative_to(deployed["site"]).as_posix()
                   for path in deployed["site"].rglob("*") if path.is_file())
    listed = aws(aws_env, "s3api", "list-objects-v2", "--bucket", BUCKET)

    assert sorted(item["Key"] for item in listed["Contents"]) == local
    assert "index.html" in local
    assert f"{PYODIDE_FOLDER}/pyodide.asm.wasm" in local


# Each pattern matches one file of the built site, because hashed names are known only after the build.
@pytest.mark.parametrize(("pattern", "content_type", "cache_control"), [
    ("index.html", "text/html; charset=utf-8", "no-cache"),
    ("config.json", "application/json", "no-cache"),
    ("models/index.json", "application/json", "no-cache"),
    ("reports/cnn.html", "text/html; charset=utf-8", "no-cache"),
    ("app.*.js", "text/javascript; charset=utf-8", IMMUTABLE),
    ("worker.*.js", "text/javascript; charset=utf-8", IMMUTABLE),
    ("style.*.css", "text/css; charset=utf-8", IMMUTABLE),
    ("digits.*.zip", "application/octet-stream", IMMUTABLE),
    ("models/mlp.*.json", "application/json", IMMUTABLE),
    (f"{PYODIDE_FOLDER}/pyodide.asm.wasm", "application/wasm", IMMUTABLE),
    (f"{PYODIDE_FOLDER}/pyodide.js", "text/javascript; charset=utf-8", IMMUTABLE),
    (f"{PYODIDE_FOLDER}/pyodide-lock.json", "application/json", IMMUTABLE),
])
def test_deploy_content_types(aws_env, deployed, pattern, content_type, cache_control):
    matches = sorted(path.relative_to(deployed["site"]).as_posix() for path in deployed["site"].glob(pattern))
    assert len(matches) == 1, f"{pattern} matches {matches} in the built site"

    head = aws(aws_env, "s3api", "head-object", "--bucket", BUCKET, "--key", matches[0])

    assert (head["ContentType"], head["CacheControl"]) == (content_type, cache_control)


def test_deploy_wheels_cached_long(aws_env, deployed):
    wheels = sorted(path.name for path in (deployed["site"] / PYODIDE_FOLDER).glob("*.whl"))

    assert len(wheels) == 2
    for wheel in wheels:
        head = aws(aws_env, "s3api", "head-object", "--bucket", BUCKET, "--key", f"{PYODIDE_FOLDER}/{wheel}")
        assert (head["ContentType"], head["CacheControl"]) == ("application/octet-stream", IMMUTABLE)


def test_deploy_site_website(aws_env, deployed):
    website = aws(aws_env, "s3api", "get-bucket-website", "--bucket", BUCKET)
    policy = json.loads(aws(aws_env, "s3api", "get-bucket-policy", "--bucket", BUCKET)["Policy"])

    assert website["IndexDocument"] == {"Suffix": "index.html"}
    assert policy["Statement"] == [{"Sid": "PublicReadForWebsite", "Effect": "Allow", "Principal": "*",
                                    "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}]


def test_deploy_function_configuration(aws_env, deployed, role_arn):
    configuration = aws(aws_env, "lambda", "get-function", "--function-name", FUNCTION)["Configuration"]

    assert configuration["Runtime"] == "python3.12"
    assert configuration["Handler"] == "digits.aws_lambda.handler"
    assert configuration["Architectures"] == ["arm64"]
    assert configuration["Role"] == role_arn
    assert configuration["MemorySize"] == 1024
    assert configuration["Timeout"] == 30
    assert configuration["Environment"]["Variables"] == {"DIGITS_ALLOWED_ORIGINS": SITE_ORIGIN}
    assert configuration["CodeSha256"] == code_sha256(deployed["zip"])


def test_deploy_function_url(aws_env, deployed):
    url_config = aws(aws_env, "lambda", "get-function-url-config", "--function-name", FUNCTION)
    site_config = json.loads(read_site_config(aws_env))

    assert url_config["AuthType"] == "NONE"
    assert url_config["Cors"]["AllowOrigins"] == [SITE_ORIGIN]
    assert sorted(url_config["Cors"]["AllowMethods"]) == ["GET", "POST"]
    assert url_config["Cors"]["AllowHeaders"] == ["content-type"]
    assert site_config == {"api_url": url_config["FunctionUrl"].rstrip("/") + "/"}
    assert f"API:  {site_config['api_url']}" in deployed["output"]
    assert f"Site: {SITE_ORIGIN}/" in deployed["output"]


def read_site_config(env):
    completed = subprocess.run([AWS_CLI, "s3", "cp", f"s3://{BUCKET}/config.json", "-"], env=env,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_deploy_public_url_permissions(aws_env, deployed):
    policy = json.loads(aws(aws_env, "lambda", "get-policy", "--function-name", FUNCTION)["Policy"])
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}

    assert statements["FunctionURLAllowPublicAccess"]["Action"] == "lambda:InvokeFunctionUrl"
    assert statements["FunctionURLAllowPublicAccess"]["FunctionUrlAuthType"] == "NONE"
    assert statements["FunctionURLInvokeAllowPublicAccess"]["Action"] == "lambda:InvokeFunction"
    assert statements["FunctionURLInvokeAllowPublicAccess"]["InvokedViaFunctionUrl"] is True
    assert all(statement["Principal"] == "*" for statement in statements.values())


def test_deploy_missing_without_create(aws_env, tmp_path):
    completed = run_deploy(aws_env, "--bucket", "digits-other-bucket", "--function", "digits-other-function",
                           "--lambda-zip", str(small_zip(tmp_path / "code.zip", "")), "--site-dir", str(tmp_path))

    assert completed.returncode == 1
    assert ("error: The function digits-other-function and the bucket digits-other-bucket do not exist in "
            "us-east-1; pass --create") in completed.stderr
    assert aws_fails(aws_env, "s3api", "head-bucket", "--bucket", "digits-other-bucket")


def test_deploy_new_function_needs_role(aws_env, tmp_path):
    completed = run_deploy(aws_env, "--bucket", "digits-other-bucket", "--function", "digits-other-function",
                           "--create", "--lambda-zip", str(small_zip(tmp_path / "code.zip", "")))

    assert completed.returncode == 1
    assert "needs --role ARN" in completed.stderr


def test_deploy_packages_for_runtime(aws_env, role_arn, tmp_path, monkeypatch):
    packaged = []
    zip_path = small_zip(tmp_path / "code.zip", "")
    monkeypatch.setattr(build, "package_lambda", lambda *args: packaged.append(args) or zip_path)
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, aws_env[name])

    build.deploy(build.parse_args(["deploy", "--bucket", "digits-third", "--function", "digits-third", "--create",
                                   "--role", role_arn, "--dry-run", "--arch", "arm64", "--python", "3.13",
                                   "--site-dir", str(tmp_path / "site")]))

    assert packaged == [(build.LAMBDA_ZIP, "arm64", "3.13")]


def test_deploy_updates_existing(aws_env, deployed, tmp_path):
    """A second deploy without --create updates the code and keeps environment variables set by hand."""
    aws(aws_env, "lambda", "update-function-configuration", "--function-name", FUNCTION, "--environment",
        json.dumps({"Variables": {"DIGITS_ALLOWED_ORIGINS": "http://old.example", "DIGITS_DEFAULT_MODEL": "mlp"}}))
    new_zip = small_zip(tmp_path / "code.zip", "# second deploy")

    completed = run_deploy(aws_env, "--bucket", BUCKET, "--function", FUNCTION, "--arch", "arm64",
                           "--site-origin", "https://digits.example", "--lambda-zip", str(new_zip),
                           "--site-dir", str(tmp_path / "site"))

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "running: aws lambda update-function-code" in completed.stdout
    assert "create-function" not in completed.stdout
    configuration = aws(aws_env, "lambda", "get-function", "--function-name", FUNCTION)["Configuration"]
    assert configuration["CodeSha256"] == code_sha256(new_zip)
    assert configuration["Environment"]["Variables"] == {"DIGITS_ALLOWED_ORIGINS": "https://digits.example",
                                                         "DIGITS_DEFAULT_MODEL": "mlp"}
    url_config = aws(aws_env, "lambda", "get-function-url-config", "--function-name", FUNCTION)
    assert url_config["Cors"]["AllowOrigins"] == ["https://digits.example"]


def test_content_type_falls_back_to_mimetypes():
    assert build.content_type_for(Path("photo.jpg")) == "image/jpeg"
    assert build.content_type_for(Path("pyodide.asm.wasm")) == "application/wasm"


def test_deploy_replaces_built_site(tmp_path):
    write_files(tmp_path, {"index.html": b"page", "pyodide/0.27.7/pyodide-lock.json": LOCK_0_27_7})

    build.check_replaceable_site_dir(tmp_path)


def test_deploy_refuses_to_replace_unrelated_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")

    with pytest.raises(build.BuildError, match="is not empty and is not a site built by build.py"):
        build.check_replaceable_site_dir(tmp_path)

    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_stale_keys(tmp_path):
    write_files(tmp_path, {"index.html": b"<p>", "models/index.json": b"{}"})
    keys = ["index.html", "app.00000000.js", "models/index.json", "models/cnn.11111111.json"]
    assert build.stale_keys(tmp_path, keys) == ["app.00000000.js", "models/cnn.11111111.json"]
    assert build.stale_keys(tmp_path, []) == []


def test_deploy_stale_files_kept_then_deleted(aws_env, deployed, tmp_path):
    old_file = tmp_path / "old.js"
    old_file.write_text("// from an earlier deploy")
    aws(aws_env, "s3api", "put-object", "--bucket", BUCKET, "--key", "app.00000000.js", "--body", str(old_file))
    common = ("--bucket", BUCKET, "--function", FUNCTION, "--arch", "arm64", "--lambda-zip", str(deployed["zip"]))

    kept_run = run_deploy(aws_env, *common, "--site-dir", str(tmp_path / "site-1"))
    assert kept_run.returncode == 0, kept_run.stdout + kept_run.stderr
    assert (f"Kept 1 file in s3://{BUCKET}/ that the new site does not have, such as app.00000000.js" in kept_run.stdout)
    assert aws(aws_env, "s3api", "head-object", "--bucket", BUCKET, "--key", "app.00000000.js")

    dry_run_result = run_deploy(aws_env, *common, "--delete-stale", "--dry-run", "--site-dir", str(tmp_path / "site-2"))
    assert dry_run_result.returncode == 0, dry_run_result.stdout + dry_run_result.stderr
    assert 'would run: aws s3api delete-objects --bucket digits-site-test --delete' in dry_run_result.stdout
    assert aws(aws_env, "s3api", "head-object", "--bucket", BUCKET, "--key", "app.00000000.js")

    deleted_run = run_deploy(aws_env, *common, "--delete-stale", "--site-dir", str(tmp_path / "site-3"))
    assert deleted_run.returncode == 0, deleted_run.stdout + deleted_run.stderr
    assert f"Deleted 1 file that the new site does not have from s3://{BUCKET}/" in deleted_run.stdout
    assert aws_fails(aws_env, "s3api", "head-object", "--bucket", BUCKET, "--key", "app.00000000.js")
    assert aws(aws_env, "s3api", "head-object", "--bucket", BUCKET, "--key", "index.html")
