"""Train a digit classifier on MNIST and write its model file.

    PYTHONPATH=py python3 -m train --model cnn --data DIR --out site/models/cnn.json
    PYTHONPATH=py python3 -m train --model mlp --data DIR --out site/models/mlp.json

The steps below are the procedure itself: settings, data, model, optimiser,
training loop, evaluation, export. The defaults reproduce the shipped model, and
the same settings and seed give the same weights.
"""

import argparse
import dataclasses
import gzip
import math
import os
import sys
import time

import numpy as np

from digits import IdxFormatError, load_model, save_model
from digits.model_file import model_to_dict

from .augment import Distortion, distort, random_shifts
from .data import DataNotFoundError, DownloadError, find_mnist, load
from .memory import keep_freed_memory
from .model import build_cnn, build_mlp, softmax_cross_entropy
from .optim import AdamW, warmup_cosine_lr
from .progress import Progress

# Mean and standard deviation of MNIST's training pixels on the 0..1 scale. The
# model file stores them, so that inference normalises its input the same way.
PIXEL_MEAN = 0.1307
PIXEL_STD = 0.3081

QUICK_TRAIN_IMAGES = 2000
QUICK_TEST_IMAGES = 1000
QUICK_EPOCHS = 2
QUICK_OUT_DIR = os.path.join(".cache", "quick-models")
# Evaluation runs 500 images at a time, so the CNN's largest activation (500 x 28 x 28 x 32 float32) is about 50 MB.
EVALUATION_BATCH = 500

# Settings whose default depends on the model; --help lists both values.
MODEL_DEFAULTS = {
    "mlp": {"epochs": 30, "lr": 2e-3, "weight_decay": 0.05, "dropout": 0.2, "max_shift": 2},
    "cnn": {"epochs": 30, "lr": 2e-3, "weight_decay": 0.05, "dropout": 0.25, "max_shift": Distortion.max_shift},
}
DEFAULT_DISTORTION = Distortion()


def parse_settings(argv):
    parser = argparse.ArgumentParser(prog="python3 -m train", description="Train a digit classifier on MNIST and write its model file.")
    parser.add_argument("--model", choices=["cnn", "mlp"], default="cnn", help="network to train (default: cnn)")
    parser.add_argument("--data", help="folder with the four MNIST IDX files (.gz or raw); default: $MNIST_DIR, else "
                                       "download them into $XDG_CACHE_HOME/digits/mnist (~/.cache/digits/mnist if unset)")
    parser.add_argument("--out", help="model file to write (default: site/models/<model>.json, or "
                                      f"{QUICK_OUT_DIR}/<model>.json with --quick)")
    parser.add_argument("--epochs", type=positive_int, help=f"passes over the training set (default: 30, or {QUICK_EPOCHS} with --quick)")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="images per training step (default: 128)")
    parser.add_argument("--lr", type=positive_float, help="peak learning rate of AdamW (default: 0.002)")
    parser.add_argument("--warmup-epochs", type=float, default=1.0, help="epochs of linear learning-rate warm-up (default: 1)")
    parser.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay (default: 0.05)")
    parser.add_argument("--dropout", type=float, help="dropout rate: after each hidden layer of the MLP (default: 0.2), "
                                                      "before the CNN's last layer (default: 0.25)")
    parser.add_argument("--hidden-sizes", type=size_list, default=(512, 256), help="units of the MLP's hidden layers (default: 512,256)")
    parser.add_argument("--channels", type=size_list, default=(16, 32, 32, 64),
                        help="output channels of the CNN's 3x3 convolutions, with a 2x2 max-pool after every second one "
                             "(default: 16,32,32,64)")
    parser.add_argument("--max-shift", type=float, help="largest random shift of a training image, in pixels "
                                                        "(default: 2; a whole number for the MLP)")
    distortion = parser.add_argument_group("CNN augmentation", "random distortions of each training image; 0 turns one off")
    distortion.add_argument("--rotation", type=float, default=DEFAULT_DISTORTION.max_rotation,
                            help=f"largest rotation either way, in degrees (default: {DEFAULT_DISTORTION.max_rotation:g})")
    distortion.add_argument("--scale", type=float, default=DEFAULT_DISTORTION.max_scale,
                            help=f"largest relative change of size either way (default: {DEFAULT_DISTORTION.max_scale:g})")
    distortion.add_argument("--shear", type=float, default=DEFAULT_DISTORTION.max_shear,
                            help=f"largest horizontal shear factor either way (default: {DEFAULT_DISTORTION.max_shear:g})")
    distortion.add_argument("--elastic", type=float, default=DEFAULT_DISTORTION.elastic,
                            help="root mean square of the elastic displacement, in pixels "
                                 f"(default: {DEFAULT_DISTORTION.elastic:g})")
    distortion.add_argument("--thickness", type=float, default=DEFAULT_DISTORTION.thickness_probability,
                            help="share of images drawn with thicker strokes, and the same share with thinner ones, "
                                 f"at most 0.5 (default: {DEFAULT_DISTORTION.thickness_probability:g})")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling, dropout and augmentation (default: 0)")
    parser.add_argument("--quick", action="store_true",
                        help=f"train on the first {QUICK_TRAIN_IMAGES} training images, test on the first {QUICK_TEST_IMAGES}, "
                             f"{QUICK_EPOCHS} epochs unless --epochs is given; for tests")
    parser.add_argument("--train-images", type=positive_int, help="train on the first N training images only (default: all, or "
                                                                  f"{QUICK_TRAIN_IMAGES} with --quick)")
    parser.add_argument("--test-images", type=positive_int, help="test on the first N test images only (default: all, or "
                                                                 f"{QUICK_TEST_IMAGES} with --quick)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--float16", dest="export_dtype", action="store_const", const="float16",
                           help="store weights as float16 if that keeps the test accuracy exactly, else float32 (default)")
    precision.add_argument("--float32", dest="export_dtype", action="store_const", const="float32", help="store weights as float32")
    parser.set_defaults(export_dtype="float16")
    settings = parser.parse_args(argv)

    if settings.quick:
        settings.epochs = settings.epochs or QUICK_EPOCHS
        settings.train_images = settings.train_images or QUICK_TRAIN_IMAGES
        settings.test_images = settings.test_images or QUICK_TEST_IMAGES
    for name, value in MODEL_DEFAULTS[settings.model].items():
        if getattr(settings, name) is None:
            setattr(settings, name, value)
    if settings.out is None:
        # A quick model is for trying things out, so by default it does not replace the one the site ships.
        folder = QUICK_OUT_DIR if settings.quick else os.path.join("site", "models")
        settings.out = os.path.join(folder, f"{settings.model}.json")
    if not 0 <= settings.dropout < 1:
        parser.error(f"--dropout must be at least 0 and below 1, got {settings.dropout}")
    if settings.max_shift < 0:
        parser.error(f"--max-shift must be 0 or more pixels, got {settings.max_shift:g}")
    if settings.model == "mlp" and not float(settings.max_shift).is_integer():
        parser.error(f"--max-shift must be a whole number of pixels for the MLP, got {settings.max_shift:g}")
    for option in ("rotation", "scale", "shear", "elastic"):
        if getattr(settings, option) < 0:
            parser.error(f"--{option} must be 0 or more, got {getattr(settings, option):g}")
    if settings.scale >= 1:
        parser.error(f"--scale must be below 1, so that no image shrinks to nothing, got {settings.scale:g}")
    if not 0 <= settings.thickness <= 0.5:
        parser.error(f"--thickness must be from 0 to 0.5, got {settings.thickness:g}")
    if settings.warmup_epochs < 0:
        parser.error(f"--warmup-epochs must be 0 or more, got {settings.warmup_epochs}")
    if settings.weight_decay < 0:
        parser.error(f"--weight-decay must be 0 or more, got {settings.weight_decay}")
    settings.distortion = Distortion(settings.rotation, settings.scale, settings.shear, settings.max_shift, settings.elastic,
                                     DEFAULT_DISTORTION.elastic_smoothness, settings.thickness)
    return settings


def main(argv=None):
    started = time.perf_counter()
    settings = parse_settings(argv)
    # Each batch's large arrays then reuse the last batch's memory instead of fresh zero-filled pages.
    keep_freed_memory()
    # One generator per use, so that changing, say, the dropout rate leaves the initial weights and the shuffling as they were.
    init_rng, shuffle_rng, dropout_rng, augment_rng = (
        np.random.default_rng(seed) for seed in np.random.SeedSequence(settings.seed).spawn(4))

    # Data
    try:
        directory = find_mnist(settings.data)
        mnist = load(directory)
    except (DataNotFoundError, DownloadError, IdxFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if settings.train_images or settings.test_images:
        mnist = mnist.subset(settings.train_images, settings.test_images)
    train_count, test_count = len(mnist.train_labels), len(mnist.test_labels)
    test_inputs = normalise(mnist.test_images)[..., None]
    print(f"data: {directory} ({train_count} training, {test_count} test images)")

    # Model
    if settings.model == "cnn":
        model = build_cnn(init_rng, dropout_rng, settings.channels, settings.dropout)
        print(f"augmentation: {settings.distortion}")
    else:
        model = build_mlp(init_rng, dropout_rng, settings.hidden_sizes, settings.dropout)
        print(f"augmentation: whole-pixel shifts of up to {settings.max_shift:g} pixels")
    print(model)

    # Optimiser and learning-rate schedule
    optimizer = AdamW(model.parameters(), settings.weight_decay)
    steps_per_epoch = math.ceil(train_count / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    warmup_steps = min(round(settings.warmup_epochs * steps_per_epoch), total_steps - 1)
    print(f"{optimizer}, lr {settings.lr} after {warmup_steps} warm-up steps, cosine decay to 0 over {total_steps} steps")

    # Training loop
    history = []
    step = 0
    for epoch in range(1, settings.epochs + 1):
        epoch_started = time.perf_counter()
        progress = Progress(f"epoch {epoch}/{settings.epochs}", steps_per_epoch)
        order = shuffle_rng.permutation(train_count)
        loss_sum = 0.0
        correct = 0
        for batch_index, start in enumerate(range(0, train_count, settings.batch_size)):
            batch = order[start: start + settings.batch_size]
            inputs = augmented_inputs(mnist.train_images[batch], augment_rng, settings)
            labels = mnist.train_labels[batch]

            logits = model.forward(inputs, training=True)
            loss, grad = softmax_cross_entropy(logits, labels)
            model.backward(grad)
            optimizer.step(model.gradients(), warmup_cosine_lr(step, total_steps, settings.lr, warmup_steps))
            step += 1

            loss_sum += loss * len(batch)
            correct += int((logits.argmax(axis=1) == labels).sum())
            progress.update(batch_index + 1, f"loss {loss_sum / (start + len(batch)):.4f}")
        progress.finish()

        # Training accuracy is counted on the augmented images with dropout on, so it runs below the test accuracy.
        record = {
            "epoch": epoch,
            "loss": round(loss_sum / train_count, 6),
            "train_accuracy": round(correct / train_count, 6),
            "test_accuracy": count_correct(lambda x: model.forward(x, training=False), test_inputs, mnist.test_labels) / test_count,
            "seconds": round(time.perf_counter() - epoch_started, 2),
        }
        history.append(record)
        print(f"epoch {epoch:2d}/{settings.epochs}  loss {record['loss']:.4f}  train {record['train_accuracy']:.4f}  "
              f"test {record['test_accuracy']:.4f}  {record['seconds']:.1f} s", flush=True)

    # Evaluation of the exported weights, run by the inference package itself
    layers = model.export()
    test_images = mnist.test_images.astype(np.float32) / 255.0
    accuracies = {}
    for dtype in ("float32", "float16"):
        exported = load_model(model_to_dict(settings.model, layers, PIXEL_MEAN, PIXEL_STD, dtype))
        accuracies[dtype] = count_correct(exported.logits, test_images, mnist.test_labels)
    # float16 halves the file, and is used only if it gets exactly as many test images right as float32.
    dtype = "float16" if settings.export_dtype == "float16" and accuracies["float16"] == accuracies["float32"] else "float32"
    correct = accuracies[dtype]
    print(f"float32 weights: {accuracies['float32']}/{test_count} correct, float16 weights: {accuracies['float16']}/{test_count}; "
          f"exporting {dtype}")
    print(f"test accuracy: {correct / test_count:.4f} ({correct}/{test_count})")

    # Export
    training = describe_training(settings, train_count, test_count, accuracies, time.perf_counter() - started)
    out_dir = os.path.dirname(settings.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    saved = save_model(settings.out, settings.model, layers, PIXEL_MEAN, PIXEL_STD, dtype,
                       test_accuracy=correct / test_count, training_data_sha256=mnist.sha256,
                       training=training, history=history)
    with open(settings.out, "rb") as file:
        content = file.read()
    # A web server that compresses its responses sends about this many bytes of the file.
    compressed = len(gzip.compress(content, mtime=0))
    print(f"wrote {settings.out} ({len(content) / 1e6:.2f} MB, {compressed / 1e3:.0f} KB gzip, {dtype} weights, "
          f"version {saved['version']}) in {time.perf_counter() - started:.0f} s")
    return 0


def describe_training(settings, train_count, test_count, accuracies, seconds):
    """Return the settings and outcome of a run, for the model file's "training" entry."""
    if settings.model == "cnn":
        architecture = {"channels": list(settings.channels), "kernel_size": 3, "batch_norm": "folded into each conv2d"}
        augmentation = dataclasses.asdict(settings.distortion)
    else:
        architecture = {"hidden_sizes": list(settings.hidden_sizes)}
        augmentation = {"max_shift": int(settings.max_shift)}
    return {
        "model": settings.model,
        **architecture,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "warmup_epochs": settings.warmup_epochs,
        "schedule": "linear warm-up, then cosine decay to 0",
        "optimizer": "AdamW",
        "weight_decay": settings.weight_decay,
        "dropout": settings.dropout,
        "augmentation": augmentation,
        "seed": settings.seed,
        "quick": settings.quick,
        "train_images": train_count,
        "test_images": test_count,
        "test_correct": {"float32": accuracies["float32"], "float16": accuracies["float16"]},
        "numpy": np.__version__,
        "seconds": round(seconds, 1),
    }


def augmented_inputs(images, rng, settings):
    """Return a training batch of uint8 images (N, 28, 28) augmented and standardised, as float32 (N, 28, 28, 1)."""
    if settings.model == "cnn":
        return standardise(distort(images, rng, settings.distortion))[..., None]
    return normalise(random_shifts(images, rng, int(settings.max_shift)))[..., None]


def normalise(images):
    """Scale uint8 images to 0..1 and standardise them, in float32, as digits.Model does before its first layer."""
    return standardise(images.astype(np.float32) / np.float32(255.0))


def standardise(pixels):
    """Standardise float32 pixels on the 0..1 scale with MNIST's mean and standard deviation."""
    return (pixels - np.float32(PIXEL_MEAN)) / np.float32(PIXEL_STD)


def count_correct(logits_of, inputs, labels):
    """Return how many inputs the function logits_of labels correctly, evaluated in batches."""
    correct = 0
    for start in range(0, len(inputs), EVALUATION_BATCH):
        predicted = logits_of(inputs[start: start + EVALUATION_BATCH]).argmax(axis=1)
        correct += int((predicted == labels[start: start + EVALUATION_BATCH]).sum())
    return correct


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def size_list(text):
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"must be positive whole numbers separated by commas, such as 512,256; got {text!r}")
    return sizes


if __name__ == "__main__":
    sys.exit(main())
