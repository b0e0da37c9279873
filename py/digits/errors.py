"""Errors that carry a short machine-readable code and a message for people."""


class InputError(ValueError):
    """The drawing, image or pixels given to the package cannot be classified."""

    code = "invalid_input"

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code


class EmptyDrawingError(InputError):
    code = "empty_drawing"


class DrawingTooSmallError(InputError):
    code = "drawing_too_small"


class InvalidDrawingError(InputError):
    code = "invalid_drawing"


class InvalidImageError(InputError):
    code = "invalid_image"


class ModelFileError(ValueError):
    """A model file is not valid JSON or does not describe a network this package can run."""


class IdxFormatError(ValueError):
    """An MNIST IDX file is truncated, corrupt or not the expected kind."""
