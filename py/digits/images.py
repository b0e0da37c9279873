"""Decoding image files (PNG, JPEG and the other formats Pillow reads) into pixel arrays."""

import io

import numpy as np

from .errors import InvalidImageError

# Larger images are refused before decoding, which also stops decompression bombs.
MAX_IMAGE_PIXELS = 25_000_000


def decode_image(data, max_pixels=MAX_IMAGE_PIXELS):
    """Decode image file bytes into an (height, width, 4) uint8 RGBA array.

    Photos are turned upright by their EXIF orientation.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError  # Pillow is only needed here

    try:
        image = Image.open(io.BytesIO(bytes(data)))
    except UnidentifiedImageError:
        raise InvalidImageError("the data is not an image in a format Pillow can read (PNG, JPEG, GIF, BMP, WebP, ...)") from None
    except Image.DecompressionBombError:
        raise InvalidImageError(f"the image has far more than the limit of {max_pixels} pixels", code="image_too_large") from None
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImageError(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels", code="image_too_large")
    try:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGBA"))
    except (OSError, ValueError, SyntaxError) as error:
        raise InvalidImageError(f"the image could not be decoded: {error}") from None
