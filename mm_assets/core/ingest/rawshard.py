"""Build one canonical raw shard from its ingest manifest.

Every record of the manifest ends as exactly one of: a sample in ``raw_shards/{shard}.tar`` or
a quarantined row with its reason. Image bytes are kept as they are (never re-encoded), so byte
hashes downstream describe the original files; each image is decoded once here (bounded by a
pixel cap) to make sure it is usable.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec

from mm_assets.core.dedup.exact import hash_row
from mm_assets.core.dedup.hashing import ImageHashes, bytes_hash, hashes_of_decoded
from mm_assets.core.ingest.formats import SourceRecord, normalise, safe_id
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS, ImageError, decode, sniff_ext
from mm_assets.core.ingest.plan import resolve_image
from mm_assets.core.records import ASSISTANT, HUMAN, IMAGE_TOKEN, Quarantined, Sample
from mm_assets.core.shards import iter_tar_groups

IMAGE_EXTS = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"}
VIDEO_EXTS = {"mp4", "webm", "avi", "mov", "mkv"}


@dataclass(frozen=True, slots=True)
class RawShardConfig:
    """Validation limits for raw shards.

    Attributes:
        max_pixels: largest image accepted (width × height, pixels).
        max_text_chars: longest conversation accepted (characters, all turns).
        workers: processes building the shards of one run (0 = one per core).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_text_chars: int = 200_000
    workers: int = 0

    def __post_init__(self) -> None:
        if self.max_pixels <= 0 or self.max_text_chars <= 0:
            raise ValueError("max_pixels and max_text_chars must be > 0")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per core), got {self.workers}")


class _Reject(Exception):
    def __init__(self, reason: str, error: str):
        super().__init__(error)
        self.reason, self.error = reason, error


MEDIA_TOKENS = ("<video>", "<audio>")


def _check_text(turns: list[dict[str, str]], cfg: RawShardConfig, n_images: int) -> None:
    """Text rules: non-empty turns, a length cap, image tokens only in human (user) turns and
    one per image, no ``<video>``/``<audio>`` tokens (no such media is supported)."""
    if not turns:
        raise _Reject("empty_text", "no turns")
    for n, t in enumerate(turns):
        if not t["value"].strip() or t["value"].strip() == IMAGE_TOKEN and t["from"] != HUMAN:
            raise _Reject("empty_text", f"empty or whitespace-only {t['from']} turn")
        if t["from"] != HUMAN and IMAGE_TOKEN in t["value"]:
            raise _Reject("image_token_in_answer", f"{IMAGE_TOKEN} in {t['from']} turn {n}: "
                                                   f"image tokens belong in user turns")
        media = [m for m in MEDIA_TOKENS if m in t["value"]]
        if media:
            raise _Reject("unsupported_modality", f"{media[0]} token in turn {n} but video/audio "
                                                  f"media are not supported")
    if sum(len(t["value"]) for t in turns) > cfg.max_text_chars:
        raise _Reject("text_too_long", f"conversation longer than {cfg.max_text_chars} chars")
    n_tokens = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
    if n_tokens and n_tokens != n_images:
        raise _Reject("image_token_mismatch", f"{n_tokens} image tokens for {n_images} images")
    if n_images and not n_tokens:  # LLaVA convention: token at the start of the first human turn
        first = next((t for t in turns if t["from"] == HUMAN), None)
        if first is None:
            raise _Reject("image_token_mismatch", "images but no human turn")
        first["value"] = IMAGE_TOKEN * n_images + "\n" + first["value"]


def _load_image(data: bytes, cfg: RawShardConfig, where: str = "") -> tuple[str, ImageHashes]:
    """Extension and hashes of one image, decoded once (the decode that validates it);
    ``where`` (file or tar member) prefixes the quarantine message."""
    try:
        ext = sniff_ext(data)
        im = decode(data, cfg.max_pixels)
    except ImageError as e:
        raise _Reject(e.reason, f"{where}: {e}" if where else str(e)) from e
    return ext, hashes_of_decoded(bytes_hash(data), im)


def _from_record(rec: SourceRecord, image_root: str, cfg: RawShardConfig
                 ) -> tuple[Sample, list[ImageHashes]]:
    if rec.reason:
        raise _Reject(rec.reason, rec.error or rec.reason)
    if rec.conversations is None:
        raise _Reject("missing_conversations", "record has no conversations")
    images, exts, hashes = [], [], []
    for ref in rec.image_refs:
        url, bad = resolve_image(ref, image_root)
        if bad:
            raise _Reject(bad, f"image path {ref!r} escapes {image_root}")
        try:
            with fsspec.open(url, "rb") as f:
                data = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise _Reject("missing_image", f"{url}: {type(e).__name__}") from e
        ext, h = _load_image(data, cfg, url)
        exts.append(ext)
        hashes.append(h)
        images.append(data)
    _check_text(rec.conversations, cfg, len(images))
    meta = dict(rec.metadata)
    meta["location"] = rec.location
    return Sample(rec.key, rec.conversations, images, exts, rec.source, meta), hashes


def _decompress(parts: dict[str, bytes], where: str) -> dict[str, bytes]:
    """WebDataset convention: a ``.gz`` member is stored compressed (``txt.gz`` -> ``txt``)."""
    out = {}
    for ext, data in parts.items():
        if ext.endswith(".gz"):
            try:
                data, ext = gzip.decompress(data), ext[:-3]
            except (OSError, EOFError) as e:
                raise _Reject("corrupt_member", f"{where}.{ext}: {e}") from e
        out[ext] = data
    return out


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Reject("bad_encoding", f"{where}: not UTF-8 ({e})") from e


def _split_key(raw_key: str, parts: dict[str, bytes], prev: str | None, key_rule: str
               ) -> str | None:
    """Why a group is only part of a sample whose key has a dot, or ``None``."""
    if {"json", "txt"} & parts.keys():
        return None
    text = sorted(e for e in parts if e.rsplit(".", 1)[-1].lower() in ("json", "txt"))
    if key_rule == "first_dot" and text:
        return (f"members {', '.join(f'{raw_key}.{e}' for e in sorted(parts))}: webdataset keys "
                f"end at the first dot of the file name, so the key is {raw_key!r} and its text "
                f"member is {text[0]!r}, not json/txt; the sample key has a dot: rename the "
                f"files, or ingest with --wds-key last-dot")
    if key_rule == "last_dot" and prev and raw_key.startswith(prev + "."):
        return (f"members of {raw_key!r} follow those of {prev!r}: with --wds-key last-dot "
                f"they are two samples; ingest with first-dot (the webdataset convention)")
    return None


def _from_tar_group(key: str, parts: dict[str, bytes], source: str, url: str,
                    cfg: RawShardConfig) -> tuple[Sample, list[ImageHashes]]:
    """One WebDataset sample: images by extension, text from ``json`` (LLaVA conversations)
    or ``txt`` (a caption: one prompted turn with images; a plain document without), else
    the ``caption`` / ``text`` field of a metadata ``json`` (DataComp, img2dataset)."""
    where = f"{url}:{key}"
    video = sorted(e for e in parts if e.rsplit(".", 1)[-1].lower() in VIDEO_EXTS)
    if video:
        raise _Reject("unsupported_modality", f"{where}: video member(s) {video}")
    images, exts, hashes, meta = [], [], [], {"location": where}
    for ext in sorted(parts):
        if ext.rsplit(".", 1)[-1].lower() in IMAGE_EXTS:
            kind, h = _load_image(parts[ext], cfg, f"{where}.{ext}")
            exts.append(kind)
            hashes.append(h)
            images.append(parts[ext])
    turns: list[dict[str, str]] = []
    caption = None  # DataComp / img2dataset metadata json: its caption (or text) field
    if "json" in parts:
        try:
            obj = json.loads(_text(parts["json"], where))
        except ValueError as e:
            raise _Reject("bad_json", f"{where}.json: {e}") from e
        if isinstance(obj, dict) and ("conversations" in obj or "messages" in obj):
            rec = normalise(obj, key, source, where)
            if rec.reason:
                raise _Reject(rec.reason, rec.error or "")
            turns = rec.conversations or []
        elif isinstance(obj, dict) and isinstance(obj.get("caption") or obj.get("text"), str):
            caption = obj.get("caption") or obj.get("text")  # as pool_assign reads it
    if not turns and ("txt" in parts or caption):
        text = _text(parts["txt"], where) if "txt" in parts else caption
        turns = ([{"from": HUMAN, "value": "Describe the image."}] if images else [])
        turns.append({"from": ASSISTANT, "value": text})
        meta["text_kind"] = "caption" if images else "document"
    if not turns:
        raise _Reject("no_text", f"{where} has no conversation or caption "
                                 f"(members: {', '.join(sorted(parts))})")
    _check_text(turns, cfg, len(images))
    return Sample(key, turns, images, exts, source, meta), hashes


def build_samples(header: dict, records: list[SourceRecord], cfg: RawShardConfig,
                  quarantine: list[Quarantined], hash_rows: list[dict] | None = None
                  ) -> Iterator[Sample]:
    """Yield the usable samples of one manifest; append the rest to ``quarantine``.

    Args:
        header: manifest header (``kind`` is ``records`` or ``webdataset``).
        records: manifest records (empty for ``webdataset`` manifests).
        cfg: validation limits.
        quarantine: list that receives one :class:`Quarantined` per unusable record.
        hash_rows: when given, receives the image_hashes row
            (:func:`mm_assets.core.dedup.exact.hash_row`) of every yielded sample, computed
            from the decode that validated its images (so image_hashes need not decode again).
    """
    for sample, hashes in _build(header, records, cfg, quarantine):
        if hash_rows is not None:
            hash_rows.append(hash_row(sample, hashes))
        yield sample


def _build(header: dict, records: list[SourceRecord], cfg: RawShardConfig,
           quarantine: list[Quarantined]) -> Iterator[tuple[Sample, list[ImageHashes]]]:
    if header["kind"] == "records":
        for rec in records:
            try:
                yield _from_record(rec, header["image_root"], cfg)
            except _Reject as r:
                quarantine.append(Quarantined(rec.key, "raw_shards", r.reason, r.error,
                                              rec.location))
        return
    url, source = header["input"], header["source"]
    rule = header.get("key_rule", "first_dot")
    seen: set[str] = set()
    prev = None
    try:
        with fsspec.open(url, "rb") as f:
            for raw_key, parts in iter_tar_groups(f, rule):
                key = f"{source}-{safe_id(raw_key, 64)}"
                if key in seen:
                    quarantine.append(Quarantined(key, "raw_shards", "duplicate_key",
                                                  f"key {raw_key!r} appears twice", url))
                    continue
                seen.add(key)
                try:
                    parts = _decompress(parts, f"{url}:{key}")
                    split, prev = _split_key(raw_key, parts, prev, rule), raw_key
                    if split:
                        raise _Reject("split_key", f"{url}: {split}")
                    yield _from_tar_group(key, parts, source, url, cfg)
                except _Reject as r:
                    quarantine.append(Quarantined(key, "raw_shards", r.reason, r.error, url))
    except (tarfile.TarError, EOFError, OSError) as e:
        quarantine.append(Quarantined(f"{source}-tail", "raw_shards", "truncated_tar",
                                      f"{url}: {type(e).__name__}: {e}", url))
