"""The model file: a network as compact, exact JSON, and the Model that runs it.

A file contains the architecture as a list of layers, each array as
{"shape": [...], "dtype": "float32" | "float16", "data": base64 of little-endian bytes},
the input normalisation, and what training recorded (test accuracy, data checksums,
settings, per-epoch history).
"""

import base64
import hashlib
import json
import math
import os

import numpy as np

from .errors import ModelFileError
from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

FORMAT = "digits-model"
FORMAT_VERSION = 1
INPUT_SHAPE = (28, 28, 1)
CLASSES = 10
ARRAY_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}

# The arrays each layer type carries, and how to build the layer from them.
LAYER_TYPES = {
    "flatten": ((), lambda spec, arrays: Flatten()),
    "relu": ((), lambda spec, arrays: ReLU()),
    "dense": (("weight", "bias"), lambda spec, arrays: Dense(arrays["weight"], arrays["bias"])),
    "conv2d": (("weight", "bias"), lambda spec, arrays: Conv2D(arrays["weight"], arrays["bias"], spec.get("padding", "same"))),
    "maxpool2d": ((), lambda spec, arrays: MaxPool2D(spec.get("size", 2))),
}


def encode_array(array, dtype="float32"):
    """Encode a numpy array for the model file, rounding to float16 when asked."""
    if dtype not in ARRAY_DTYPES:
        raise ValueError(f"unsupported array dtype {dtype!r}; use one of {sorted(ARRAY_DTYPES)}")
    data = np.ascontiguousarray(array, dtype=ARRAY_DTYPES[dtype])
    return {"shape": list(data.shape), "dtype": dtype, "data": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(spec, where):
    """Decode one array of a model file, checking that its bytes fit its shape and dtype."""
    if not isinstance(spec, dict):
        raise ModelFileError(f"{where}: expected an array object with shape, dtype and data")
    for key in ("shape", "dtype", "data"):
        if key not in spec:
            raise ModelFileError(f"{where}: missing key {key!r}")
    shape = spec["shape"]
    if not isinstance(shape, list) or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape):
        raise ModelFileError(f"{where}: shape must be a list of positive integers, got {shape!r}")
    if spec["dtype"] not in ARRAY_DTYPES:
        raise ModelFileError(f"{where}: dtype {spec['dtype']!r} is not supported; expected one of {sorted(ARRAY_DTYPES)}")
    dtype = ARRAY_DTYPES[spec["dtype"]]
    try:
        raw = base64.b64decode(spec["data"], validate=True)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where}: data is not valid base64 ({error})") from None
    expected_bytes = math.prod(shape) * dtype.itemsize
    if len(raw) != expected_bytes:
        raise ModelFileError(f"{where}: data has {len(raw)} bytes but shape {shape} of {spec['dtype']} needs {expected_bytes}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ModelFileError(f"{where}: contains NaN or infinite values")
    return array


class Model:
    """A loaded network: normalises 28x28 images and runs the layers to get logits."""

    def __init__(self, name, layers, mean, std, metadata=None):
        self.name = name
        self.layers = layers
        self.mean = float(mean)
        self.std = float(std)
        self.metadata = metadata or {}
        self.version = self.metadata.get("version", "")
        self.test_accuracy = self.metadata.get("test_accuracy")
        check_layer_shapes(layers)

    def logits(self, images):
        """Run the network on images of shape (N, 28, 28) with values in 0..1."""
        x = np.asarray(images, dtype=np.float32).reshape(-1, *INPUT_SHAPE)
        x = (x - np.float32(self.mean)) / np.float32(self.std)
        for layer in self.layers:
            x = layer(x)
        return x

    def predict_proba(self, images):
        """Return softmax probabilities, shape (N, 10), in float64."""
        return softmax(self.logits(images).astype(np.float64))

    def describe(self):
        return {
            "name": self.name,
            "version": self.version,
            "test_accuracy": self.test_accuracy,
            "layers": [repr(layer) for layer in self.layers],
        }

    def __repr__(self):
        return f"Model({self.name!r}, version={self.version!r}, layers=[{', '.join(map(repr, self.layers))}])"


def softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=-1, keepdims=True)


def check_layer_shapes(layers):
    shape = INPUT_SHAPE
    for layer in layers:
        shape = layer.output_shape(shape)
    if shape != (CLASSES,):
        raise ModelFileError(f"the last layer must give {CLASSES} outputs, one per digit, but gives shape {list(shape)}")


def parse_layer(spec, index):
    where = f"layer {index}"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ModelFileError(f"{where}: expected an object with a 'type'")
    if spec["type"] not in LAYER_TYPES:
        raise ModelFileError(f"{where}: unknown layer type {spec['type']!r}; supported: {', '.join(sorted(LAYER_TYPES))}")
    array_names, build = LAYER_TYPES[spec["type"]]
    arrays = {}
    for array_name in array_names:
        if array_name not in spec:
            raise ModelFileError(f"{where} ({spec['type']}): missing key {array_name!r}")
        arrays[array_name] = decode_array(spec[array_name], f"{where} ({spec['type']}) {array_name}")
    check_layer_arrays(spec, arrays, where)
    return build(spec, arrays)


def check_layer_arrays(spec, arrays, where):
    kind = spec["type"]
    if kind == "dense":
        weight, bias = arrays["weight"], arrays["bias"]
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ModelFileError(
                f"{where} (dense): weight must be [inputs, outputs] and bias [outputs], "
                f"got weight {list(weight.shape)} and bias {list(bias.shape)}")
    elif kind == "conv2d":
        weight, bias = arrays["weight"], arrays["bias"]
        if weight.ndim != 4 or bias.shape != (weight.shape[3],):
            raise ModelFileError(
                f"{where} (conv2d): weight must be [kernel height, kernel width, in channels, out channels] "
                f"and bias [out channels], got weight {list(weight.shape)} and bias {list(bias.shape)}")
        if spec.get("padding", "same") not in ("same", "valid"):
            raise ModelFileError(f"{where} (conv2d): padding must be 'same' or 'valid', got {spec['padding']!r}")
    elif kind == "maxpool2d":
        size = spec.get("size", 2)
        if not isinstance(size, int) or isinstance(size, bool) or size < 2:
            raise ModelFileError(f"{where} (maxpool2d): size must be an integer of at least 2, got {size!r}")


def read_model_json(source):
    """Accept a dict, JSON text or bytes, or a path, and return the parsed dict."""
    if isinstance(source, dict):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        text, origin = bytes(source).decode("utf-8", errors="replace"), "model data"
    elif isinstance(source, str) and source.lstrip().startswith("{"):
        text, origin = source, "model data"
    elif isinstance(source, (str, os.PathLike)):
        origin = os.fspath(source)
        try:
            with open(source, encoding="utf-8") as file:
                text = file.read()
        except OSError as error:
            raise ModelFileError(f"cannot read model file {origin}: {error.strerror}") from None
    else:
        raise ModelFileError(f"expected a model file path, JSON text or dict, got {type(source).__name__}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{origin} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{origin} must contain a JSON object")
    return data


def load_model(source):
    """Load a model file (path, JSON text or bytes, or dict) and check every shape in it."""
    data = read_model_json(source)
    if data.get("format") != FORMAT:
        raise ModelFileError(f"not a digits model file: 'format' must be {FORMAT!r}, got {data.get('format')!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"unsupported model format_version {data.get('format_version')!r}; this package reads version {FORMAT_VERSION}")
    for key in ("name", "input", "layers"):
        if key not in data:
            raise ModelFileError(f"model file is missing key {key!r}")
    normalisation = data["input"]
    if not isinstance(normalisation, dict) or [normalisation.get("height"), normalisation.get("width")] != [28, 28]:
        raise ModelFileError("model 'input' must be {\"height\": 28, \"width\": 28, \"mean\": ..., \"std\": ...}")
    mean, std = normalisation.get("mean"), normalisation.get("std")
    if not all(isinstance(value, (int, float)) and math.isfinite(value) for value in (mean, std)) or std <= 0:
        raise ModelFileError(f"model input mean and std must be finite numbers with std > 0, got mean={mean!r} std={std!r}")
    if not isinstance(data["layers"], list) or not data["layers"]:
        raise ModelFileError("model 'layers' must be a non-empty list")
    layers = [parse_layer(spec, index) for index, spec in enumerate(data["layers"])]
    metadata = {key: value for key, value in data.items() if key not in ("layers", "input")}
    return Model(str(data["name"]), layers, mean, std, metadata)


def model_to_dict(name, layers, mean, std, dtype="float32", **metadata):
    """Build the JSON-ready dict of a model file.

    layers: a list of dicts such as {"type": "dense", "weight": ndarray, "bias": ndarray};
    numpy arrays are encoded with dtype, other values are kept as they are.
    metadata: test_accuracy, training_data_sha256, training, history and anything else to keep.
    """
    encoded_layers = []
    for layer in layers:
        encoded = {}
        for key, value in layer.items():
            encoded[key] = encode_array(value, dtype) if isinstance(value, np.ndarray) else value
        encoded_layers.append(encoded)
    # The version names the weights themselves, so two files with equal arrays share it.
    digest = hashlib.sha256()
    for layer in encoded_layers:
        for value in layer.values():
            if isinstance(value, dict):
                digest.update(value["data"].encode("ascii"))
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": digest.hexdigest()[:12],
        "input": {"height": 28, "width": 28, "mean": float(mean), "std": float(std)},
        "layers": encoded_layers,
        **metadata,
    }


def save_model(path, name, layers, mean, std, dtype="float32", **metadata):
    """Write a model file as compact JSON and return the dict written."""
    data = model_to_dict(name, layers, mean, std, dtype, **metadata)
    load_model(data)  # refuse to write a file that could not be loaded back
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file, separators=(",", ":"))
    return data
