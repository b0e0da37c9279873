"""Handwritten digit recognition: MNIST-form preprocessing and numpy networks from model files.

The browser (under Pyodide), the AWS Lambda handler and the command line all use this package.
"""

from .classify import Result, canvas_to_array, classify, classify_image, classify_pixels
from .errors import (DrawingTooSmallError, EmptyDrawingError, IdxFormatError, InputError, InvalidDrawingError,
                     InvalidImageError, ModelFileError)
from .idx import load_mnist, parse_idx, read_idx
from .images import decode_image
from .model_file import Model, load_model, save_model
from .preprocess import preprocess

__all__ = [
    "DrawingTooSmallError", "EmptyDrawingError", "IdxFormatError", "InputError", "InvalidDrawingError",
    "InvalidImageError", "Model", "ModelFileError", "Result", "canvas_to_array", "classify", "classify_image",
    "classify_pixels", "decode_image", "load_mnist", "load_model", "parse_idx", "preprocess", "read_idx", "save_model",
]
