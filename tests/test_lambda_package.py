"""Tests of `build.py package-lambda`: what goes into the zip, and that the unzipped package classifies
an MNIST digit in a Python that can import nothing but the package."""

import base64
import io
import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import build
import digits

LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
LOCAL_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())


# --- pieces ---------------------------------------------------------------------------------------

def test_pip_options_for_runtime():
    assert build.lambda_pip_options("3.12", "arm64") == [
        "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.12",
        "--platform", "manylinux2014_aarch64", "--platform", "manylinux_2_28_aarch64"]
    assert build.lambda_pip_options("3.13", "x86_64")[-3:] == ["manylinux2014_x86_64", "--platform",
                                                               "manylinux_2_28_x86_64"]


@pytest.mark.parametrize("text", ["3.12", "3.11", "3.14"])
def test_python_version_accepted(text):
    assert build.parse_python_version(text) == (3, int(text.split(".")[1]))


@pytest.mark.parametrize("text", ["3.10", "2.7", "3", "3.12.1", "python3.12", ""])
def test_python_version_rejected(text):
    with pytest.raises(build.BuildError, match="not a supported Lambda Python version"):
        build.parse_python_version(text)


def fake_tree(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def write_model(folder, name):
    layers = [{"type": "flatten"}, {"type": "dense", "weight": np.zeros((784, 10), np.float32),
                                    "bias": np.zeros(10, np.float32)}]
    digits.save_model(folder / f"{name}.json", name, layers, 0.1307, 0.3081)


def test_package_files_selected(tmp_path):
    package = tmp_path / "digits"
    fake_tree(package, ["__init__.py", "aws_lambda.py", "__pycache__/x.cpython-311.pyc", "stray.pyc"])
    models = tmp_path / "models"
    models.mkdir()
    write_model(models, "mlp")
    (models / "index.json").write_text("{}")
    site_packages = tmp_path / "site-packages"
    fake_tree(site_packages, ["numpy/__init__.py", "numpy/_core/tests/test_a.py", "numpy/tests/test_b.py",
                              "numpy/__pycache__/c.pyc", "numpy.libs/libopenblas.so", "bin/f2py",
                              "numpy-2.4.6.dist-info/LICENSE.txt", "PIL/Image.py"])

    files = build.lambda_package_files(package, models, site_packages)

    assert [name for name, _ in files] == [
        "digits/__init__.py", "digits/aws_lambda.py", "models/mlp.json", "PIL/Image.py", "numpy/__init__.py",
        "numpy-2.4.6.dist-info/LICENSE.txt", "numpy.libs/libopenblas.so"]


def test_package_needs_a_model(tmp_path):
    package = tmp_path / "digits"
    fake_tree(package, ["__init__.py"])
    (tmp_path / "models").mkdir()

    with pytest.raises(build.BuildError, match="has no model files"):
        build.lambda_package_files(package, tmp_path / "models", tmp_path)


def test_zip_reproducible_and_readable(tmp_path):
    fake_tree(tmp_path / "in", ["a.py", "lib.so"])
    (tmp_path / "in" / "lib.so").chmod(0o700)
    files = [("a.py", tmp_path / "in" / "a.py"), ("x/lib.so", tmp_path / "in" / "lib.so")]

    size = build.write_lambda_zip(files, tmp_path / "one.zip")
    build.write_lambda_zip(files, tmp_path / "two.zip")

    assert size == len("a.py") + len("lib.so")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert modes == {"a.py": 0o644, "x/lib.so": 0o755}


def test_parse_args_package_lambda():
    args = build.parse_args(["package-lambda", "--arch", "arm64", "--python", "3.13", "--out", "x.zip"])

    assert (args.arch, args.python, args.out, args.models) == ("arm64", "3.13", Path("x.zip"), build.SITE_DIR / "models")
    assert build.parse_args(["package-lambda"]).out == build.ROOT / "dist" / "lambda.zip"


# --- the real package -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory):
    """The package for this machine's Python and architecture, built by `build.py package-lambda`."""
    if LOCAL_ARCHITECTURE is None:
        pytest.fail(f"Lambda has no architecture for this machine ({platform.machine()}); "
                    "run this test on x86_64 or arm64", pytrace=False)
    zip_path = tmp_path_factory.mktemp("lambda") / "lambda.zip"
    completed = subprocess.run(
        [sys.executable, "build.py", "package-lambda", "--python", LOCAL_PYTHON, "--arch", LOCAL_ARCHITECTURE,
         "--out", str(zip_path)], cwd=build.ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return zip_path, completed.stdout


@pytest.fixture(scope="module")
def unzipped(lambda_zip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(lambda_zip[0]) as archive:
        archive.extractall(folder)
    return folder


@pytest.mark.slow
def test_package_prints_size(lambda_zip):
    zip_path, output = lambda_zip

    assert f"({zip_path.stat().st_size} bytes)" in output
    assert f"for python{LOCAL_PYTHON} on {LOCAL_ARCHITECTURE}" in output


@pytest.mark.slow
def test_package_contents(lambda_zip):
    with zipfile.ZipFile(lambda_zip[0]) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    model_files = sorted(path.name for path in (build.SITE_DIR / "models").glob("*.json") if path.name != "index.json")

    assert {name for name in top_level if not name.endswith(".dist-info")} == {
        "digits", "models", "numpy", "numpy.libs", "PIL", "pillow.libs"}
    pinned = [requirement.lower().replace("==", "-") for requirement in build.read_requirements(build.PYPROJECT)]
    assert sorted(name for name in top_level if name.endswith(".dist-info")) == sorted(
        f"{pin}.dist-info" for pin in pinned)
    assert sorted(name.split("/")[1] for name in names if name.startswith("models/")) == model_files
    assert "digits/aws_lambda.py" in names
    assert not [name for name in names if "/tests/" in name or "__pycache__" in name or name.endswith(".pyc")]


CLASSIFY_IN_PACKAGE = """
import json, sys
import numpy, PIL
import digits.aws_lambda as api

pixels, png = json.load(open(sys.argv[1]))
answers = {}
for kind, value in (("pixels", pixels), ("image", png)):
    event = {"version": "2.0", "routeKey": "$default", "rawPath": "/classify", "rawQueryString": "",
             "headers": {"content-type": "application/json"},
             "requestContext": {"http": {"method": "POST", "path": "/classify"}},
             "body": json.dumps({kind: value}), "isBase64Encoded": False}
    answers[kind] = api.handler(event, None)
print(json.dumps({"answers": answers, "numpy": numpy.__file__, "PIL": PIL.__file__, "digits": api.__file__,
                  "path": sys.path, "no_site": sys.flags.no_site}))
"""


@pytest.mark.slow
@pytest.mark.mnist
def test_package_classifies_mnist_digit(unzipped, mnist_dir, tmp_path):
    images, labels = digits.load_mnist(mnist_dir, "test")
    assert labels[0] == 7
    buffer = io.BytesIO()
    Image.fromarray(255 - images[0]).save(buffer, format="PNG")  # dark ink on white paper, like a photo
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps([(images[0] / 255).ravel().tolist(), base64.b64encode(buffer.getvalue()).decode()]))

    # -S leaves out site-packages, so only the unzipped folder (the working directory) provides imports.
    completed = subprocess.run([sys.executable, "-S", "-c", CLASSIFY_IN_PACKAGE, str(inputs)], cwd=unzipped,
                               env={"PYTHONPATH": "", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                               timeout=120)

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["no_site"] == 1
    for module in ("numpy", "PIL", "digits"):
        assert Path(report[module]).is_relative_to(unzipped), f"{module} came from {report[module]}"
    for kind in ("pixels", "image"):
        response = report["answers"][kind]
        assert response["statusCode"] == 200, response["body"]
        answer = json.loads(response["body"])
        assert answer["label"] == 7, f"{kind}: {answer['probabilities']}"
        assert answer["model"]["name"] in {path.stem for path in (unzipped / "models").glob("*.json")}
