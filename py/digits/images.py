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
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        # Damaged headers of some formats (ICO, JPEG, WebP, PPM) fail while opening, not loading.
        raise InvalidImageError(f"the image could not be decoded: {error}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImageError(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels", code="image_too_large")
    try:
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I") or image.mode == "F":
            image = to_eight_bit(image, Image)
        return np.asarray(image.convert("RGBA"))
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise InvalidImageError(f"the image could not be decoded: {error}") from None


def to_eight_bit(image, pillow_image):
    """Scale a 16-bit or 32-bit greyscale image to 8 bits; Pillow's convert would clip it at 255 instead."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") else max(255.0, float(values.max()))
    if image.mode == "F" and values.max() <= 1.0:
        top = 1.0
    return pillow_image.fromarray(np.round(np.clip(values, 0, top) / top * 255).astype(np.uint8), mode="L")


def encode_png(image):
    """Encode a 2-D image with values in 0..1 as 8-bit greyscale PNG bytes."""
    from PIL import Image

    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
