"""Sensor: new data drops under the input prefix become shards, partitions and runs.

Watches ``{root}/incoming/`` (or ``$MM_ASSETS_INPUT``) for ``.json``, ``.jsonl``, ``.tar`` and
``.tgz`` files. A file is taken once its size is unchanged between two ticks (a half-uploaded
file is still growing), or once ``FILE.done`` exists when ``MM_ASSETS_REQUIRE_DONE=1``. Taken
files are ingested (idempotently: a re-uploaded identical file changes nothing), their shards
are added as dynamic partitions in batches of at most 10,000, and one run of the per-shard job
is requested per new shard. The cursor keeps the sizes seen; at most ``MAX_FILES_PER_TICK``
files are taken per tick.
"""

import json
import os

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from mm_assets.core.ingest import IngestConfig, plan_ingest
from resources.storage import StorageResource

SUFFIXES = (".json", ".jsonl", ".tar", ".tgz")
MAX_FILES_PER_TICK = 50
PARTITION_BATCH = 10_000


def _ready(fs, path: str, size: int, seen: dict, require_done: bool) -> bool:
    if require_done:
        return fs.exists(path + ".done")
    return seen.get(path) == size


@sensor(job_name="per_shard_job", minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.STOPPED)
def new_data_sensor(context: SensorEvaluationContext, storage: StorageResource) -> SensorResult:
    store = storage.store()
    prefix = os.environ.get("MM_ASSETS_INPUT") or store.url("incoming")
    require_done = os.environ.get("MM_ASSETS_REQUIRE_DONE") == "1"
    cursor = json.loads(context.cursor) if context.cursor else {"sizes": {}, "done": []}
    import fsspec

    fs, base = fsspec.core.url_to_fs(prefix)
    files = sorted(fs.find(base, detail=True).items()) if fs.exists(base) else []
    taken, sizes = [], {}
    for path, info in files:
        if not path.endswith(SUFFIXES) or path in cursor["done"]:
            continue
        sizes[path] = info["size"]
        if len(taken) < MAX_FILES_PER_TICK and _ready(fs, path, info["size"], cursor["sizes"],
                                                      require_done):
            taken.append(path)
    proto = prefix.split("://")[0] + "://" if "://" in prefix else ""
    new = plan_ingest(store, [proto + p for p in taken], None, IngestConfig()) if taken else []
    requests = [RunRequest(run_key=f"shard-{s}", partition_key=s) for s in new]
    cursor = {"sizes": {p: n for p, n in sizes.items() if p not in taken},
              "done": cursor["done"] + taken}
    from dagster import AddDynamicPartitionsRequest

    adds = [AddDynamicPartitionsRequest("shards", new[i:i + PARTITION_BATCH])
            for i in range(0, len(new), PARTITION_BATCH)]
    return SensorResult(run_requests=requests, dynamic_partitions_requests=adds,
                        cursor=json.dumps(cursor))
