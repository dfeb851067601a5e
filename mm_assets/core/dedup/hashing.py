"""Exact and perceptual hashes of images and text.

- bytes hash: xxh3-128 of the encoded bytes (hex, 32 chars).
- pixel hash: xxh3-128 of the normalised RGBA pixels plus size (see :mod:`.images`), so the
  same picture saved as PNG and BMP hashes alike.
- perceptual hash: pHash (as ``imagehash.phash``, 64 bits) of the RGB image, compared by
  Hamming distance, and the pHash of its horizontal mirror (for flip-invariant search).
- text hash: xxh3-128 of NFKC-normalised, case-folded, whitespace-collapsed text.
- list hash: xxh3-128 over the ordered per-image hashes; ``None`` for text-only samples, so
  they never group together through an empty image list.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import xxhash
from PIL import Image

from mm_assets.core.ingest.images import ImageError, decode, to_rgb

_WS = re.compile(r"\s+")


def bytes_hash(data: bytes) -> str:
    """xxh3-128 of ``data`` as 32 hex characters."""
    return xxhash.xxh3_128_hexdigest(data)


def pixel_hash(im: Image.Image) -> str:
    """xxh3-128 of an RGBA image's size and pixel bytes."""
    h = xxhash.xxh3_128()
    h.update(f"{im.mode}:{im.width}x{im.height}:".encode())
    h.update(im.tobytes())
    return h.hexdigest()


MIN_PHASH_SIDE = 16
MIN_PHASH_STD = 4.0


def perceptual_hashes(im: Image.Image) -> tuple[int | None, int | None]:
    """64-bit pHash of the image and of its horizontal mirror, as signed int64-compatible ints.

    pHash as ``imagehash.phash`` (hash_size 8): 32×32 grey LANCZOS thumbnail, 2-D DCT-II, the
    8×8 lowest frequencies thresholded at their median; bits row-major, first bit highest
    (identical to ``imagehash.phash``). The mirror hash comes from the same DCT: mirroring
    the thumbnail's columns multiplies horizontal frequency ``v`` by ``(-1)**v``, so it is
    exactly the pHash of the mirrored thumbnail, at no extra decode or resize.

    ``(None, None)`` for images too small (side < 16 px) or too flat (grey std < 4 on a 32×32
    thumbnail) to carry a meaningful pHash: their hashes collide with unrelated flat images.
    """
    import scipy.fftpack

    rgb = to_rgb(im)
    if min(rgb.size) < MIN_PHASH_SIDE:
        return None, None
    thumb = rgb.convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    if float(np.asarray(thumb, dtype=np.float32).std()) < MIN_PHASH_STD:
        return None, None
    pixels = np.asarray(rgb.convert("L").resize((32, 32), Image.Resampling.LANCZOS))
    low = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
    mirrored = low * _MIRROR_SIGN
    return _bits(low > np.median(low)), _bits(mirrored > np.median(mirrored))


_MIRROR_SIGN = np.where(np.arange(8) % 2 == 0, 1.0, -1.0)[None, :]


def _bits(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big", signed=True)


def perceptual_hash(im: Image.Image) -> int | None:
    """64-bit pHash of ``im`` (see :func:`perceptual_hashes`); ``None`` when too small/flat."""
    return perceptual_hashes(im)[0]


def hamming(a: int, b: int) -> int:
    """Hamming distance between two 64-bit hashes stored as signed ints."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def normalise_text(text: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> str:
    """xxh3-128 of normalised text (NFKC, case-folded, whitespace collapsed)."""
    return xxhash.xxh3_128_hexdigest(normalise_text(text).encode())


def list_hash(hashes: list[str]) -> str | None:
    """Hash of an ordered list of hashes; ``None`` for an empty list (text-only)."""
    if not hashes:
        return None
    return xxhash.xxh3_128_hexdigest("|".join(hashes).encode())


@dataclass(slots=True)
class ImageHashes:
    """Hashes of one encoded image; ``error`` set (and hashes empty) when it cannot decode."""

    bytes_hash: str
    pixel_hash: str | None
    phash: int | None
    phash_flip: int | None = None
    width: int = 0
    height: int = 0
    error: str | None = None


def hash_image(data: bytes, max_pixels: int) -> ImageHashes:
    """All hashes of one image. Decoding failures are returned, not raised."""
    bh = bytes_hash(data)
    try:
        im = decode(data, max_pixels)
    except ImageError as e:
        return ImageHashes(bh, None, None, error=e.reason)
    return hashes_of_decoded(bh, im)


def hashes_of_decoded(bh: str, im: Image.Image) -> ImageHashes:
    """Hashes of an image already decoded by :func:`decode` (``bh``: its bytes hash)."""
    ph, flip = perceptual_hashes(im)
    return ImageHashes(bh, pixel_hash(im), ph, flip, im.width, im.height)
