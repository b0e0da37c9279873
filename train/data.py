"""MNIST for training: find or download the four IDX files, load them, record their checksums."""

import dataclasses
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from digits import load_mnist
from digits.idx import MNIST_FILES, find_idx_file, read_idx_bytes

# md5 sums of the original gzip files, as listed in torchvision's MNIST.resources
# (torchvision/datasets/mnist.py in github.com/pytorch/vision). md5 catches
# truncated and corrupted downloads, but not a file forged on purpose.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# Public copies of the original files, tried in this order.
# NOTE: the tests never contact these hosts. They run the download code against a
# local server, so a mirror that moves or goes offline shows up only in real use.
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

DOWNLOAD_TIMEOUT_SECONDS = 60
CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """No mirror returned a file with the published checksum."""


class DataNotFoundError(FileNotFoundError):
    """The folder given for MNIST does not exist."""


@dataclasses.dataclass
class Mnist:
    """The training and test split as uint8 arrays, and the sha256 of each uncompressed IDX file."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    sha256: dict

    def subset(self, train_count, test_count):
        """Return the first train_count training and test_count test images; checksums stay those of the full files."""
        return Mnist(self.train_images[:train_count], self.train_labels[:train_count],
                     self.test_images[:test_count], self.test_labels[:test_count], self.sha256)


def find_mnist(data_dir=None, environ=os.environ, cache_dir=None, mirrors=MIRRORS, checksums=MNIST_MD5, log=print):
    """Return the folder of the MNIST files: data_dir, else $MNIST_DIR, else a download cache.

    Only the download is checked against published checksums, because the files
    in a folder given by the user may be a faithful copy in another compression.
    """
    for folder, origin in ((data_dir, "--data"), (environ.get("MNIST_DIR"), "MNIST_DIR")):
        if folder:
            if not Path(folder).is_dir():
                raise DataNotFoundError(f"{origin} {folder} is not a folder. Pass a folder that contains the four MNIST IDX files.")
            return Path(folder)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(environ)
    download_mnist(cache_dir, mirrors, checksums, log)
    return cache_dir


def default_cache_dir(environ=os.environ):
    cache_home = environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache_home) / "digits" / "mnist"


def download_mnist(cache_dir, mirrors=MIRRORS, checksums=MNIST_MD5, log=print):
    """Download every file of checksums into cache_dir, unless a copy with the right checksum is there."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, expected_md5 in checksums.items():
        path = cache_dir / name
        if path.exists():
            actual_md5 = file_md5(path)
            if actual_md5 == expected_md5:
                continue
            log(f"{path}: md5 {actual_md5} does not match the published {expected_md5}; removing it and downloading again")
            path.unlink()
        download_file(name, mirrors, expected_md5, path, log)


def download_file(name, mirrors, expected_md5, destination, log=print):
    """Download name from the first mirror that has it with the expected md5, into destination.

    The file is written next to destination with a .part suffix and renamed only
    once its checksum matches, so a failed or corrupt download never stays in the cache.
    """
    partial = destination.with_name(destination.name + ".part")
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        log(f"downloading {url}")
        try:
            actual_md5 = fetch(url, partial)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            partial.unlink(missing_ok=True)
            failures.append(f"{url}: {error}")
            log(f"download failed: {url}: {error}")
            continue
        if actual_md5 != expected_md5:
            partial.unlink()
            failures.append(f"{url}: md5 {actual_md5} does not match the published {expected_md5}")
            log(f"rejected {url}: md5 {actual_md5} does not match the published {expected_md5}; the file was removed")
            continue
        partial.replace(destination)
        return
    raise DownloadError(
        f"download of {name} failed: " + "; ".join(failures)
        + ". Download the four MNIST files by other means and pass --data DIR or set MNIST_DIR.")


def fetch(url, path):
    """Write the body at url to path and return its md5."""
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response, open(path, "wb") as file:
        while chunk := response.read(CHUNK_BYTES):
            digest.update(chunk)
            file.write(chunk)
    return digest.hexdigest()


def file_md5(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def load(directory):
    """Load both splits from directory and hash the uncompressed bytes of the four files read."""
    train_images, train_labels = load_mnist(directory, "train")
    test_images, test_labels = load_mnist(directory, "test")
    return Mnist(train_images, train_labels, test_images, test_labels, idx_sha256(directory))


def idx_sha256(directory):
    """Return the sha256 of each uncompressed MNIST file, keyed "train-images", ..., "test-labels"."""
    checksums = {}
    for split, stems in MNIST_FILES.items():
        for kind, stem in zip(("images", "labels"), stems):
            raw = read_idx_bytes(find_idx_file(directory, stem))
            checksums[f"{split}-{kind}"] = hashlib.sha256(raw).hexdigest()
    return checksums
