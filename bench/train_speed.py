"""Time training of the numpy MLP and CNN against the same architectures in PyTorch on the CPU.

Run from the repository root with the venv's Python, once PyTorch is installed there
(it is needed only here, never by the tests):

    .venv/bin/pip install torch==2.13.0
    .venv/bin/python bench/train_speed.py [--batches 100] [--data DIR]

Each framework trains the same network from the same batches of MNIST training
images: batch size 128, forward pass, cross-entropy, backward pass and an AdamW
step, in float32, on the same number of threads: train.parallel's two threads,
each with single-threaded BLAS, and PyTorch set to two threads.
Augmentation and evaluation are left out, because they are not part of what is
compared. The two frameworks take turns in blocks of batches, with a short
untimed pause between turns, so that load from other programs on the machine
falls on both alike. The time of --batches
batches is scaled to one epoch of 60,000 images (469 batches), and the output
states the scale.
Nothing here asserts a time: it prints the figures next to the goals.
"""

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "py"), str(ROOT)]

TORCH_VERSION = "2.13.0"
BATCH_SIZE = 128
EPOCH_IMAGES = 60_000
WARM_UP_BATCHES = 3
# Batches per turn, and an untimed pause after each turn. Both libraries keep their worker
# threads spinning for a while after a call; without the pause they took the cores from the
# other framework's next turn, and PyTorch's MLP step took 3 times as long as when run alone.
TURN_BATCHES = 10
SETTLE_SECONDS = 0.5
# Goals: numpy's time for an epoch at most this many times PyTorch's.
GOALS = {"mlp": 1.3, "cnn": 2.0}
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.05


def parse_arguments():
    parser = argparse.ArgumentParser(description="Time one epoch of training in numpy and in PyTorch, side by side.")
    parser.add_argument("--batches", type=int, default=100,
                        help=f"batches timed per model and framework, scaled to an epoch of {EPOCH_IMAGES} images (default: 100)")
    parser.add_argument("--data", help="folder with the MNIST IDX files (default: $MNIST_DIR, else the download cache of "
                                       "python3 -m train)")
    arguments = parser.parse_args()
    if arguments.batches < 1:
        parser.error("--batches must be at least 1")
    return arguments


ARGUMENTS = parse_arguments()
# Importing train first lets it keep BLAS to one thread, which it reads when numpy loads.
import train  # noqa: E402,F401
import numpy as np  # noqa: E402

import digits  # noqa: E402
from train.data import DataNotFoundError, DownloadError, find_mnist  # noqa: E402
from train.memory import keep_freed_memory  # noqa: E402
from train.model import build_cnn, build_mlp, softmax_cross_entropy  # noqa: E402
from train.optim import AdamW  # noqa: E402
from train.parallel import PARTS  # noqa: E402

try:
    import torch
except ImportError:
    print(f"PyTorch is not installed; this benchmark needs it. Install it with:\n"
          f"    .venv/bin/pip install torch=={TORCH_VERSION}", file=sys.stderr)
    sys.exit(2)


class NumpyTrainer:
    """One training step of a train/ network: forward, loss, backward, AdamW."""

    def __init__(self, model):
        self.model = model
        self.optimizer = AdamW(model.parameters(), WEIGHT_DECAY)

    def step(self, images, labels):
        logits = self.model.forward(images, training=True)
        _, grad = softmax_cross_entropy(logits, labels)
        self.model.backward(grad)
        self.optimizer.step(self.model.gradients(), LEARNING_RATE)


class TorchTrainer:
    """The same step in PyTorch; images arrive NHWC and are given to PyTorch as NCHW, its native layout."""

    def __init__(self, model):
        self.model = model
        self.model.train()
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        self.loss = torch.nn.CrossEntropyLoss()

    def step(self, images, labels):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(images), labels)
        loss.backward()
        self.optimizer.step()


def torch_mlp():
    nn = torch.nn
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 10),
    )


def torch_cnn():
    nn = torch.nn

    def block(in_channels, out_channels):
        return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]

    return nn.Sequential(
        *block(1, 16), *block(16, 32), nn.MaxPool2d(2),
        *block(32, 32), *block(32, 64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(7 * 7 * 64, 10),
    )


def make_batches(directory, count):
    """Return count batches of standardised training images, as numpy NHWC and torch NCHW, with their labels."""
    images, labels = digits.load_mnist(directory, "train")
    order = np.random.default_rng(0).permutation(len(labels))[: count * BATCH_SIZE]
    pixels = (images[order].astype(np.float32) / np.float32(255) - np.float32(0.1307)) / np.float32(0.3081)
    batches = []
    for start in range(0, len(order), BATCH_SIZE):
        numpy_images = np.ascontiguousarray(pixels[start: start + BATCH_SIZE, :, :, None])
        numpy_labels = labels[order[start: start + BATCH_SIZE]].astype(np.intp)
        torch_images = torch.from_numpy(numpy_images.transpose(0, 3, 1, 2).copy())
        batches.append(((numpy_images, numpy_labels), (torch_images, torch.from_numpy(numpy_labels).long())))
    return batches


def time_side_by_side(trainers, batches):
    """Train each of trainers on the same batches, taking turns every TURN_BATCHES; return each one's seconds."""
    for trainer_index, trainer in enumerate(trainers):
        for batch in batches[:WARM_UP_BATCHES]:
            trainer.step(*batch[trainer_index])
        time.sleep(SETTLE_SECONDS)
    seconds = [0.0] * len(trainers)
    for start in range(0, len(batches), TURN_BATCHES):
        for trainer_index, trainer in enumerate(trainers):
            began = time.perf_counter()
            for batch in batches[start: start + TURN_BATCHES]:
                trainer.step(*batch[trainer_index])
            seconds[trainer_index] += time.perf_counter() - began
            time.sleep(SETTLE_SECONDS)
    return seconds


def main():
    # As `python3 -m train` does. The setting applies to the whole process, so PyTorch runs under it too.
    kept = keep_freed_memory()
    torch.set_num_threads(PARTS)
    torch.manual_seed(0)
    try:
        directory = find_mnist(ARGUMENTS.data)
        batches = make_batches(directory, ARGUMENTS.batches)
    except (DataNotFoundError, DownloadError, digits.IdxFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    epoch_batches = math.ceil(EPOCH_IMAGES / BATCH_SIZE)
    scale = epoch_batches / len(batches)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"numpy {np.__version__} ({PARTS} threads, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}), "
          f"PyTorch {torch.__version__} (threads {torch.get_num_threads()}); freed memory kept in the process: {kept}")
    print(f"timed: {len(batches)} batches of {BATCH_SIZE} per model and framework, after {WARM_UP_BATCHES} warm-up batches; "
          f"times below are scaled by {epoch_batches}/{len(batches)} to one epoch of {EPOCH_IMAGES:,} images")
    print(f"{'model':6} {'numpy s/epoch':>14} {'PyTorch s/epoch':>16} {'ratio':>6}  goal")

    networks = {
        "mlp": (build_mlp(np.random.default_rng(0), np.random.default_rng(1)), torch_mlp()),
        "cnn": (build_cnn(np.random.default_rng(0), np.random.default_rng(1)), torch_cnn()),
    }
    for name, (numpy_model, torch_model) in networks.items():
        numpy_seconds, torch_seconds = time_side_by_side([NumpyTrainer(numpy_model), TorchTrainer(torch_model)], batches)
        ratio = numpy_seconds / torch_seconds
        verdict = "met" if ratio <= GOALS[name] else "not met"
        print(f"{name:6} {numpy_seconds * scale:14.1f} {torch_seconds * scale:16.1f} {ratio:6.2f}  "
              f"at most {GOALS[name]}x: {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
