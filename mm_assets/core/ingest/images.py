"""Bounded, normalising image decoding.

Every image the pipeline looks at goes through :func:`decode`, which gives one defined
outcome per input: an RGBA array-ready ``PIL.Image`` or an :class:`ImageError` with a
machine-readable reason. Rules (stated once, used by hashing and embedding alike):

- EXIF orientation is applied (``ImageOps.exif_transpose``).
- Animated GIF/WebP/PNG: the first frame is used.
- Mode normalisation to RGBA: CMYK, palette (with or without transparency), L, LA, I;16 / I
  (16-bit: scaled to 8 bit by the image's own bit depth, ``v >> (bits - 8)``), RGB.
- Pixel cap: images with more than ``max_pixels`` pixels are refused as ``decompression_bomb``
  before any pixel is decoded.

:func:`decode_rgb` applies the same rules and returns RGB (alpha composited on white), the
embedding path's input; it may decode JPEGs at reduced DCT scale (``min_side``).
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps

ImageFile.LOAD_TRUNCATED_IMAGES = False
DEFAULT_MAX_PIXELS = 64_000_000
_FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp",
               "TIFF": "tif", "PPM": "pgm", "MPO": "jpg"}


class ImageError(ValueError):
    """An image that cannot be used, with a machine-readable ``reason``.

    Reasons: ``empty_image``, ``decompression_bomb``, ``truncated_image``, ``corrupt_image``,
    ``zero_size_image``.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


_OBJECT_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _message(e: Exception) -> str:
    """``Type: message`` without Pillow's ``<_io.BytesIO object at 0x…>`` (an address that
    names nothing and would make quarantine tables differ between runs)."""
    return _OBJECT_REPR.sub("the image bytes", f"{type(e).__name__}: {e}")


def _classify(e: Exception) -> ImageError:
    bomb = "too large" in str(e).lower()  # e.g. a PNG text-chunk decompression bomb
    return ImageError("decompression_bomb" if bomb else "corrupt_image", _message(e))


def sniff_ext(data: bytes) -> str:
    """File extension for encoded bytes from their content, not their name.

    Raises:
        ImageError: ``empty_image`` for zero bytes, ``corrupt_image`` when no decoder accepts it.
    """
    if not data:
        raise ImageError("empty_image", "zero-byte image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return _FORMAT_EXT.get(im.format or "", (im.format or "bin").lower())
    except Image.DecompressionBombError as e:
        raise ImageError("decompression_bomb", str(e)) from e
    except Exception as e:
        raise _classify(e) from e


def _to_rgba(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        trns = im.info.get("transparency")
        a = np.asarray(im, dtype=np.float64 if im.mode == "F" else np.int64)
        a = np.clip(a, 0, None).astype(np.int64)
        top = int(a.max()) if a.size else 0
        shift = max(0, top.bit_length() - 8)
        grey = Image.fromarray((a >> shift).astype(np.uint8), mode="L")
        if isinstance(trns, int):  # single transparent grey level, as Pillow does for L
            alpha = Image.fromarray(np.where(a == trns, 0, 255).astype(np.uint8), mode="L")
            return Image.merge("RGBA", (grey, grey, grey, alpha))
        im = grey
    if im.mode == "P":
        im = im.convert("RGBA")
    return im.convert("RGBA")


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode encoded image bytes to a normalised RGBA image (see module rules).

    Args:
        data: encoded image bytes.
        max_pixels: largest width × height accepted (pixels).

    Returns:
        ``PIL.Image`` in mode RGBA, EXIF-oriented, first frame.

    Raises:
        ImageError: with reason ``empty_image``, ``zero_size_image``, ``decompression_bomb``,
            ``truncated_image`` or ``corrupt_image``.
    """
    return _decode(data, max_pixels, None, _to_rgba)


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None
               ) -> Image.Image:
    """Decode to RGB: the pixels of ``to_rgb(decode(data, max_pixels))`` (alpha composited on
    white), without the RGBA round trip for opaque images.

    Args:
        data: encoded image bytes.
        max_pixels: largest width × height accepted (pixels, of the full-size image).
        min_side: when set, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg DCT
            scaling, ``Image.draft``) as long as its shortest side stays ≥ ``min_side`` pixels;
            use the size the image is resized to next. ``None``: full size, pixel-identical to
            ``to_rgb(decode(...))``.

    Returns:
        ``PIL.Image`` in mode RGB, EXIF-oriented, first frame.

    Raises:
        ImageError: as :func:`decode`.
    """
    return _decode(data, max_pixels, min_side, _to_rgb_direct)


def _to_rgb_direct(im: Image.Image) -> Image.Image:
    if im.mode in ("RGB", "L", "CMYK", "YCbCr") and "transparency" not in im.info:
        return im if im.mode == "RGB" else im.convert("RGB")  # opaque: nothing to composite
    return to_rgb(_to_rgba(im))


def _decode(data: bytes, max_pixels: int, min_side: int | None, finish) -> Image.Image:
    if not data:
        raise ImageError("empty_image", "zero-byte image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w <= 0 or h <= 0:
                raise ImageError("zero_size_image", f"size {w}x{h}")
            if w * h > max_pixels:
                raise ImageError("decompression_bomb", f"{w}x{h} > {max_pixels} pixels")
            im.seek(0)
            if min_side and im.format in ("JPEG", "MPO") and min(w, h) >= 2 * min_side:
                # scale = largest of 8, 4, 2 ≤ min(w, h) // min_side: shortest side ≥ min_side
                im.draft(im.mode, (min_side, min_side))
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return finish(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError("decompression_bomb", str(e)) from e
    except OSError as e:
        reason = "truncated_image" if "truncated" in str(e).lower() else "corrupt_image"
        raise ImageError(reason, _message(e)) from e
    except Exception as e:
        raise _classify(e) from e


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Composite an RGBA image onto an opaque background (white by default), giving RGB."""
    if im.mode != "RGBA":
        return im.convert("RGB")
    bg = Image.new("RGB", im.size, background)
    bg.paste(im, mask=im.getchannel("A"))
    return bg
