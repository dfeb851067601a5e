"""Sensor: new data drops under the input prefix become shards, partitions and runs.

What it watches: ``$MM_ASSETS_INPUT`` (any fsspec URL, e.g. ``s3://bucket/drops``), else
``{root}/incoming/``, recursively, for ``.json``, ``.jsonl`` (LLaVA / ShareGPT records) and
``.tar``, ``.tgz``, ``.tar.gz`` (WebDataset shards). Names starting with ``.`` or holding
``.tmp-`` are ignored.

When a file is taken:
- by default once it is unchanged (same size and version: S3 ETag, else mtime) over two ticks,
  so a file still being written is left for a later tick;
- with ``MM_ASSETS_REQUIRE_DONE=1`` only once its marker ``FILE.done`` exists.

What a tick does (it writes nothing: no storage side effects, so a tick is cheap, ends well
within Dagster's 60 s, and can be re-evaluated safely): request one ``ingest_job`` run for the
files taken (at most ``max_files`` and about ``max_bytes`` per tick; the rest wait for the next
tick; ``run_key`` = the files and versions, so the same upload is never ingested twice by the
sensor); add every ingested shard (``inputs/{id}.jsonl``) that is not yet a partition of
``shards`` (batches of at most 10,000 keys per request; this picks up the shards an ingest run
wrote), and request one run of ``per_shard_job`` per new shard (``run_key=shard-{id}``). No
file is taken while an ingest run is queued or running, so each run gets a batch of files;
concurrent ingests (a CLI ``ingest`` beside a run) are safe anyway: ingest holds the root's
lock (:mod:`mm_assets.core.ingest.lock`). A file whose ingest run fails is not retried until
it changes. Re-uploading a file already taken changes nothing: the cursor knows its version,
and ingest skips content it has seen (``inputs/_state.json``), also after a lost cursor.

How often: every ``$MM_ASSETS_SENSOR_INTERVAL_S`` seconds (default 30; read when the code
location loads; the daemon's sensor loop itself wakes every 5 s, so lower values act as 5).

The cursor (JSON) holds, per file, the size/version seen at the last tick and the version
taken; entries of files that were deleted from the prefix are dropped, so it stays small.
"""

from __future__ import annotations

import json
import os
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import fsspec
import xxhash
from dagster import (
    AddDynamicPartitionsRequest,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from mm_assets.core import layout
from mm_assets.core.storage import Store
from mm_assets.jobs import ingest_job, per_shard_job, pool_assign_job
from resources.storage import StorageResource

SUFFIXES = (".json", ".jsonl", ".tar", ".tgz", ".tar.gz")
PARTITION_BATCH = 10_000
DEFAULT_INTERVAL_S = 30


def sensor_interval_s() -> int:
    """``$MM_ASSETS_SENSOR_INTERVAL_S`` (seconds between ticks, >= 1), default 30."""
    raw = os.environ.get("MM_ASSETS_SENSOR_INTERVAL_S", "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    value = int(raw)
    if value < 1:
        raise ValueError(f"MM_ASSETS_SENSOR_INTERVAL_S must be >= 1, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class DropSettings:
    """What the sensor watches and how much it takes per tick.

    Attributes:
        prefix: fsspec URL of the watched prefix.
        require_done: take a file only once ``FILE.done`` exists.
        max_files: files taken per tick (> 0).
        max_bytes: bytes taken per tick; one file is always taken, whatever its size.
        shard_size: records per shard when ingesting JSON drops.
    """

    prefix: str
    require_done: bool = False
    max_files: int = 50
    max_bytes: int = 4 << 30
    shard_size: int = 1000

    def __post_init__(self) -> None:
        if self.max_files <= 0 or self.max_bytes <= 0:
            raise ValueError(f"max_files and max_bytes must be > 0, got {self}")

    @classmethod
    def from_env(cls, store: Store) -> DropSettings:
        """Read ``MM_ASSETS_INPUT``, ``MM_ASSETS_REQUIRE_DONE``, ``MM_ASSETS_SHARD_SIZE``,
        ``MM_ASSETS_SENSOR_MAX_FILES`` and ``MM_ASSETS_SENSOR_MAX_BYTES`` now."""
        return cls(prefix=os.environ.get("MM_ASSETS_INPUT") or store.url(layout.INCOMING),
                   require_done=os.environ.get("MM_ASSETS_REQUIRE_DONE", "") == "1",
                   max_files=int(os.environ.get("MM_ASSETS_SENSOR_MAX_FILES", "50")),
                   max_bytes=int(os.environ.get("MM_ASSETS_SENSOR_MAX_BYTES", str(4 << 30))),
                   shard_size=int(os.environ.get("MM_ASSETS_SHARD_SIZE", "1000")))


def watch_fs(store: Store, prefix: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and base path of ``prefix``: the store's own when under the root."""
    if prefix.rstrip("/") == store.root or prefix.startswith(store.root + "/"):
        return store.fs, store.path(prefix[len(store.root):])
    fs, base = fsspec.core.url_to_fs(prefix)
    fs.invalidate_cache()  # listings must be fresh at every tick
    return fs, base


def list_drops(fs: fsspec.AbstractFileSystem, base: str) -> tuple[dict[str, list], set[str]]:
    """``{path: [size, version]}`` of every candidate file under ``base``, and the set of
    candidates that have a ``FILE.done`` marker (one listing, no request per file)."""
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        return {}, set()
    out = {}
    for path, info in found.items():
        name = path.rsplit("/", 1)[-1]
        if info.get("type") == "directory" or not name.endswith(SUFFIXES):
            continue
        if name.startswith(".") or ".tmp-" in name:
            continue
        version = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
        out[path] = [int(info.get("size") or 0), str(version).strip('"')]
    return out, {p for p in out if p + ".done" in found}


def select_ready(files: dict[str, list], cursor: dict, settings: DropSettings,
                 marked: AbstractSet[str] = frozenset()) -> tuple[list[str], dict]:
    """Files to take this tick, and the next cursor.

    Args:
        files: ``{path: [size, version]}`` from :func:`list_drops`.
        cursor: ``{"seen": {path: [size, version]}, "taken": {path: version}}``.
        settings: readiness rule and per-tick caps.
        marked: paths whose ``.done`` marker exists (used when ``require_done``).
    """
    seen, taken_before = cursor.get("seen", {}), cursor.get("taken", {})
    taken, nbytes, next_seen = [], 0, {}
    for path, (size, version) in sorted(files.items()):
        if taken_before.get(path) == version:
            continue
        ready = path in marked if settings.require_done else seen.get(path) == [size, version]
        capped = len(taken) >= settings.max_files or (taken and nbytes + size > settings.max_bytes)
        if ready and not capped:
            taken.append(path)
            nbytes += size
        else:
            next_seen[path] = [size, version]
    kept = {p: v for p, v in taken_before.items() if p in files}
    kept.update({p: files[p][1] for p in taken})
    return taken, {"seen": next_seen, "taken": kept}


def partition_batches(keys: list[str], name: str = "shards",
                      batch: int = PARTITION_BATCH) -> list[AddDynamicPartitionsRequest]:
    """One request per ``batch`` keys (the instance adds each request in one statement)."""
    return [AddDynamicPartitionsRequest(name, keys[i:i + batch])
            for i in range(0, len(keys), batch)]


def unregistered_shards(store: Store, known: set[str]) -> list[str]:
    """Ingested shards (``inputs/{id}.jsonl``) that are not partitions yet, in id order."""
    return [s for s in layout.shard_ids(store, layout.INPUTS, layout.MANIFEST_SUFFIX)
            if s not in known]


def unregistered_pool_shards(store: Store, known: set[str], log=None) -> list[str]:
    """Shards of registered pools (``pools/*.yaml``, :mod:`mm_assets.core.mine.pool`) that are
    not ``pool_shards`` partitions yet; one listing per prefix. A pool whose prefix cannot be
    listed is skipped (logged), the others are not held up."""
    from mm_assets.core.mine.pool import PoolError, load_pool, partition_key, pool_names

    out = []
    for name in pool_names(store):
        try:
            out += [k for s in load_pool(store, name).shards()
                    if (k := partition_key(name, s)) not in known]
        except PoolError as e:
            if log is not None:
                log.warning(f"pool {name}: {e}")
    return out


def _url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """URL of a listed path (plain path on local disk)."""
    protos = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return path if "file" in protos or "local" in protos else fs.unstrip_protocol(path)


def ingest_in_flight(instance) -> bool:
    """Whether an ``ingest_job`` run is queued or running (ingest state is written by one
    ingest at a time: the tick then neither ingests nor requests another one)."""
    return bool(instance.get_run_ids(RunsFilter(job_name=ingest_job.name, statuses=[
        DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED]), limit=1))


def ingest_request(urls: list[str], versions: list[str], settings: DropSettings) -> RunRequest:
    """One ``ingest_job`` run for ``urls``; its run key names every file and version."""
    key = xxhash.xxh3_64_hexdigest("\n".join(versions).encode())
    return RunRequest(job_name=ingest_job.name, run_key=f"ingest-{key}",
                      tags={"mm-assets/files": str(len(urls))},
                      run_config={"ops": {"ingest_drops": {"config": {
                          "urls": urls, "shard_size": settings.shard_size}}}})


@sensor(jobs=[per_shard_job, ingest_job, pool_assign_job],
        minimum_interval_seconds=sensor_interval_s(),
        default_status=DefaultSensorStatus.RUNNING)
def new_data_sensor(context: SensorEvaluationContext, storage: StorageResource) -> SensorResult:
    """New shard files and LLaVA JSON/JSONL drops under the input prefix -> shards -> runs."""
    store = storage.store()
    settings = DropSettings.from_env(store)
    fs, base = watch_fs(store, settings.prefix)
    old = json.loads(context.cursor) if context.cursor else {}
    files, marked = list_drops(fs, base)
    requests = []
    if ingest_in_flight(context.instance):  # take nothing now: the files wait for a later tick
        taken, cursor = [], old
    else:
        taken, cursor = select_ready(files, old, settings, marked)
    if taken:
        requests.append(ingest_request([_url(fs, p) for p in taken],
                                       [f"{p}@{files[p][1]}" for p in taken], settings))
        context.log.info(f"requested an ingest run for {len(taken)} file(s)")
    fresh = unregistered_shards(store, set(context.instance.get_dynamic_partitions("shards")))
    requests += [RunRequest(run_key=f"shard-{s}", partition_key=s, job_name=per_shard_job.name)
                 for s in fresh]
    pools = unregistered_pool_shards(store, set(context.instance.get_dynamic_partitions(
        "pool_shards")), context.log)  # new pool shards: partitions, and runs once clustered
    if store.exists(layout.centroids("image")):
        requests += [RunRequest(run_key=f"pool-{k}", partition_key=k,
                                job_name=pool_assign_job.name) for k in pools]
    return SensorResult(run_requests=requests, dynamic_partitions_requests=partition_batches(
                            fresh) + partition_batches(pools, "pool_shards"),
                        cursor=json.dumps(cursor, sort_keys=True))
