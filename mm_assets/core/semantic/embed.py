"""Embedding a shard: image samples through the image tower, text-only samples through the
text encoder, each in its own space, L2-normalised and stored as float16.

Decoding and preprocessing run in a ``torch.utils.data.DataLoader`` (``num_workers``
configurable) so they overlap the model. When the model's transform splits
(:class:`~mm_assets.core.semantic.encoders.SplitPreprocess`), the per-image work stays cheap and in uint8: JPEGs are
decoded at reduced DCT scale down to the resize size (``Image.draft``), resize and crop run in
PIL, and the scaling/normalisation runs once per batch, single-threaded in the collate on CPU or
on the GPU (batches then travel as uint8). A multi-image sample is represented by the
L2-normalised mean of its image vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS, ImageError, decode_rgb
from mm_assets.core.records import Quarantined, Sample
from mm_assets.core.semantic.encoders import ImageEncoder, MiniLMTextEncoder


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
    def __init__(self, blobs: list[bytes], enc: ImageEncoder, max_pixels: int, draft: bool):
        self.blobs, self.max_pixels = blobs, max_pixels
        self.transform = enc.split.to_uint8 if enc.split else enc.preprocess
        self.min_side = enc.split.min_side if enc.split and draft else None
        # CPU: normalise in the collate (in the worker, one thread); GPU: ship uint8
        self.normalize = enc.split.normalize_numpy if enc.split and enc.device == "cpu" else None

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int):
        try:
            return self.transform(decode_rgb(self.blobs[i], self.max_pixels, self.min_side)), ""
        except ImageError as e:
            return None, e.reason


class _Collate:
    def __init__(self, normalize):
        self.normalize = normalize

    def __call__(self, items):
        ok = [x for x, err in items if not err]
        if not ok:
            batch = None
        elif not isinstance(ok[0], np.ndarray):  # (B, 3, H, W) float from ``preprocess``
            batch = torch.stack(ok)
        elif self.normalize:  # (B, 3, H, W) float32
            batch = torch.from_numpy(self.normalize(ok))
        else:  # (B, H, W, 3) uint8, normalised on the device by ``forward``
            batch = torch.from_numpy(np.stack(ok))
        return batch, [err for _, err in items]


def embed_images(blobs: list[bytes], enc: ImageEncoder, batch_size: int, num_workers: int,
                 max_pixels: int, draft: bool = True) -> tuple[np.ndarray, list[str]]:
    """Embed encoded images.

    ``draft=False`` decodes JPEGs at full size: the model input is then exactly
    ``enc.preprocess(to_rgb(decode(blob)))``; with draft, large JPEGs differ by ~1/255 per
    pixel on average (embedding cosine to the full decode ≥ 0.999 on the LLaVA sample images).

    Returns:
        ``(vectors (N_ok, D) float32, errors)`` where ``errors[i]`` is ``""`` for an embedded
        image and a reason otherwise; vectors follow the order of the ok images.
    """
    data = _Images(blobs, enc, max_pixels, draft)
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_Collate(data.normalize),
                        pin_memory=num_workers > 0 and enc.device.startswith("cuda"))
    vecs, errors = [], []
    for batch, errs in loader:
        errors.extend(errs)
        if batch is not None:
            vecs.append(enc.forward(batch))
    return (np.concatenate(vecs) if vecs else np.zeros((0, enc.dim), np.float32)), errors


def embed_shard(samples: list[Sample], image_enc: ImageEncoder, text_enc: MiniLMTextEncoder,
                batch_size: int = 32, num_workers: int = 0,
                max_pixels: int = DEFAULT_MAX_PIXELS, draft: bool = True) -> ShardEmbeddings:
    """Embed every sample of a shard (see module doc for the rules).

    A multi-image sample is the L2-normalised mean of its image vectors; a sample any of whose
    images fails to decode is quarantined (reason from the decoder). ``draft``: see
    :func:`embed_images`.
    """
    img = [s for s in samples if s.images]
    txt = [s for s in samples if not s.images]
    vecs, errors = embed_images([b for s in img for b in s.images], image_enc, batch_size,
                                num_workers, max_pixels, draft)
    keys, pooled, bad = pool_images(img, vecs, errors, image_enc.dim)
    tvec = text_enc.encode([s.text() for s in txt], batch_size)
    return ShardEmbeddings(keys, pooled, [s.key for s in txt], tvec.astype(np.float16), bad)


def pool_images(img: list[Sample], vecs: np.ndarray, errors: list[str], dim: int
                ) -> tuple[list[str], np.ndarray, list[Quarantined]]:
    """One vector per image sample: the L2-normalised mean of its images' vectors.

    Args:
        img: samples with ≥ 1 image; their images, flattened in order, are the rows below.
        vecs: (N_ok, D) float32 vectors of the images that decoded, in order.
        errors: one entry per image, ``""`` when it decoded, else the reason.
        dim: D.

    Returns:
        ``(keys, (N_kept, D) float16, quarantined)``: a sample any of whose images failed is
        quarantined with the first failing image's reason.
    """
    owner = np.array([i for i, s in enumerate(img) for _ in s.images], dtype=np.int64)
    bad_reason: dict[int, str] = {}
    for o, e in zip(owner, errors, strict=True):
        if e:
            bad_reason.setdefault(int(o), e)
    ok_owner = owner[[not e for e in errors]] if len(owner) else owner
    sums = np.zeros((len(img), dim), np.float64)
    np.add.at(sums, ok_owner, vecs)
    keep = [i for i in range(len(img)) if i not in bad_reason]
    pooled = sums[keep]
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    bad = [Quarantined(img[i].key, "embeddings", r, "an image failed to decode")
           for i, r in sorted(bad_reason.items())]
    return [img[i].key for i in keep], pooled.astype(np.float16), bad
