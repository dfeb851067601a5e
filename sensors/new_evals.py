"""Sensor: eval-results files that training jobs drop become ``eval_results`` runs.

What it watches: ``$MM_ASSETS_EVAL_INPUT`` (any fsspec URL), else ``{root}/incoming_evals/``,
recursively: ``{prefix}/{mixture}/.../*.json`` (lm-eval / lmms-eval results) and ``*.csv``
(VLMEvalKit scores). The first folder under the prefix names the mixture. Names starting with
``.`` or holding ``.tmp-`` are ignored.

When a file is taken: once its size and version (S3 ETag, else mtime) are unchanged over two
ticks, and only for a mixture that is a ``recipes`` partition (a file for another name waits,
logged, until the mixture is registered).

What a tick does (it writes nothing): one ``eval_results_job`` run per file taken, for the
mixture's partition, with ``files: [url]`` in the run config; the run records the file
(:func:`mm_assets.core.evals.record.record_results`). The run key is the mixture plus the
xxh3-64 of the file's bytes (results files are small; the sensor reads each new version once),
so re-uploading identical bytes requests nothing new (Dagster skips a run key it has seen), and
the record itself is keyed by those bytes anyway (recording twice records once).

The cursor holds, per file, the size/version seen at the last tick and the version taken;
entries of deleted files are dropped.
"""

from __future__ import annotations

import json
import os

import fsspec
import xxhash
from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from mm_assets.core import layout
from mm_assets.jobs import eval_results_job
from resources.storage import StorageResource
from sensors.new_data import _url, sensor_interval_s, watch_fs

SUFFIXES = (".json", ".csv")


def eval_prefix(store) -> str:
    """``$MM_ASSETS_EVAL_INPUT`` or ``{root}/incoming_evals``."""
    return os.environ.get("MM_ASSETS_EVAL_INPUT") or store.url(layout.INCOMING_EVALS)


def list_results(fs: fsspec.AbstractFileSystem, base: str) -> dict[str, tuple[str, list]]:
    """``{path: (mixture, [size, version])}`` of every results file under ``base``."""
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        return {}
    out = {}
    base = base.rstrip("/")
    for path, info in found.items():
        name = path.rsplit("/", 1)[-1]
        rel = path[len(base):].lstrip("/")
        if info.get("type") == "directory" or not name.lower().endswith(SUFFIXES):
            continue
        if name.startswith(".") or ".tmp-" in name or "/" not in rel:
            continue  # a file straight under the prefix names no mixture
        version = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
        out[path] = (rel.split("/", 1)[0], [int(info.get("size") or 0), str(version).strip('"')])
    return out


def eval_request(mixture: str, url: str, data: bytes) -> RunRequest:
    """One ``eval_results_job`` run recording ``url`` for ``mixture``."""
    key = xxhash.xxh3_64_hexdigest(data)
    return RunRequest(run_key=f"eval-{mixture}-{key}", partition_key=mixture,
                      job_name=eval_results_job.name, tags={"mm-assets/results": url[-200:]},
                      run_config={"ops": {"eval_results": {"config": {"files": [url]}}}})


@sensor(jobs=[eval_results_job], minimum_interval_seconds=sensor_interval_s(),
        default_status=DefaultSensorStatus.RUNNING)
def eval_results_sensor(context: SensorEvaluationContext, storage: StorageResource
                        ) -> SensorResult:
    """Results files dropped under ``incoming_evals/{mixture}/`` -> one eval_results run each."""
    store = storage.store()
    fs, base = watch_fs(store, eval_prefix(store))
    old = json.loads(context.cursor) if context.cursor else {}
    seen, taken = old.get("seen", {}), old.get("taken", {})
    known = set(context.instance.get_dynamic_partitions("recipes"))
    files = list_results(fs, base)
    requests, next_seen, unknown = [], {}, set()
    for path, (mixture, (size, version)) in sorted(files.items()):
        if taken.get(path) == version:
            continue
        if seen.get(path) != [size, version] or mixture not in known:
            next_seen[path] = [size, version]
            if mixture not in known:
                unknown.add(mixture)
            continue
        with fs.open(path, "rb") as f:
            requests.append(eval_request(mixture, _url(fs, path), f.read()))
        taken[path] = version
    if unknown:
        context.log.info(f"results for unregistered mixture(s) {sorted(unknown)} wait until "
                         f"they are built")
    taken = {p: v for p, v in taken.items() if p in files}
    return SensorResult(run_requests=requests,
                        cursor=json.dumps({"seen": next_seen, "taken": taken}, sort_keys=True))
