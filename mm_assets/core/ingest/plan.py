"""Ingest planning: stream input files into per-shard manifests.

``plan_ingest`` reads each input once, streaming, and writes ``inputs/{shard}.jsonl`` files of
at most ``shard_size`` :class:`~mm_assets.core.ingest.formats.SourceRecord` lines (text and image references, no
image bytes). The ``raw_shards`` asset then turns one manifest into one canonical WebDataset
shard. Existing WebDataset tars become one manifest each, pointing at the tar.

Ingest is idempotent: an input already ingested (same URL, size and modification time) is
skipped, and shard ids continue from the last one.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

import fsspec
import xxhash

from mm_assets.core.ingest.formats import SourceRecord, iter_json_values, normalise, safe_id
from mm_assets.core.storage import Store

STATE = "inputs/_state.json"
WDS_SUFFIXES = (".tar", ".tgz", ".tar.gz")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Ingest settings.

    Attributes:
        shard_size: records per shard (> 0).
        shard_digits: zero-padded width of shard ids (``000000``).
    """

    shard_size: int = 1000
    shard_digits: int = 6

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ValueError(f"shard_size must be > 0, got {self.shard_size}")


def resolve_image(ref: str, image_root: str) -> tuple[str | None, str | None]:
    """Resolve an image reference against its root, refusing paths that escape it.

    Returns:
        ``(url, None)`` when safe, ``(None, reason)`` otherwise (``unsafe_path``).
    """
    if not ref or "\x00" in ref:
        return None, "unsafe_path"
    if ref.startswith("/") or "://" in ref or (len(ref) > 1 and ref[1] == ":"):
        return None, "unsafe_path"
    norm = posixpath.normpath(ref.replace("\\", "/"))
    if norm == ".." or norm.startswith("../"):
        return None, "unsafe_path"
    return f"{image_root.rstrip('/')}/{norm}", None


def _fingerprint(url: str) -> str:
    """``url|size|xxh64(first MiB)``: stable across copies and touch, cheap for huge files."""
    fs, path = fsspec.core.url_to_fs(url)
    with fs.open(path, "rb") as f:
        head = f.read(1 << 20)
    return f"{url}|{fs.info(path).get('size')}|{xxhash.xxh64_hexdigest(head)}"


class _Planner:
    def __init__(self, store: Store, cfg: IngestConfig):
        self.store, self.cfg = store, cfg
        self.state = store.read_json(STATE) if store.exists(STATE) else {
            "next_shard": 0, "ingested": {}, "slugs": {}}

    def shard_id(self) -> str:
        sid = f"{self.state['next_shard']:0{self.cfg.shard_digits}d}"
        self.state["next_shard"] += 1
        return sid

    def slug(self, url: str) -> str:
        stem = url.rstrip("/").rsplit("/", 1)[-1].split(".")[0]
        base = safe_id(stem, 32) or "input"
        slug, n = base, 1
        while slug in self.state["slugs"] and self.state["slugs"][slug] != url:
            n += 1
            slug = f"{base}_{n}"
        self.state["slugs"][slug] = url
        return slug

    def write(self, lines: list[str], header: dict) -> str:
        sid = self.shard_id()
        body = json.dumps(header, sort_keys=True) + "\n" + "".join(x + "\n" for x in lines)
        self.store.write_bytes(f"inputs/{sid}.jsonl", body.encode())
        return sid

    def json_input(self, url: str, image_root: str) -> list[str]:
        slug, shards, batch = self.slug(url), [], []
        header = {"kind": "records", "input": url, "image_root": image_root}
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            for i, value, err in iter_json_values(f, url):
                sid_ = value.get("id") if isinstance(value, dict) else None
                key = f"{slug}-{i:07d}" + (f"-{safe_id(sid_)}" if sid_ not in (None, "") else "")
                loc = f"{url}:{i}"
                if err is not None:
                    reason, _, msg = err.partition(": ")
                    rec = SourceRecord(key=key, source=slug, location=loc, reason=reason, error=msg)
                else:
                    rec = normalise(value, key, slug, loc)
                    for ref in rec.image_refs:
                        if rec.reason is None and resolve_image(ref, image_root)[1]:
                            rec.reason, rec.error = "unsafe_path", f"image path {ref!r} escapes root"
                batch.append(rec.to_json())
                if len(batch) >= self.cfg.shard_size:
                    shards.append(self.write(batch, header))
                    batch = []
        if batch:
            shards.append(self.write(batch, header))
        return shards

    def tar_input(self, url: str) -> list[str]:
        header = {"kind": "webdataset", "input": url, "source": self.slug(url)}
        return [self.write([], header)]


def plan_ingest(store: Store, inputs: list[str], image_root: str | None,
                cfg: IngestConfig) -> list[str]:
    """Stream ``inputs`` into shard manifests under ``inputs/`` and return the new shard ids.

    Args:
        store: storage root.
        inputs: URLs of JSON/JSONL files or WebDataset tars.
        image_root: folder image paths are relative to (default: each input's folder).
        cfg: ingest settings.

    Returns:
        Shard ids created by this call (empty when every input was already ingested).

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: an input has an unsupported extension.
    """
    planner = _Planner(store, cfg)
    new: list[str] = []
    for url in inputs:
        fp = _fingerprint(url)
        if fp in planner.state["ingested"]:
            continue
        if url.endswith(WDS_SUFFIXES):
            shards = planner.tar_input(url)
        elif url.endswith((".json", ".jsonl")):
            root = image_root or url.rstrip("/").rsplit("/", 1)[0]
            shards = planner.json_input(url, root)
        else:
            raise ValueError(f"unsupported input {url!r}: expected .json, .jsonl, .tar or .tgz")
        planner.state["ingested"][fp] = shards
        new.extend(shards)
        store.write_json(STATE, planner.state)
    return new


def read_manifest(store: Store, shard: str) -> tuple[dict, list[SourceRecord]]:
    """Header and records of one shard manifest.

    Raises:
        FileNotFoundError: the shard was never ingested.
    """
    rel = f"inputs/{shard}.jsonl"
    if not store.exists(rel):
        raise FileNotFoundError(f"no manifest for shard {shard!r} at {store.url(rel)}")
    lines = store.read_bytes(rel).decode().splitlines()
    return json.loads(lines[0]), [SourceRecord.from_json(x) for x in lines[1:] if x]
