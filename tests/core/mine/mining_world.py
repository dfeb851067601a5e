"""A small corpus + pool written straight into a storage root, for the mining tests and
``bench/mine_pool_demo.py``: the tables ``pool_assign``, ``image_hashes``, ``embeddings`` and
``clusters`` would write (same schemas, same hash functions, commit records), without running
those stages.

Images are 48×48 PNGs: a kind-specific stripe pattern (the "cluster" a picture belongs to)
plus a smooth random field of its own. The stand-in encoder :func:`embed` is the
L2-normalised, mean-subtracted 16×16 grey thumbnail (256-d): a resized copy lands at cosine
≈ 1 from its original, unrelated pictures of one kind at ≈ 0.2-0.5, so clusters, near
copies and semantic duplicates behave as with a real encoder, and a test can recompute it from
the mined shards' bytes. The pool holds fresh images, exact copies, resized copies and mirrored
copies of corpus images, exact duplicates within the pool, short and non-English captions.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from PIL import Image

from mm_assets.core import layout, schemas
from mm_assets.core.commits import file_digest, write_commit
from mm_assets.core.dedup.hashing import hash_image
from mm_assets.core.mine.pool import add_pool, partition_key
from mm_assets.core.records import Sample, StageCounts
from mm_assets.core.shards import iter_tar_spans, write_samples
from mm_assets.core.storage import Store

SIDE = 48
WORDS = ["red", "green", "small", "large", "old", "bright", "dark", "striped", "round", "square", "wooden", "metal", "quiet", "busy", "city", "river", "field", "house", "street", "window", "garden", "table", "light", "shadow"]
FOREIGN = ("Ein rotes Fahrrad lehnt an einer alten Mauer in der warmen Sonne am Nachmittag.",
           "Une petite maison en bois au bord de la rivière sous un ciel gris et calme.")


def picture(rng: np.random.Generator, kind: int, kinds: int) -> Image.Image:
    """One RGB picture of ``kind`` (stripes at a kind-specific angle + a smooth field)."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    ang = np.pi * kind / kinds
    stripes = np.sin(2 * np.pi * (3 + kind % 3) * (xx * np.cos(ang) + yy * np.sin(ang)))
    coarse = rng.normal(size=(6, 6))
    field_ = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize(
        (SIDE, SIDE), Image.Resampling.BICUBIC))
    g = 0.8 * stripes + field_ / (np.abs(field_).max() + 1e-6)
    tint = rng.uniform(0.6, 1.0, 3)
    rgb = np.clip(128 + 60 * g[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb)


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def embed(data: bytes) -> np.ndarray:
    """The stand-in encoder: (256,) float32, L2-normalised (see the module doc)."""
    im = Image.open(io.BytesIO(data)).convert("L").resize((16, 16), Image.Resampling.BILINEAR)
    v = np.asarray(im, np.float32).ravel()
    v = v - v.mean()
    return v / (np.linalg.norm(v) + 1e-9)


@dataclass
class World:
    """What the builder wrote and the ground truth of the pool."""

    store: Store
    pool: str
    corpus: dict[str, bytes] = field(default_factory=dict)   # corpus key -> image bytes
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)  # pool key -> (how, of)
    sizes: Counter = field(default_factory=Counter)            # corpus images per cluster


def _caption(rng) -> str:
    return "A " + " ".join(rng.choice(WORDS, size=int(rng.integers(4, 9)))) + "."


def build_world(root: str, pool_dir: str, n_corpus: int = 240, n_pool: int = 900,
                kinds: int = 6, pool_shard: int = 300, corpus_shard: int = 80, seed: int = 0,
                pool: str = "testpool") -> World:
    """Write a corpus of ``n_corpus`` images (``kinds`` clusters, skewed sizes) and a pool of
    ``n_pool`` images into ``root``; pool shards (WebDataset) go to ``pool_dir``."""
    rng = np.random.default_rng(seed)
    store = Store(root)
    w = World(store, pool)
    skew = np.arange(1, kinds + 1, dtype=float) ** 1.5
    corpus_kind = rng.choice(kinds, size=n_corpus, p=skew / skew.sum())
    keys = [f"c{i:06d}" for i in range(n_corpus)]
    for k, kind in zip(keys, corpus_kind, strict=True):
        w.corpus[k] = png(picture(rng, int(kind), kinds))
    vecs = np.stack([embed(b) for b in w.corpus.values()])
    cents = np.stack([vecs[corpus_kind == k].mean(0) for k in range(kinds)])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    assign = (vecs @ cents.T).argmax(1).astype(np.int32)
    store.write_npy(layout.centroids("image"), cents.astype(np.float32))
    store.write_table(layout.CLUSTER_ASSIGNMENTS, pl.DataFrame({
        "key": keys, "space": ["image"] * n_corpus, "cluster": assign,
        "distance": (1 - (vecs * cents[assign]).sum(1)).astype(np.float32)},
        schema=schemas.CLUSTER_ASSIGNMENTS), schemas.CLUSTER_ASSIGNMENTS)
    w.sizes = Counter(assign.tolist())
    for s0 in range(0, n_corpus, corpus_shard):
        shard = f"{s0 // corpus_shard:06d}"
        ks = keys[s0:s0 + corpus_shard]
        hs = [hash_image(w.corpus[k], 10**8) for k in ks]
        store.write_table(layout.image_hashes(shard), pl.DataFrame({
            "key": ks, "source": ["corpus"] * len(ks), "n_images": [1] * len(ks),
            "bytes_hashes": [[h.bytes_hash] for h in hs],
            "pixel_hashes": [[h.pixel_hash] for h in hs],
            "phashes": [[h.phash] for h in hs], "phashes_flip": [[h.phash_flip] for h in hs],
            "list_hash": [h.bytes_hash for h in hs], "pixel_list_hash": [h.pixel_hash for h in hs],
            "text_hash": ks, "widths": [[h.width] for h in hs],
            "heights": [[h.height] for h in hs]}, schema=schemas.IMAGE_HASHES),
            schemas.IMAGE_HASHES)
        store.write_npy(layout.embedding_vectors(shard, "image"),
                        vecs[s0:s0 + len(ks)].astype(np.float16))
        store.write_table(layout.embedding_keys(shard, "image"), pl.DataFrame({"key": ks}),
                          schemas.EMBEDDING_KEYS)
        with store.open_write(layout.raw_shard(shard)) as f:
            write_samples(f, [Sample(k, [{"from": "human", "value": "<image>\nWhat is this?"},
                                         {"from": "gpt", "value": f"Corpus picture {k}."}],
                                     [w.corpus[k]], ["png"], "corpus") for k in ks])
        for asset in ("raw_shards", "image_hashes", "embeddings"):
            write_commit(store, asset, shard, StageCounts(len(ks), len(ks)))
    _write_pool(w, pool_dir, n_pool, kinds, pool_shard, rng, cents)
    return w


def _pool_item(w: World, rng, i: int, kinds: int) -> tuple[bytes, str, tuple | None]:
    """One pool image, its caption and (how, corpus key) when it copies a corpus image."""
    u, ck = rng.random(), list(w.corpus)[int(rng.integers(len(w.corpus)))]
    cap = _caption(rng)
    if u < 0.04:
        return w.corpus[ck], cap, ("exact", ck)
    if u < 0.08:
        im = Image.open(io.BytesIO(w.corpus[ck]))
        side = int(rng.choice([40, 56, 64]))
        return png(im.resize((side, side), Image.Resampling.BICUBIC)), cap, ("resized", ck)
    if u < 0.10:
        im = Image.open(io.BytesIO(w.corpus[ck]))
        return png(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), cap, ("mirrored", ck)
    if u < 0.13:
        cap = "sunset" if u < 0.115 else FOREIGN[i % 2]
    return png(picture(rng, int(rng.integers(kinds)), kinds)), cap, None


def _write_pool(w: World, pool_dir: str, n: int, kinds: int, per_shard: int, rng, cents):
    os.makedirs(pool_dir, exist_ok=True)
    store, items = w.store, []
    for i in range(n):
        items.append(_pool_item(w, rng, i, kinds))
        if i % 97 == 5:  # an exact duplicate within the pool
            items.append((items[-1][0], _caption(rng), ("pool_dup", f"{i}")))
    for s0 in range(0, len(items), per_shard):
        stem = f"{s0 // per_shard:05d}"
        chunk = items[s0:s0 + per_shard]
        with tarfile.open(os.path.join(pool_dir, f"{stem}.tar"), "w") as tf:
            for j, (data, cap, _) in enumerate(chunk):
                for ext, blob in (("png", data), ("txt", cap.encode())):
                    info = tarfile.TarInfo(f"s{s0 + j:07d}.{ext}")
                    info.size = len(blob)
                    tf.addfile(info, io.BytesIO(blob))
        with open(os.path.join(pool_dir, f"{stem}.tar"), "rb") as f:  # as pool_assign records
            spans = [span for _, _, span in iter_tar_spans(f)]
        rows, vecs = [], []
        for j, (data, cap, truth) in enumerate(chunk):
            h, v = hash_image(data, 10**8), embed(data)
            sims = cents @ v
            top = np.argsort(-sims)[:2]
            key = f"{w.pool}/{stem}/s{s0 + j:07d}"
            if truth:
                w.copies[key] = truth
            rows.append({"key": key, "pool": w.pool, "shard": stem, "wds_key": f"s{s0 + j:07d}",
                         "caption": cap, "bytes_hash": h.bytes_hash, "pixel_hash": h.pixel_hash,
                         "phash": h.phash, "phash_flip": h.phash_flip, "width": h.width,
                         "height": h.height, "row": j, "cluster": int(top[0]),
                         "sim": float(sims[top[0]]), "cluster2": int(top[1]),
                         "sim2": float(sims[top[1]]), "span_start": spans[j][0],
                         "span_end": spans[j][1]})
            vecs.append(v)
        store.write_table(layout.pool_assign(w.pool, stem),
                          pl.DataFrame(rows, schema=schemas.POOL_ASSIGN), schemas.POOL_ASSIGN)
        store.write_npy(layout.pool_vectors(w.pool, stem), np.stack(vecs).astype(np.float16))
        store.write_bytes(layout.pool_sidecar(w.pool, stem), json.dumps(  # as pool_assign
            {"centroids": {"digest": file_digest(store, layout.centroids("image"))}}).encode())
        write_commit(store, "pool_assign", partition_key(w.pool, stem),
                     StageCounts(len(chunk), len(chunk)))
    add_pool(store, w.pool, [pool_dir])
