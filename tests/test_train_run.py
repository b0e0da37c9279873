"""End to end: `python -m train --quick` writes a loadable model file, the same one for the same seed, for the MLP and the CNN."""

import contextlib
import gzip
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import digits
from train.__main__ import main

REPO = Path(__file__).resolve().parent.parent


def train_quick(mnist_dir, out, *options, model="mlp"):
    assert main(["--model", model, "--quick", "--data", str(mnist_dir), "--out", str(out), *options]) == 0
    return json.loads(out.read_text())


# A CNN run small enough for a test: a few seconds on two cores.
CNN_QUICK = ("--epochs", "1", "--train-images", "384", "--test-images", "200")


@pytest.fixture(scope="module")
def quick_run(mnist_dir, tmp_path_factory):
    """One `--quick --seed 3` run, shared because each run loads all of MNIST: (path, saved dict, printed text)."""
    out = tmp_path_factory.mktemp("quick") / "models" / "quick.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        saved = train_quick(mnist_dir, out, "--seed", "3")
    return out, saved, printed.getvalue()


def test_quick_run_repeats_with_seed(mnist_dir, quick_run, tmp_path, capsys):
    _, first, _ = quick_run
    second = train_quick(mnist_dir, tmp_path / "second.json", "--seed", "3")
    assert first["layers"] == second["layers"]
    assert first["version"] == second["version"]
    assert first["test_accuracy"] == second["test_accuracy"]
    other_seed = train_quick(mnist_dir, tmp_path / "other.json", "--seed", "4")
    assert other_seed["version"] != first["version"]


def test_quick_run_writes_loadable_model(mnist_dir, quick_run):
    out, saved, printed = quick_run
    model = digits.load_model(out)
    assert model.name == "mlp"
    assert model.version == saved["version"]
    assert [layer["type"] for layer in saved["layers"]] == ["flatten", "dense", "relu", "dense", "relu", "dense"]

    match = re.search(r"^test accuracy: (0\.\d{4}) \((\d+)/1000\)$", printed, re.MULTILINE)
    assert match, printed
    correct = int(match.group(2))
    assert saved["test_accuracy"] == correct / 1000
    # 2 epochs on 2000 images already get most test images right; chance is 10%.
    assert saved["test_accuracy"] > 0.6

    images, labels = digits.load_mnist(mnist_dir, "test")
    predicted = model.logits(images[:1000].astype(np.float32) / 255.0).argmax(axis=1)
    assert int((predicted == labels[:1000]).sum()) == correct


def test_quick_run_records_training(mnist_dir, tmp_path, capsys):
    saved = train_quick(mnist_dir, tmp_path / "quick.json", "--epochs", "1", "--float32")
    assert all(layer["weight"]["dtype"] == "float32" for layer in saved["layers"] if layer["type"] == "dense")
    assert saved["input"] == {"height": 28, "width": 28, "mean": 0.1307, "std": 0.3081}
    assert sorted(saved["training_data_sha256"]) == ["test-images", "test-labels", "train-images", "train-labels"]
    assert saved["training"]["quick"] is True
    assert saved["training"]["train_images"] == 2000
    assert saved["training"]["test_images"] == 1000
    assert saved["training"]["seed"] == 0
    assert saved["training"]["hidden_sizes"] == [512, 256]
    assert saved["training"]["augmentation"] == {"max_shift": 2}
    assert [record["epoch"] for record in saved["history"]] == [1]
    assert sorted(saved["history"][0]) == ["epoch", "loss", "seconds", "test_accuracy", "train_accuracy"]
    assert saved["history"][0]["test_accuracy"] == saved["test_accuracy"]


def test_quick_run_exports_float16_when_exact(quick_run):
    _, saved, _ = quick_run
    counts = saved["training"]["test_correct"]
    dtypes = {layer["weight"]["dtype"] for layer in saved["layers"] if layer["type"] == "dense"}
    assert dtypes == {"float16" if counts["float16"] == counts["float32"] else "float32"}


def test_command_line(mnist_dir, tmp_path):
    out = tmp_path / "cli.json"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "py"), str(REPO)])}
    completed = subprocess.run(
        [sys.executable, "-m", "train", "--model", "mlp", "--quick", "--epochs", "1", "--data", str(mnist_dir), "--out", str(out)],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert re.search(r"^epoch  1/1  loss \d\.\d{4}  train 0\.\d{4}  test 0\.\d{4}  \d+\.\d s$", completed.stdout, re.MULTILINE)
    assert re.search(r"^test accuracy: 0\.\d{4} \(\d+/1000\)$", completed.stdout, re.MULTILINE)
    assert f"wrote {out} (" in completed.stdout
    assert out.exists()


def test_missing_data_folder(tmp_path, capsys):
    assert main(["--quick", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "never.json")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "never.json").exists()


def test_rejects_bad_settings(capsys):
    with pytest.raises(SystemExit):
        main(["--batch-size", "0"])
    assert "--batch-size: must be a whole number of at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--hidden-sizes", "512,x"])
    assert "must be positive whole numbers separated by commas" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--warmup-epochs", "-1"])
    assert "--warmup-epochs must be 0 or more, got -1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "mlp", "--max-shift", "1.5"])
    assert "--max-shift must be a whole number of pixels for the MLP, got 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--thickness", "0.6"])
    assert "--thickness must be from 0 to 0.5, got 0.6" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--scale", "1"])
    assert "--scale must be below 1, so that no image shrinks to nothing, got 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rotation", "-5"])
    assert "--rotation must be 0 or more, got -5" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cnn_run(mnist_dir, tmp_path_factory):
    """One small CNN run: (path, saved dict, printed text)."""
    out = tmp_path_factory.mktemp("cnn") / "cnn.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        saved = train_quick(mnist_dir, out, *CNN_QUICK, model="cnn")
    return out, saved, printed.getvalue()


def test_cnn_run_writes_loadable_model(mnist_dir, cnn_run):
    out, saved, printed = cnn_run
    model = digits.load_model(out)
    assert model.name == "cnn"
    assert [layer["type"] for layer in saved["layers"]] == [
        "conv2d", "relu", "conv2d", "relu", "maxpool2d", "conv2d", "relu", "conv2d", "relu", "maxpool2d", "flatten", "dense"]
    assert re.search(r"^epoch  1/1  loss \d\.\d{4}  train 0\.\d{4}  test 0\.\d{4}  \d+\.\d s$", printed, re.MULTILINE), printed

    match = re.search(r"^test accuracy: (0\.\d{4}) \((\d+)/200\)$", printed, re.MULTILINE)
    assert match, printed
    correct = int(match.group(2))
    assert saved["test_accuracy"] == correct / 200
    # One epoch of 3 steps is far from trained, but already better than chance (10%).
    assert saved["test_accuracy"] > 0.2

    images, labels = digits.load_mnist(mnist_dir, "test")
    predicted = model.logits(images[:200].astype(np.float32) / 255.0).argmax(axis=1)
    assert int((predicted == labels[:200]).sum()) == correct


def test_cnn_run_prints_file_sizes(cnn_run):
    out, _, printed = cnn_run
    match = re.search(rf"^wrote {re.escape(str(out))} \((\d+\.\d\d) MB, (\d+) KB gzip, float(16|32) weights, ", printed, re.MULTILINE)
    assert match, printed
    content = out.read_bytes()
    assert float(match.group(1)) == round(len(content) / 1e6, 2)
    assert int(match.group(2)) == round(len(gzip.compress(content, mtime=0)) / 1e3)


def test_cnn_run_records_training(cnn_run):
    _, saved, _ = cnn_run
    training = saved["training"]
    assert training["model"] == "cnn"
    assert training["channels"] == [16, 32, 32, 64]
    assert training["train_images"] == 384
    assert training["test_images"] == 200
    assert training["dropout"] == 0.25
    assert training["augmentation"] == {"max_rotation": 12.0, "max_scale": 0.12, "max_shear": 0.2, "max_shift": 2.0,
                                        "elastic": 1.0, "elastic_smoothness": 4.0, "thickness_probability": 0.25}
    assert [record["epoch"] for record in saved["history"]] == [1]
    assert saved["history"][0]["test_accuracy"] == training["test_correct"]["float32"] / 200


def test_cnn_run_repeats_with_seed(mnist_dir, cnn_run, tmp_path, capsys):
    _, first, _ = cnn_run
    second = train_quick(mnist_dir, tmp_path / "second.json", *CNN_QUICK, model="cnn")
    assert second["version"] == first["version"]
    assert second["history"][0]["loss"] == first["history"][0]["loss"]


def test_quick_default_out_keeps_shipped_model():
    from train.__main__ import QUICK_OUT_DIR, parse_settings

    assert parse_settings(["--model", "mlp", "--quick"]).out == os.path.join(QUICK_OUT_DIR, "mlp.json")
    assert parse_settings(["--model", "cnn"]).out == os.path.join("site", "models", "cnn.json")
