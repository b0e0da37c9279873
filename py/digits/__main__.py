"""Command line: evaluate a model on MNIST's test set, or classify image files.

    python3 -m digits evaluate --model site/models/mlp.json --data DIR
    python3 -m digits classify [--model M] [--json] FILE...
"""

import argparse
import json
import os
import sys

import numpy as np

from .classify import classify
from .errors import IdxFormatError, InputError, ModelFileError
from .idx import load_mnist
from .images import decode_image
from .model_file import load_model

MODELS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "site", "models")
BATCH_SIZE = 500


def default_model_path():
    for name in ("cnn.json", "mlp.json"):
        path = os.path.normpath(os.path.join(MODELS_DIR, name))
        if os.path.exists(path):
            return path
    return None


def evaluate(model, images, labels):
    """Return the number of test images the model labels correctly."""
    correct = 0
    for start in range(0, len(images), BATCH_SIZE):
        batch = images[start: start + BATCH_SIZE].astype(np.float32) / 255.0
        predicted = model.logits(batch).argmax(axis=1)
        correct += int((predicted == labels[start: start + BATCH_SIZE]).sum())
    return correct


def run_evaluate(args):
    model = load_model(args.model)
    images, labels = load_mnist(args.data, "test")
    correct = evaluate(model, images, labels)
    print(f"model: {model.name} {model.version}")
    print(f"accuracy: {correct / len(labels):.4f} ({correct}/{len(labels)})")
    return 0


def classify_file(model, path):
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}", code="unreadable_file") from None
    return classify(model, decode_image(data))


def run_classify(args):
    model = load_model(args.model)
    failed = 0
    records = []
    for path in args.files:
        try:
            result = classify_file(model, path)
        except InputError as error:
            failed += 1
            records.append({"file": path, "error": {"code": error.code, "message": str(error)}})
            if not args.json:
                print(f"{path}: error: {error}", file=sys.stderr)
            continue
        records.append({"file": path, "label": result.label, "probabilities": [round(float(p), 6) for p in result.probabilities]})
        if not args.json:
            probabilities = " ".join(f"{digit}:{p:.3f}" for digit, p in enumerate(result.probabilities))
            print(f"{path}: {result.label}  ({probabilities})")
    if args.json:
        print(json.dumps({"model": {"name": model.name, "version": model.version}, "results": records}, indent=2))
    return 1 if failed else 0


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python3 -m digits", description="Recognise handwritten digits with a model file.")
    commands = parser.add_subparsers(dest="command", required=True)

    evaluate_parser = commands.add_parser("evaluate", help="accuracy on MNIST's 10,000 test images")
    evaluate_parser.add_argument("--model", default=default_model_path(), help="model file (JSON); default: the shipped CNN, else the MLP")
    evaluate_parser.add_argument("--data", default=os.environ.get("MNIST_DIR"),
                                 help="folder with the MNIST IDX files (.gz or raw); default: $MNIST_DIR")
    evaluate_parser.set_defaults(run=run_evaluate)

    classify_parser = commands.add_parser("classify", help="label each image file (PNG, JPEG, ...)")
    classify_parser.add_argument("files", nargs="+", metavar="FILE")
    classify_parser.add_argument("--model", default=default_model_path(), help="model file (JSON); default: the shipped CNN, else the MLP")
    classify_parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    classify_parser.set_defaults(run=run_classify)

    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("no model file found in site/models; pass --model FILE")
    if args.command == "evaluate" and args.data is None:
        parser.error("pass --data DIR or set MNIST_DIR to the folder with the MNIST IDX files")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    try:
        return args.run(args)
    except (ModelFileError, IdxFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
