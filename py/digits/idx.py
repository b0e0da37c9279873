"""Reading MNIST's IDX files, gzip-compressed or raw."""

import gzip
import math
import os

import numpy as np

from .errors import IdxFormatError

# The IDX type byte of unsigned bytes, the only element type MNIST uses.
UNSIGNED_BYTE = 0x08

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx_bytes(path):
    """Return the IDX bytes of path, decompressing it when it starts with the gzip magic."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as error:
        raise IdxFormatError(f"{path}: cannot read ({error.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise IdxFormatError(f"{path}: corrupt or truncated gzip data ({error})") from None
    return raw


def parse_idx(raw, name="IDX data"):
    """Parse IDX bytes into an array of unsigned bytes, checking magic number and size."""
    if len(raw) < 4:
        raise IdxFormatError(f"{name}: only {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(f"{name}: bad magic number {raw[:4].hex()}: an IDX file starts with two zero bytes")
    if raw[2] != UNSIGNED_BYTE:
        raise IdxFormatError(f"{name}: element type 0x{raw[2]:02x} is not supported; MNIST uses unsigned bytes (0x08)")
    dimensions = raw[3]
    if dimensions == 0:
        raise IdxFormatError(f"{name}: header declares zero dimensions")
    header_size = 4 + 4 * dimensions
    if len(raw) < header_size:
        raise IdxFormatError(f"{name}: truncated header: {dimensions} dimensions need {header_size} bytes, file has {len(raw)}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dimensions))
    expected = header_size + math.prod(shape)  # Python integers, so a forged header cannot overflow
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise IdxFormatError(f"{name}: {state}: shape {list(shape)} needs {expected} bytes, file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx(path):
    return parse_idx(read_idx_bytes(path), os.fspath(path))


def find_idx_file(directory, stem):
    for candidate in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise IdxFormatError(f"{os.path.join(directory, stem)}(.gz) not found: the folder must hold the four MNIST IDX files")


def load_mnist(directory, split):
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) of the "train" or "test" split."""
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_stem, label_stem = MNIST_FILES[split]
    image_path = find_idx_file(directory, image_stem)
    label_path = find_idx_file(directory, label_stem)
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IdxFormatError(f"{image_path}: expected images of shape [N, 28, 28], got {list(images.shape)}")
    if labels.ndim != 1:
        raise IdxFormatError(f"{label_path}: expected a 1-dimensional list of labels, got shape {list(labels.shape)}")
    if len(labels) == 0:
        raise IdxFormatError(f"{label_path} contains no labels; the {split} split needs at least one labelled image")
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels; the counts must match")
    if labels.max() > 9:
        raise IdxFormatError(f"{label_path}: labels must be digits 0-9, found {int(labels.max())}")
    return images, labels
