"""Each distinct image embedded once: forwards counted, vectors identical to per-sample ones."""

import io

import numpy as np
import torch
from PIL import Image

from mm_assets.core.records import Sample
from mm_assets.core.semantic.embed import embed_shard
from mm_assets.core.semantic.embed_cache import (
    ImageEmbeddingStore,
    embed_shard_cached,
    encoder_fingerprint,
)
from mm_assets.core.semantic.encoders import ImageEncoder
from mm_assets.core.storage import Store

CONV = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]


class Counting(torch.nn.Module):
    """A tiny seeded conv net that counts the images it is given."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.fc = torch.nn.Linear(8, 16)
        self.images = 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def _encoder() -> tuple[ImageEncoder, Counting]:
    net = Counting().eval()

    def pre(im):
        return torch.from_numpy(np.asarray(im.resize((16, 16)), np.float32) / 255).permute(2, 0, 1)

    return ImageEncoder("tiny-counting", net, pre, 16, "cpu", None), net


class NoText:
    def encode(self, texts, batch_size=64):
        return np.zeros((len(texts), 4), np.float32)


def _png(i: int) -> bytes:
    rng = np.random.default_rng(i)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _corpus(n_samples=5000, n_images=500, shards=5):
    """``shards`` shards over ``n_images`` distinct images; 3% of samples have two images,
    every image appears (the first ``n_images`` samples use each once)."""
    rng = np.random.default_rng(1)
    imgs = [_png(i) for i in range(n_images)]
    picks = np.concatenate([np.arange(n_images), rng.integers(0, n_images, n_samples - n_images)])
    rng.shuffle(picks)
    samples = []
    for i, p in enumerate(picks):
        ims = [imgs[p]] + ([imgs[(p + 1) % n_images]] if i % 33 == 0 else [])
        samples.append(Sample(f"s{i:05d}", CONV, ims, ["png"] * len(ims)))
    per = n_samples // shards
    return [samples[j * per:(j + 1) * per] for j in range(shards)]


def test_5000_samples_over_500_images_run_500_forwards_with_identical_vectors(tmp_path):
    shards = _corpus()
    enc, net = _encoder()
    cache = ImageEmbeddingStore(Store(str(tmp_path)), encoder_fingerprint(enc, True, 10**8),
                                enc.dim)
    cached = []
    for j, part in enumerate(shards):
        emb, stats = embed_shard_cached(part, enc, NoText(), cache, f"{j:05d}", batch_size=64)
        cached.append(emb)
        assert stats.forwards == stats.distinct - stats.reused - stats.carried
    assert net.images == 500
    net.images = 0
    for part, emb in zip(shards, cached, strict=True):
        ref = embed_shard(part, enc, NoText(), batch_size=64)
        assert emb.image_keys == ref.image_keys
        np.testing.assert_array_equal(emb.image, ref.image)
    assert net.images == sum(len(s.images) for p in shards for s in p) > 5000


def test_rerun_and_reingest_embed_nothing_and_rewrite_the_same_bytes(tmp_path):
    shards = _corpus(600, 60, 3)
    enc, net = _encoder()
    store = Store(str(tmp_path))
    fp = encoder_fingerprint(enc, True, 10**8)
    first = [embed_shard_cached(p, enc, NoText(), ImageEmbeddingStore(store, fp, 16), f"{j}")[0]
             for j, p in enumerate(shards)]
    files = {p.name: p.read_bytes() for p in (tmp_path / "image_embeddings" / fp).iterdir()}
    net.images = 0
    for j, p in enumerate(shards):  # re-run every shard: carried over or reused
        emb, stats = embed_shard_cached(p, enc, NoText(), ImageEmbeddingStore(store, fp, 16),
                                        f"{j}")
        np.testing.assert_array_equal(emb.image, first[j].image)
    renamed = [Sample(f"re-{s.key}", s.conversations, s.images, s.image_exts) for s in shards[1]]
    emb, stats = embed_shard_cached(renamed, enc, NoText(), ImageEmbeddingStore(store, fp, 16),
                                    "reingest")
    assert net.images == 0 and stats.forwards == 0 and stats.reused == stats.distinct
    np.testing.assert_array_equal(emb.image, first[1].image)
    now = {p.name: p.read_bytes() for p in (tmp_path / "image_embeddings" / fp).iterdir()}
    assert {k: v for k, v in now.items() if not k.startswith("reingest")} == files


def test_failed_images_are_cached_with_their_reason_and_another_encoder_has_its_own_store(
        tmp_path):
    enc, net = _encoder()
    store = Store(str(tmp_path))
    bad = Sample("bad", CONV, [_png(1), b"\x89PNG broken"], ["png", "png"])
    good = Sample("good", CONV, [_png(1)], ["png"])
    fp = encoder_fingerprint(enc, True, 10**8)
    a, _ = embed_shard_cached([bad, good], enc, NoText(), ImageEmbeddingStore(store, fp, 16), "0")
    b, stats = embed_shard_cached([Sample("bad2", CONV, bad.images, bad.image_exts)], enc,
                                  NoText(), ImageEmbeddingStore(store, fp, 16), "1")
    assert [(q.key, q.reason) for q in a.quarantined] == [("bad", "corrupt_image")]
    assert [(q.key, q.reason) for q in b.quarantined] == [("bad2", "corrupt_image")]
    assert stats.forwards == 0 and net.images == 1
    other = encoder_fingerprint(enc, False, 10**8)
    assert other != fp
    _, stats = embed_shard_cached([good], enc, NoText(), ImageEmbeddingStore(store, other, 16), "0")
    assert stats.forwards == 1
