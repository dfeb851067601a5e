"""Ingest planning: stream input files into per-shard manifests.

``plan_ingest`` reads each input once, streaming, and writes ``inputs/{shard}.jsonl`` files of
at most ``shard_size`` :class:`~mm_assets.core.ingest.formats.SourceRecord` lines (text and image references, no
image bytes). The ``raw_shards`` asset then turns one manifest into one canonical WebDataset
shard. Existing WebDataset tars become one manifest each, pointing at the tar.

Ingest is idempotent: an input already ingested (same URL, size and first MiB) is skipped,
and shard ids continue from the last one. ``force=True`` re-plans an input already ingested
(e.g. with the wrong image folder) over its earlier shards and withdraws the commit records
that depend on them (:mod:`mm_assets.core.ingest.reingest`). An interrupted ingest (Ctrl-C,
``kill -9``) leaves the state of its last completed input; its partial manifests are removed on
the way out or by the next ingest (:mod:`mm_assets.core.ingest.recover`).
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass, field

import fsspec
import xxhash

from mm_assets.core import layout
from mm_assets.core.ingest import recover
from mm_assets.core.ingest.formats import SourceRecord, normalise, safe_id
from mm_assets.core.ingest.json_shapes import JsonShape, ShapeError, detect_shape, iter_records
from mm_assets.core.ingest.lock import ingest_lock
from mm_assets.core.ingest.reingest import Downstream, previous_entries, replan_input
from mm_assets.core.storage import Store

STATE = layout.INGEST_STATE
RAW_ONLY = Downstream(("raw_shards",))  # what a forced re-ingest withdraws unless told more
WDS_SUFFIXES = (".tar", ".tgz", ".tar.gz")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Ingest settings.

    Attributes:
        shard_size: records per shard (> 0).
        shard_digits: zero-padded width of shard ids (``000000``).
        wds_key: how a WebDataset member name splits into key and extension: ``first_dot``
            (webdataset's rule) or ``last_dot``.
        lock_wait_s: seconds to wait for a concurrent ingest into the same root (>= 0).
    """

    shard_size: int = 1000
    shard_digits: int = 6
    wds_key: str = "first_dot"
    lock_wait_s: float = 600.0

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ValueError(f"shard_size must be > 0, got {self.shard_size}")
        if self.wds_key not in ("first_dot", "last_dot"):
            raise ValueError(f"wds_key must be first_dot or last_dot, got {self.wds_key!r}")
        if self.lock_wait_s < 0:
            raise ValueError(f"lock_wait_s must be >= 0, got {self.lock_wait_s}")


@dataclass(slots=True)
class InputSummary:
    """What ingest did with one input.

    Attributes:
        input: the input URL.
        shape: ``array`` | ``jsonl`` | ``object`` | ``dict`` | ``wrapper`` | ``empty`` |
            ``webdataset``, or ``already_ingested`` (skipped).
        detail: human-readable shape (``wrapper object (records in 'data')``).
        records: records read (= manifest lines written for this input; 0 for WebDataset tars,
            whose samples are counted by raw_shards).
        shards: shard ids created.
        flagged: records already marked unusable at ingest, per reason (``bad_json``, ...);
            they are in the manifests and quarantined by raw_shards.
        replaced: with ``force``, the shards of the earlier ingest that this one replaced.
        retired: of those, the shards the new plan no longer uses (manifests deleted).
        withdrawn: commit records withdrawn (``asset[partition]``).
    """

    input: str
    shape: str
    detail: str = ""
    records: int = 0
    shards: list[str] = field(default_factory=list)
    flagged: dict[str, int] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the CLI: ``in.json: JSON array, 3 records -> 1 shard (000000)``."""
        name = self.input.rstrip("/").rsplit("/", 1)[-1]
        if self.shape == "already_ingested":
            return (f"{name}: already ingested, skipped (to re-ingest it, e.g. with another "
                    "--images, replacing its shards: mm-assets ingest --force)")
        forced = (f"; replaces shard(s) {', '.join(self.replaced)}"
                  + (f" (retired {', '.join(self.retired)})" if self.retired else "")
                  + f", {len(self.withdrawn)} downstream commit record(s) withdrawn: "
                  "`mm-assets run --missing` recomputes them") if self.replaced else ""
        if self.shape == "empty":
            return f"{name}: empty (no records), nothing ingested" + forced
        what = f"{self.records} records" if self.shape != "webdataset" else "tar"
        bad = ", ".join(f"{k}={v}" for k, v in sorted(self.flagged.items()))
        return (f"{name}: {self.detail}, {what} -> {len(self.shards)} shard(s) "
                f"({', '.join(self.shards)})" + (f"; flagged {bad}" if bad else "") + forced)


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
        self.reuse: list[str] = []  # ids handed out first (a forced re-ingest's earlier shards)
        self.staging = False  # write manifests to layout.reingest_manifest (forced re-ingest)

    def shard_id(self) -> str:
        if self.reuse:
            return self.reuse.pop(0)
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
        if self.staging:  # moved over the live manifest by reingest.replan_input
            self.store.write_bytes(layout.reingest_manifest(sid), body.encode())
            return sid
        if self.store.exists(layout.manifest(sid)):  # never overwrite another input's shard
            raise RuntimeError(f"shard {sid} exists but {STATE} says it is free: the ingest "
                               "state is out of date; not overwriting it (if no other ingest "
                               "writes this root and the manifest is a leftover of an "
                               f"interrupted ingest, delete {layout.manifest(sid)})")
        self.store.write_bytes(layout.manifest(sid), body.encode())
        return sid

    def json_input(self, url: str, image_root: str, shape: JsonShape,
                   summary: InputSummary) -> None:
        slug, batch = self.slug(url), []
        header = {"kind": "records", "input": url, "image_root": image_root,
                  "shape": shape.kind}
        flagged: Counter = Counter()
        fs, path = fsspec.core.url_to_fs(url)
        with fs.open(path, "rb") as f:
            for i, value, err in iter_records(f, shape):
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
                flagged.update([rec.reason] if rec.reason else [])
                summary.records += 1
                batch.append(rec.to_json())
                if len(batch) >= self.cfg.shard_size:
                    summary.shards.append(self.write(batch, header))
                    batch = []
        if batch:
            summary.shards.append(self.write(batch, header))
        summary.flagged = dict(sorted(flagged.items()))

    def tar_input(self, url: str) -> list[str]:
        header = {"kind": "webdataset", "input": url, "source": self.slug(url),
                  "key_rule": self.cfg.wds_key}
        return [self.write([], header)]


def _detect(url: str) -> JsonShape:
    fs, path = fsspec.core.url_to_fs(url)
    with fs.open(path, "rb") as f:
        try:
            return detect_shape(f, path)
        except ShapeError as e:
            raise ShapeError(f"{url}: unrecognised JSON shape: {e}") from None


def ingest_inputs(store: Store, inputs: list[str], image_root: str | None,
                  cfg: IngestConfig, force: bool = False,
                  downstream: Downstream | None = None, report=None) -> list[InputSummary]:
    """Stream ``inputs`` into shard manifests under ``inputs/``; one summary per input.

    Every input is checked before anything is written: an image folder that does not exist or
    a JSON input of an unsupported shape fails the whole call, leaving the root unchanged.
    The call holds the root's ingest lock (:func:`~mm_assets.core.ingest.lock.ingest_lock`):
    a concurrent ingest into the same root waits for it (up to ``cfg.lock_wait_s``), so shard
    ids are allocated once and no manifest is overwritten.

    Args:
        store: storage root.
        inputs: URLs of JSON/JSONL files or WebDataset tars.
        image_root: folder image paths are relative to (default: each input's folder).
        cfg: ingest settings.
        force: re-plan inputs ingested before (any earlier version of the same URL) over
            their earlier shards instead of skipping them (:func:`~mm_assets.core.ingest.
            reingest.replan_input`); ``summary.retired`` lists earlier shards no longer used.
        downstream: the commit records to withdraw for replaced shards (default: only
            ``raw_shards``; the CLI passes every asset downstream of it).
        report: ``callable(line: str)``, told when manifests left by an interrupted ingest
            are removed (:mod:`~mm_assets.core.ingest.recover`).

    Returns:
        One :class:`InputSummary` per input, in order (``records`` = manifest lines written for
        it, so per-input counts reconcile with raw_shards' ``n_in``).

    Raises:
        FileNotFoundError: an input or the image folder does not exist.
        ValueError: an input has an unsupported extension; :class:`ShapeError` (a
            ``ValueError``) when a JSON input has an unsupported shape (message names it).
        IngestLocked: another ingest held the lock for ``cfg.lock_wait_s`` seconds.
        IngestInterrupted: Ctrl-C while planning (a ``KeyboardInterrupt``): the inputs planned
            before it stay ingested, the partial manifests of the one being planned are removed
            (or, after ``kill -9``, by the next ingest); says what was (not) ingested.
    """
    if image_root:
        fs, path = fsspec.core.url_to_fs(image_root)
        if not fs.isdir(path):
            raise FileNotFoundError(f"image folder {image_root} does not exist")
    with ingest_lock(store, wait_s=cfg.lock_wait_s):
        return _ingest_locked(store, inputs, image_root, cfg, force,
                              downstream or RAW_ONLY, report or (lambda line: None))


def _ingest_locked(store: Store, inputs: list[str], image_root: str | None,
                   cfg: IngestConfig, force: bool = False,
                   downstream: Downstream = RAW_ONLY, report=print) -> list[InputSummary]:
    """:func:`ingest_inputs` once the lock is held (reads the state, allocates ids)."""
    planner = _Planner(store, cfg)
    removed = recover.remove_leftovers(store, planner.state)
    if removed:
        report(f"removed {len(removed)} shard manifest(s) left by an interrupted ingest "
               f"({recover.id_list(removed)})")
    todo: list[tuple[InputSummary, str, JsonShape | None]] = []
    summaries: list[InputSummary] = []
    for url in inputs:
        fp = _fingerprint(url)
        summary = InputSummary(url, "webdataset", "WebDataset tar")
        summaries.append(summary)
        if fp in planner.state["ingested"] and not force:
            summary.shape = "already_ingested"
        elif url.endswith(WDS_SUFFIXES):
            todo.append((summary, fp, None))
        elif url.endswith((".json", ".jsonl")):
            todo.append((summary, fp, _detect(url)))
        else:
            raise ValueError(f"unsupported input {url!r}: expected .json, .jsonl, .tar or .tgz")
    had_open = recover.OPEN in planner.state
    planner.state[recover.OPEN] = planner.state["next_shard"]  # journal: see core.ingest.recover
    if todo:
        recover.check_free(store, planner.state)
        store.write_json(STATE, planner.state)
    done = [s for s in summaries if s.shape == "already_ingested"]
    try:
        for summary, fp, shape in todo:
            _plan_one(store, planner, summary, fp, shape, image_root, force, downstream)
            done.append(summary)
    except BaseException as e:  # partial manifests of the current input: gone now or next time
        left = recover.close_journal(store)
        if not isinstance(e, KeyboardInterrupt):
            raise
        ok = {id(s) for s in done}
        raise recover.IngestInterrupted([s.input for s in done],
                                        [sh for s in done for sh in s.shards],
                                        [s.input for s in summaries if id(s) not in ok],
                                        left) from e
    del planner.state[recover.OPEN]
    if todo or removed or had_open:
        store.write_json(STATE, planner.state)
    return summaries


def _plan_one(store: Store, planner: _Planner, summary: InputSummary, fp: str,
              shape: JsonShape | None, image_root: str | None, force: bool,
              downstream: Downstream) -> None:
    """Plan one input and record it in the ingest state."""
    url = summary.input

    def plan() -> None:
        if shape is None:
            summary.shards = planner.tar_input(url)
        else:
            summary.shape, summary.detail = shape.kind, shape.describe()
            if shape.kind != "empty":
                root = image_root or url.rstrip("/").rsplit("/", 1)[0]
                planner.json_input(url, root, shape, summary)

    previous = previous_entries(planner.state, url) if force else {}
    if previous:
        replan_input(store, planner, plan, summary, previous, downstream)
    else:
        plan()
    planner.state["ingested"][fp] = summary.shards
    store.write_json(STATE, planner.state)


def plan_ingest(store: Store, inputs: list[str], image_root: str | None,
                cfg: IngestConfig) -> list[str]:
    """:func:`ingest_inputs`, returning only the new shard ids (empty when every input was
    already ingested or empty). Raises what :func:`ingest_inputs` raises."""
    return [sh for s in ingest_inputs(store, inputs, image_root, cfg) for sh in s.shards]


def read_manifest(store: Store, shard: str) -> tuple[dict, list[SourceRecord]]:
    """Header and records of one shard manifest.

    Raises:
        FileNotFoundError: the shard was never ingested.
    """
    rel = layout.manifest(shard)
    if not store.exists(rel):
        raise FileNotFoundError(f"no manifest for shard {shard!r} at {store.url(rel)}")
    lines = store.read_bytes(rel).decode().split("\n")  # not splitlines: U+0085 is text
    return json.loads(lines[0]), [SourceRecord.from_json(x) for x in lines[1:] if x]
