"""Embedding a shard: image samples through the image tower, text-only samples through the
text encoder, each in its own space, L2-normalised and stored as float16.

Decoding and preprocessing run in a ``torch.utils.data.DataLoader`` (``num_workers``
configurable) so they overlap the model. A multi-image sample is represented by the
L2-normalised mean of its image vectors.
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
        image: (N_img, D_img) float16, L2-normalised (mean over a sample's images).
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
    """Embed every sample of a shard (see module doc for the rules).

    A multi-image sample is the L2-normalised mean of its image vectors; a sample any of whose
    images fails to decode is quarantined (reason from the decoder).
    """
    img = [s for s in samples if s.images]
    txt = [s for s in samples if not s.images]
    owner = np.array([i for i, s in enumerate(img) for _ in s.images], dtype=np.int64)
    vecs, errors = embed_images([b for s in img for b in s.images], image_enc, batch_size,
                                num_workers, max_pixels)
    bad_reason: dict[int, str] = {}
    for o, e in zip(owner, errors, strict=True):
        if e:
            bad_reason.setdefault(int(o), e)
    ok_owner = owner[[not e for e in errors]] if len(owner) else owner
    sums = np.zeros((len(img), image_enc.dim), np.float64)
    np.add.at(sums, ok_owner, vecs)
    keep = [i for i in range(len(img)) if i not in bad_reason]
    pooled = sums[keep]
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    bad = [Quarantined(img[i].key, "embeddings", r, "an image failed to decode")
           for i, r in sorted(bad_reason.items())]
    tvec = text_enc.encode([s.text() for s in txt], batch_size)
    return ShardEmbeddings([img[i].key for i in keep], pooled.astype(np.float16),
                           [s.key for s in txt], tvec.astype(np.float16), bad)
