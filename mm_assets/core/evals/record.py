"""Evaluation results recorded against the exact mixture a model trained on.

**Mixture content digest** (:func:`mixture_digest`): the xxh3-128 of the bytes of the mixture's
``manifest.json``, for a mixture whose ``mixtures`` partition is committed
(``_commits/mixtures/{name}.json``). The manifest names the recipe and seed, every drawn
sample's source key in output order and the content digest of every source read, and it is
written with sorted keys and no timestamp: a byte-identical rebuild gives the same digest;
drawing other samples, from other source content or with another recipe gives another one.
(It is cheap: one small file, whatever the mixture's size.)

**Store** (:func:`record_results`): ``evals/{mixture}/{digest}/{file_id}.parquet``, one table
per recorded results file (:data:`~mm_assets.core.schemas.EVAL_RESULTS`), ``file_id`` the
xxh3-64 of the file's bytes. Append-only: a record is created exclusively (``O_EXCL`` on disk,
``If-None-Match`` on S3) and never rewritten; recording the same bytes again for the mixture
(under any digest) records nothing and says so.

**Staleness**: a file that claims a digest (its ``mm_assets.mixture_digest``, or ``--digest``)
other than the mixture's current digest is refused (:class:`StaleResults`): it was trained on
an earlier build. A file that claims none is attached to the digest current when it is
recorded. Records under a digest that is no longer the mixture's are *stale*: kept and shown as
history (:func:`read_results` marks them ``current=False``), never averaged into a comparison.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime

import fsspec
import polars as pl
import xxhash

from mm_assets.core import layout, schemas
from mm_assets.core.commits import read_commit
from mm_assets.core.evals.formats import ParsedResults, parse_results
from mm_assets.core.ingest.lock import _create_exclusive
from mm_assets.core.storage import Store

MIN_CLAIM = 8  # hex characters a claimed digest must have (a prefix of the full one)


@dataclass(frozen=True)
class RecordConfig:
    """Results files to record against a mixture (the ``eval_results`` run config).

    Attributes:
        files: URLs or paths of results files (lm-eval / lmms-eval results JSON, VLMEvalKit
            score CSV); empty: only show what is recorded.
        model_run: the training run's id, stored with every row.
        notes: free text stored with every row.
    """

    files: tuple[str, ...] = ()
    model_run: str = ""
    notes: str = ""


class MixtureNotBuilt(LookupError):
    """The mixture has no committed build in this root."""


class StaleResults(ValueError):
    """The results claim a mixture build other than the current one (or another mixture)."""


def mixture_digest(store: Store, mixture: str) -> str:
    """The content digest of the mixture's current build (see the module doc).

    Raises:
        MixtureNotBuilt: no commit record or no manifest for ``mixture``.
    """
    rel = layout.mixture_manifest(mixture)
    if read_commit(store, "mixtures", mixture) is None or not store.exists(rel):
        raise MixtureNotBuilt(f"mixture {mixture!r} is not built in {store.root} (no committed "
                              f"mixtures partition): mm-assets run --select mixtures "
                              f"--recipes {mixture}")
    return xxhash.xxh3_128_hexdigest(store.read_bytes(rel))


def built_mixtures(store: Store) -> dict[str, str]:
    """Mixture name -> current digest, for every committed mixture with a manifest."""
    out = {}
    for name in store.ls(layout.commits_dir("mixtures"), ".json"):
        try:
            out[name[:-5]] = mixture_digest(store, name[:-5])
        except MixtureNotBuilt:
            continue
    return out


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_results` did with one file.

    Attributes:
        status: ``recorded`` or ``already`` (same bytes recorded before; nothing written).
        mixture / digest: where the record is (``digest``: the build it is attached to).
        path: the record's storage path. rows: metrics in it. source: the file recorded.
        format: the results format.
    """

    status: str
    mixture: str
    digest: str
    path: str
    rows: int
    source: str
    format: str = ""

    def line(self) -> str:
        what = (f"recorded {self.rows} metric(s) ({self.format})" if self.status == "recorded"
                else "already recorded, nothing written")
        return (f"{self.source}: {what} -> mixtures[{self.mixture}] digest "
                f"{self.digest[:12]} ({self.path})")


def file_id(data: bytes) -> str:
    return xxhash.xxh3_64_hexdigest(data)


def find_record(store: Store, mixture: str, fid: str) -> tuple[str, str] | None:
    """``(digest, path)`` of the record of file ``fid`` for ``mixture``, under any digest."""
    for digest in store.ls(layout.evals_dir(mixture)):
        rel = layout.eval_record(mixture, digest, fid)
        if store.exists(rel):
            return digest, rel
    return None


def read_file(url: str) -> bytes:
    with fsspec.open(url, "rb") as f:
        return f.read()


def check_claim(parsed: ParsedResults, mixture: str, current: str, claim: str = "") -> None:
    """Refuse results that name another mixture or claim a digest other than ``current``.

    Raises:
        StaleResults: with a one-line message saying which build the file is for.
    """
    if parsed.mixture and parsed.mixture != mixture:
        raise StaleResults(f"the results file names mixture {parsed.mixture!r}, not "
                           f"{mixture!r}; not recorded")
    claim = (claim or parsed.mixture_digest).strip().lower()
    if not claim:
        return
    if len(claim) < MIN_CLAIM:
        raise StaleResults(f"claimed digest {claim!r} is too short (>= {MIN_CLAIM} hex)")
    if not current.startswith(claim):
        raise StaleResults(f"stale: the results are for mixtures[{mixture}] digest {claim[:12]}, "
                           f"but the mixture was rebuilt since (now {current[:12]}); not "
                           f"recorded")


def to_rows(parsed: ParsedResults, mixture: str, digest: str, source: str, fid: str,
            model_run: str, notes: str, recorded_at: str) -> pl.DataFrame:
    m = parsed.metrics
    n = len(m)
    return pl.DataFrame({
        "mixture": [mixture] * n, "mixture_digest": [digest] * n,
        "benchmark": [x.benchmark for x in m], "metric": [x.metric for x in m],
        "value": [x.value for x in m], "stderr": [x.stderr for x in m],
        "primary": [x.primary for x in m], "format": [parsed.format] * n,
        "model": [parsed.model] * n, "model_run": [model_run] * n, "notes": [notes] * n,
        "source_file": [source] * n, "file_id": [fid] * n, "recorded_at": [recorded_at] * n,
        "row": list(range(n))}, schema=schemas.EVAL_RESULTS)


def record_results(store: Store, mixture: str, source: str, *, data: bytes | None = None,
                   model_run: str = "", notes: str = "", digest: str = "",
                   model: str = "", now: datetime | None = None) -> Recorded:
    """Record one results file against the current build of ``mixture``.

    Args:
        store: the root.
        mixture: mixture (recipe) name.
        source: URL or path of the results file (read unless ``data`` is given; its name
            tells the VLMEvalKit benchmark).
        data: the file's bytes, when already read.
        model_run: the training run's id (free text). notes: free text.
        digest: the mixture digest the caller says the model trained on (checked).
        model: VLMEvalKit model name when the file name does not start with it.
        now: recording time (default: now, UTC).

    Raises:
        MixtureNotBuilt: ``mixture`` has no committed build.
        StaleResults: the file (or ``digest``) is for another build or mixture.
        ResultsFormatError: the file is in no supported format.
    """
    current = mixture_digest(store, mixture)
    data = read_file(source) if data is None else data
    fid = file_id(data)
    found = find_record(store, mixture, fid)
    if found:
        return Recorded("already", mixture, found[0], found[1], 0, source)
    parsed = parse_results(data, source, model)
    check_claim(parsed, mixture, current, digest)
    at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    df = to_rows(parsed, mixture, current, source, fid, model_run, notes, at)
    rel = layout.eval_record(mixture, current, fid)
    schemas.check_schema(schemas.EVAL_RESULTS, df.schema, store.url(rel), exact=True)
    buf = io.BytesIO()  # like Store.write_table, but created exclusively: never overwritten
    df.write_parquet(buf, compression="zstd", statistics=False)
    if not _create_exclusive(store, rel, buf.getvalue()):
        return Recorded("already", mixture, current, rel, 0, source)
    return Recorded("recorded", mixture, current, rel, df.height, source, parsed.format)


def read_results(store: Store, mixtures: list[str] | None = None) -> pl.DataFrame:
    """Every recorded row (of ``mixtures``, default all), in recording order, with
    ``current``: whether its digest is its mixture's current build (False once rebuilt or
    deleted)."""
    names = mixtures if mixtures is not None else store.ls(layout.EVALS)
    frames = []
    for name in names:
        try:
            cur = mixture_digest(store, name)
        except MixtureNotBuilt:
            cur = None
        for digest in store.ls(layout.evals_dir(name)):
            for f in store.ls(layout.evals_digest_dir(name, digest), layout.PARQUET):
                df = store.read_table(layout.entry(layout.evals_digest_dir(name, digest), f),
                                      schemas.EVAL_RESULTS)
                frames.append(df.select(list(schemas.EVAL_RESULTS))
                              .with_columns(current=pl.lit(digest == cur)))
    if not frames:
        return pl.DataFrame(schema={**schemas.EVAL_RESULTS, "current": pl.Boolean})
    return pl.concat(frames).sort("recorded_at", "mixture", "file_id", "row")


def history(df: pl.DataFrame) -> pl.DataFrame:
    """One row per recorded file: mixture, digest, current, file, model run, when, metrics."""
    if df.height == 0:
        return pl.DataFrame()
    return (df.group_by("mixture", "mixture_digest", "current", "file_id", maintain_order=True)
            .agg(pl.first("source_file"), pl.first("model_run"), pl.first("recorded_at"),
                 pl.len().alias("metrics")))
