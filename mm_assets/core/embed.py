"""Embedding a shard: image samples through the image tower, text-only samples through the
text encoder, each in its own space, L2-normalised and stored as float16.

Decoding and preprocessing run in a ``torch.utils.data.DataLoader`` (``num_workers``
configurable) so they overlap the model. The first image of a sample represents it
(multi-image samples: stated in metadata).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .encoders import ImageEncoder, MiniLMTextEncoder
from .images import ImageError, decode, to_rgb
from .records import Quarantined, Sample


@dataclass(slots=True)
class ShardEmbeddings:
    """Embeddings of one shard.

    Attributes:
        image_keys: keys of image samples, aligned with ``image``.
        image: (N_img, D_img) float16, L2-normalised.
        text_keys: keys of text-only samples, aligned with ``text``.
        text: (N_txt, D_txt) float16, L2-normalised.
        quarantined: samples whose image could not be decoded.
    """

    image_keys: list[str]
    image: np.ndarray
    text_keys: list[str]
    text: np.ndarray
    quarantined: list[Quarantined] = field(default_factory=list)


class _Images(Dataset):
    def __init__(self, blobs: list[bytes], preprocess, max_pixels: int):
        self.blobs, self.preprocess, self.max_pixels = blobs, preprocess, max_pixels

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int):
        try:
            return self.preprocess(to_rgb(decode(self.blobs[i], self.max_pixels))), ""
        except ImageError as e:
            return torch.zeros(1), e.reason


def _collate(items):
    ok = [x for x, err in items if not err]
    return (torch.stack(ok) if ok else None), [err for _, err in items]


def embed_images(blobs: list[bytes], enc: ImageEncoder, batch_size: int, num_workers: int,
                 max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """Embed encoded images.

    Returns:
        ``(vectors (N_ok, D) float32, errors)`` where ``errors[i]`` is ``""`` for an embedded
        image and a reason otherwise; vectors follow the order of the ok images.
    """
    loader = DataLoader(_Images(blobs, enc.preprocess, max_pixels), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=_collate)
    vecs, errors = [], []
    for batch, errs in loader:
        errors.extend(errs)
        if batch is not None:
            vecs.append(enc.forward(batch))
    return (np.concatenate(vecs) if vecs else np.zeros((0, enc.dim), np.float32)), errors


def embed_shard(samples: list[Sample], image_enc: ImageEncoder, text_enc: MiniLMTextEncoder,
                batch_size: int = 32, num_workers: int = 0,
                max_pixels: int = 64_000_000) -> ShardEmbeddings:
    """Embed every sample of a shard (see module doc for the rules)."""
    img = [s for s in samples if s.images]
    txt = [s for s in samples if not s.images]
    vecs, errors = embed_images([s.images[0] for s in img], image_enc, batch_size,
                                num_workers, max_pixels)
    keys = [s.key for s, e in zip(img, errors, strict=True) if not e]
    bad = [Quarantined(s.key, "embeddings", e, "first image failed to decode")
           for s, e in zip(img, errors, strict=True) if e]
    tvec = text_enc.encode([s.text() for s in txt], batch_size)
    return ShardEmbeddings(keys, vecs.astype(np.float16), [s.key for s in txt],
                           tvec.astype(np.float16), bad)
