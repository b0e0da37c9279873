import copy
import json
import math

import numpy as np
import pytest

import digits
from digits import ModelFileError, load_model
from digits.layers import Conv2D, MaxPool2D
from digits.model_file import decode_array, encode_array, model_to_dict


def tiny_layers():
    """784 -> 2 -> 10 with weights chosen so the forward pass can be done by hand."""
    hidden_weight = np.zeros((784, 2), np.float32)
    hidden_weight[0] = [1.0, -1.0]
    hidden_weight[1] = [2.0, 4.0]
    output_weight = np.zeros((2, 10), np.float32)
    output_weight[0, 0] = 1.0
    output_weight[1, 1] = 1.0
    output_bias = np.zeros(10, np.float32)
    output_bias[2] = -1.0
    return [
        {"type": "flatten"},
        {"type": "dense", "weight": hidden_weight, "bias": np.array([0.5, 0.0], np.float32)},
        {"type": "relu"},
        {"type": "dense", "weight": output_weight, "bias": output_bias},
    ]


def tiny_model_dict(mean=0.0, std=1.0, dtype="float32"):
    return model_to_dict("tiny", tiny_layers(), mean, std, dtype, test_accuracy=0.5)


def test_forward_pass_by_hand():
    model = load_model(tiny_model_dict())
    image = np.zeros((28, 28), np.float32)
    image[0, 0] = 1.0
    image[0, 1] = 0.5

    logits = model.logits(image[None])[0]
    probabilities = model.predict_proba(image[None])[0]

    # hidden = relu([1*1 + 0.5*2 + 0.5, 1*-1 + 0.5*4]) = [2.5, 1.0]
    assert logits.tolist() == [2.5, 1.0, -1.0, 0, 0, 0, 0, 0, 0, 0]
    exps = [math.exp(v) for v in [2.5, 1.0, -1.0] + [0.0] * 7]
    assert probabilities == pytest.approx([e / sum(exps) for e in exps], abs=1e-12)


def test_forward_pass_applies_normalisation():
    model = load_model(tiny_model_dict(mean=0.5, std=2.0))
    image = np.zeros((28, 28), np.float32)
    image[0, 0] = 1.0

    logits = model.logits(image[None])[0]

    # input = (x - 0.5) / 2: pixel 0 -> 0.25, every other pixel -> -0.25
    # hidden = relu([0.25*1 - 0.25*2 + 0.5, 0.25*-1 - 0.25*4]) = [0.25, 0]
    assert logits[:3].tolist() == [0.25, 0.0, -1.0]


def test_conv2d_valid_by_hand():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    layer = Conv2D(np.ones((2, 2, 1, 1), np.float32), np.array([0.5], np.float32), padding="valid")

    assert layer(x)[0, :, :, 0].tolist() == [[12.5, 16.5], [24.5, 28.5]]


def test_conv2d_same_keeps_size_and_orders_channels():
    x = np.arange(18, dtype=np.float32).reshape(1, 3, 3, 2)
    weight = np.zeros((3, 3, 2, 2), np.float32)
    weight[1, 1, 0, 1] = 1.0  # output channel 1 copies input channel 0
    weight[1, 1, 1, 0] = 1.0  # output channel 0 copies input channel 1
    layer = Conv2D(weight, np.zeros(2, np.float32))

    out = layer(x)

    assert out.shape == (1, 3, 3, 2)
    assert out[..., 0].tolist() == x[..., 1].tolist()
    assert out[..., 1].tolist() == x[..., 0].tolist()


def test_conv2d_matches_direct_sum():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    weight = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.zeros((2, 5, 6, 4))
    for i in range(5):
        for j in range(6):
            window = padded[:, i:i + 3, j:j + 3, :]
            expected[:, i, j, :] = np.einsum("nhwc,hwco->no", window, weight) + bias

    assert np.allclose(Conv2D(weight, bias)(x), expected, atol=1e-5)


def test_maxpool_by_hand():
    x = np.array([[1, 2, 5, 0], [3, 4, 1, 1], [0, 0, 9, 8], [0, 7, 6, 5]], np.float32).reshape(1, 4, 4, 1)

    assert MaxPool2D(2)(x)[0, :, :, 0].tolist() == [[4, 5], [7, 9]]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_save_and_load_round_trip(tmp_path, dtype):
    path = tmp_path / "tiny.json"
    written = digits.save_model(path, "tiny", tiny_layers(), 0.1307, 0.3081, dtype, test_accuracy=0.5, history=[{"epoch": 1}])

    model = load_model(path)

    assert model.name == "tiny"
    assert model.version == written["version"]
    assert model.test_accuracy == 0.5
    assert model.metadata["history"] == [{"epoch": 1}]
    assert model.layers[1].weight.tolist() == tiny_layers()[1]["weight"].tolist()
    assert json.loads(path.read_text())["layers"][1]["weight"]["dtype"] == dtype


def test_encode_array_is_little_endian_base64():
    encoded = encode_array(np.array([1.0, -2.0], np.float32))

    assert encoded == {"shape": [2], "dtype": "float32", "data": "AACAPwAAAMA="}
    assert decode_array(encoded, "x").tolist() == [1.0, -2.0]


def test_version_names_the_weights():
    first = tiny_model_dict()
    layers = tiny_layers()
    layers[1]["bias"][0] = 0.25

    assert first["version"] == tiny_model_dict()["version"]
    assert model_to_dict("tiny", layers, 0, 1)["version"] != first["version"]


def broken(change):
    data = copy.deepcopy(tiny_model_dict())
    change(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("layers"), "missing key 'layers'"),
    (lambda d: d["layers"][1].pop("bias"), r"layer 1 \(dense\): missing key 'bias'"),
    (lambda d: d["layers"][1]["bias"].update(shape=[3]), r"layer 1 \(dense\) bias: data has 8 bytes but shape \[3\]"),
    (lambda d: d["layers"][3]["weight"].update(shape=[5, 10], data=encode_array(np.zeros((5, 10)))["data"]),
     "dense layer expects input of size 5 but the previous layer gives shape"),
    (lambda d: d["layers"].pop(), "the last layer must give 10 outputs"),
    (lambda d: d["layers"][2].update(type="gelu"), "unknown layer type 'gelu'"),
    (lambda d: d["layers"][1]["weight"].update(dtype="int8"), "dtype 'int8' is not supported"),
    (lambda d: d["layers"][1]["weight"].update(data="***"), "not valid base64"),
    (lambda d: d["layers"][1]["bias"].update(encode_array(np.array([np.nan, 0.0]))), "NaN or infinite"),
    (lambda d: d.update(format="something-else"), "not a digits model file"),
    (lambda d: d["input"].update(std=0), "std > 0"),
    (lambda d: d.update(layers=[]), "non-empty list"),
])
def test_load_model_rejects_broken_file(change, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(broken(change))


def test_load_model_rejects_invalid_json(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(tiny_model_dict())[:200])

    with pytest.raises(ModelFileError, match=r"cut.json is not valid JSON"):
        load_model(path)


def test_load_model_names_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read model file .*missing.json"):
        load_model(tmp_path / "missing.json")
