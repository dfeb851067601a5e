"""The pool must be embedded by the encoder that embedded the corpus: identity and the check.

An encoder's *identity* is ``{model, weights, weights_sha256, dim}``: the model name, the
weights tag/path, a checksum of the weights file (SHA-256, first 16 hex chars; for a tag
with no local file, ``tag:{tag}``; for seeded random weights ``random-init``) and the output
dimension. Pool and corpus vectors are comparable iff their identities agree on
``model``, ``weights_sha256`` and ``dim`` (backend and device may differ: onnxruntime and
torch agree to ≤ 5e-6, CUDA's bf16 autocast to ~1e-3 cosine).

The corpus side: the ``embeddings`` asset writes the identity of the encoder that embedded
each shard to ``embeddings/{shard}/encoder.json`` (:func:`write_shard_identity`), next to the
vectors it describes, so a re-embedded shard always carries its own encoder.
:func:`corpus_identities` reads them for the committed shards; the corpus must use one encoder
and the pool the same one. Shards embedded before the file existed are accepted only when the
pool encoder's :func:`~mm_assets.core.semantic.embed_cache.encoder_fingerprint` folder holds
their segment (the content-addressed store of that very encoder).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from mm_assets.core import layout
from mm_assets.core.storage import Store

COMPARED = ("model", "weights_sha256", "dim")


class EncoderMismatchError(RuntimeError):
    """The pool's encoder is not the encoder of the corpus embeddings (message names both)."""


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def weights_checksum(enc) -> str:
    """SHA-256 (16 hex) of ``enc``'s weights file, ``tag:{tag}``, or ``random-init``."""
    if enc.pretrained is None:
        return "random-init"
    if enc.name == "efficientnet_lite0":
        from mm_assets.core.semantic.efficientnet import weights_path

        return _file_sha256(str(weights_path()))
    path = str(enc.pretrained).split("@")[-1]
    return _file_sha256(path) if Path(path).is_file() else f"tag:{enc.pretrained}"


def encoder_identity(enc) -> dict:
    """Identity of a loaded :class:`~mm_assets.core.semantic.encoders.ImageEncoder`."""
    return {"model": enc.name, "weights": enc.pretrained or "random-init",
            "weights_sha256": weights_checksum(enc), "dim": int(enc.dim),
            "backend": getattr(enc, "backend", "torch"), "device": enc.device}


def same_encoder(a: dict, b: dict) -> bool:
    """Whether two identities name the same model, weights and dimension."""
    return all(a.get(k) == b.get(k) for k in COMPARED)


def describe(ident: dict) -> str:
    """``efficientnet_lite0 weights imagenet-1k (sha256 1a2b…) D=1280``."""
    return (f"{ident.get('model')} weights {ident.get('weights')} "
            f"(sha256 {ident.get('weights_sha256')}) D={ident.get('dim')}")


def write_shard_identity(store: Store, shard: str, fingerprint: str, enc) -> None:
    """Record ``enc``'s identity beside one corpus shard's vectors
    (``embeddings/{shard}/encoder.json``; the embeddings asset calls it per shard)."""
    store.write_bytes(layout.embedding_encoder(shard), json.dumps(
        {"fingerprint": fingerprint, **encoder_identity(enc)}, indent=1, sort_keys=True).encode())


def corpus_identities(store: Store) -> tuple[dict[tuple, dict], list[str]]:
    """The encoders of the committed ``embeddings`` shards, from their ``encoder.json``.

    Returns:
        ``({(model, weights_sha256, dim): {**identity, "shards": [...]}}, unrecorded)``: one
        entry per distinct encoder, and the committed shards written before identities were
        recorded. Reads one small file per shard (concurrently on object stores).

    Raises:
        mm_assets.core.commits.UncommittedError: no embeddings shard is committed.
    """
    from mm_assets.core.commits import committed

    shards = committed(store, "embeddings")
    paths = {store.path(layout.embedding_encoder(s)): s for s in shards}
    found = store.fs.cat(list(paths), on_error="omit") if paths else {}
    found = {paths.get(p, paths.get(p.lstrip("/"))): v for p, v in found.items()}
    out: dict[tuple, dict] = {}
    for shard in shards:
        if shard in found:
            ident = json.loads(found[shard])
            entry = out.setdefault(tuple(ident.get(k) for k in COMPARED), {**ident, "shards": []})
            entry["shards"].append(shard)
    return out, [s for s in shards if s not in found]


def check_pool_encoder(store: Store, enc, fingerprint: str) -> dict:
    """Refuse to embed a pool with another encoder than the corpus's.

    Args:
        store: storage root of the corpus.
        enc: the pool's loaded image encoder.
        fingerprint: its :func:`~mm_assets.core.semantic.embed_cache.encoder_fingerprint`.

    Returns:
        The pool encoder's identity, with ``fingerprint``.

    Raises:
        EncoderMismatchError: the corpus shards' recorded encoder is another one (both named),
            the corpus itself mixes encoders, or shards without a recorded identity have no
            vectors under the pool encoder's fingerprint.
        mm_assets.core.commits.UncommittedError: the corpus has no committed embeddings.
    """
    mine = {**encoder_identity(enc), "fingerprint": fingerprint}
    recorded, unrecorded = corpus_identities(store)
    if len(recorded) > 1:
        raise EncoderMismatchError(
            "the corpus embeddings mix encoders (" + "; ".join(
                f"{describe(e)}: {len(e['shards'])} shard(s)" for e in recorded.values())
            + "): re-materialize embeddings with one encoder, then clusters")
    for theirs in recorded.values():
        if not same_encoder(mine, theirs):
            raise EncoderMismatchError(
                f"pool encoder {describe(mine)} is not the corpus encoder {describe(theirs)} "
                f"(corpus fingerprint {theirs.get('fingerprint')}): configure the embedder "
                "resource as for the corpus, or re-embed the corpus and re-cluster")
    if unrecorded:
        have = set(store.ls(layout.image_embeddings_dir(fingerprint), layout.PARQUET))
        missing = [s for s in unrecorded if f"{s}{layout.PARQUET}" not in have]
        if missing:
            raise EncoderMismatchError(
                f"pool encoder {describe(mine)} (fingerprint {fingerprint}) did not embed "
                f"corpus shard(s) {missing[:5]} (no encoder.json recorded, no segment under "
                f"{store.url(layout.image_embeddings_dir(fingerprint))}): use the corpus's "
                "embedder settings, or re-materialize embeddings to record its encoder")
    return mine
