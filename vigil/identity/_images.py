"""Uploaded images into pixels: file bytes (PNG, JPEG, WebP, ...) or an array in, one RGB
``uint8`` array ``(H, W, 3)`` out, turned upright by its EXIF orientation.

An upload is untrusted input, so the decoder refuses what it cannot bound: more than
:data:`MAX_BYTES` of file, more than :data:`MAX_PIXELS` pixels (checked from the header,
before the pixels are decoded, so a "decompression bomb" costs nothing), fewer than
:data:`MIN_SIDE` pixels a side. Whatever is refused raises :class:`ImageError`, a
:class:`~vigil._errors.DataError` and a :class:`ValueError`, with a message that says
what was wrong and what is accepted.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from vigil._errors import DataError

MAX_BYTES = 25 * 1024 * 1024  # a phone photo is 2-8 MB; 25 MB leaves room for a PNG scan
MAX_PIXELS = 50_000_000  # 50 MP: more than any phone camera; decoding costs ~150 MB at most
MIN_SIDE = 16  # nothing smaller can hold a face or a document


class ImageError(DataError, ValueError):
    """Bytes or an array that are not a usable image (not an image, too large, too small)."""


def load_rgb(image: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """The pixels of ``image`` as a C-contiguous RGB ``uint8`` array of shape ``(H, W, 3)``.

    ``image`` is either a file's content (any format Pillow reads; EXIF orientation is
    applied, so a phone photo taken sideways comes out upright; transparency is laid on
    white) or an array: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, ``uint8``.
    Arrays are taken as RGB (not OpenCV's BGR) and never modified; one already in the
    output's form is returned as it is, without a copy.

    >>> load_rgb(np.zeros((20, 30), dtype=np.uint8)).shape
    (20, 30, 3)
    >>> load_rgb(b"not an image")
    Traceback (most recent call last):
    ...
    vigil.identity._images.ImageError: the file is not an image Pillow can read (PNG, JPEG, ...)
    """
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(image))
    raise ImageError(f"an image must be file bytes or a numpy array, not "
                     f"{type(image).__name__}")


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(f"the image is {width}x{height} pixels, more than the "
                         f"{MAX_PIXELS:,} accepted; send a smaller photo")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"the image is {width}x{height} pixels; at least {MIN_SIDE} a side "
                         "is needed")


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ImageError(f"an image array must be uint8, not {arr.dtype}; scale it to 0-255 "
                         "and convert with .astype(np.uint8)")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = _on_white(arr)
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), not "
                         f"{arr.shape}")
    _check_size(arr.shape[1], arr.shape[0])
    # dlib reads a C-contiguous buffer; a view (a crop, a flip) is copied into one
    return np.ascontiguousarray(arr)


def _on_white(rgba: np.ndarray) -> np.ndarray:
    # a transparent cut-out would otherwise turn black where it is transparent
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    rgb = rgba[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.rint(rgb).astype(np.uint8)


def _from_bytes(data: bytes) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > MAX_BYTES:
        raise ImageError(f"the file is {len(data):,} bytes, more than the {MAX_BYTES:,} "
                         "accepted; send a smaller photo")
    try:
        with warnings.catch_warnings():
            # Pillow warns (then raises) about "decompression bombs"; we check size ourselves
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # and warns of damage it reads past ("Truncated File Read"): such a file either
            # decodes or raises below, so the warning adds nothing
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(data)) as img:
                _check_size(*img.size)
                img.load()
                img = ImageOps.exif_transpose(img)
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P"
                                                        and "transparency" in img.info):
                    return _on_white(np.asarray(img.convert("RGBA")))
                return np.array(img.convert("RGB"), dtype=np.uint8, order="C")
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError("the file is not an image Pillow can read (PNG, JPEG, ...)") from exc
    except Exception as exc:
        # Pillow's decoders signal a corrupt or truncated file with OSError, SyntaxError,
        # EOFError, struct.error, IndexError, ... depending on the format: an upload is
        # untrusted, so any failure to decode is the file's fault, said in one way
        raise ImageError(f"the image file is damaged or truncated ({type(exc).__name__}: "
                         f"{exc})") from exc
