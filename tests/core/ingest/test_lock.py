"""Single-writer ingest: two concurrent ingests into one root never lose or duplicate records,
on local disk and on an S3 server (moto); the lock itself is exclusive and has a lease."""

import json
import threading

import pytest
from s3_fixtures import jsonl_drop, s3_bucket, s3_server  # noqa: F401

from mm_assets.core.ingest import plan
from mm_assets.core.ingest.lock import LOCK, IngestLocked, ingest_lock
from mm_assets.core.ingest.plan import STATE, IngestConfig, plan_ingest
from mm_assets.core.storage import Store

REPS = 20


def _inputs(tmp_path) -> dict[str, list[str]]:
    """Two different inputs of 7 text records each (2 shards each at shard_size 4)."""
    out = {}
    for tag in ("a", "b"):
        (tmp_path / f"{tag}.jsonl").write_bytes(jsonl_drop(tag, 7))
        out[str(tmp_path / f"{tag}.jsonl")] = [f"{tag}{i}" for i in range(7)]
    return out


def _ids_in_root(store: Store) -> list[str]:
    ids = []
    for name in store.ls("inputs", ".jsonl"):
        for line in store.read_bytes(f"inputs/{name}").decode().splitlines()[1:]:
            ids.append(json.loads(line)["key"].rsplit("-", 1)[-1])
    return ids


def _race(make_store, inputs: dict[str, list[str]], waits: list) -> Store:
    """Both inputs ingested at the same moment by two threads, each with its own Store."""
    barrier, errors = threading.Barrier(2), []

    def one(url):
        try:
            barrier.wait()
            plan_ingest(make_store(), [url], None, IngestConfig(shard_size=4))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(u,)) for u in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return make_store()


@pytest.fixture
def count_waits(monkeypatch):
    """Wrap the lock used by ingest so each wait for the other ingest is recorded."""
    waits: list[dict] = []

    def counted(store, wait_s=600.0, **kw):
        return ingest_lock(store, wait_s=wait_s, on_wait=waits.append, **kw)

    monkeypatch.setattr(plan, "ingest_lock", counted)
    return waits


def _check(store: Store, inputs: dict[str, list[str]]) -> None:
    ids = _ids_in_root(store)
    want = sorted(i for v in inputs.values() for i in v)
    assert sorted(ids) == want  # every record of both inputs, exactly once
    state = store.read_json(STATE)
    shards = sorted(s for v in state["ingested"].values() for s in v)
    assert len(state["ingested"]) == 2 and shards == [f"{i:06d}" for i in range(4)]
    assert state["next_shard"] == 4 and not store.exists(LOCK)


def test_concurrent_local_ingests_keep_every_record(tmp_path, count_waits):
    inputs = _inputs(tmp_path)
    for rep in range(REPS):
        root = tmp_path / f"root{rep}"
        _check(_race(lambda root=root: Store(str(root)), inputs, count_waits), inputs)
    assert count_waits, "the two ingests never overlapped: the race was not exercised"


def test_concurrent_s3_ingests_keep_every_record(tmp_path, s3_server, s3_bucket,  # noqa: F811
                                                 count_waits):
    inputs = _inputs(tmp_path)
    opts = {"client_kwargs": {"endpoint_url": s3_server.endpoint}}
    for rep in range(REPS):
        url = f"s3://{s3_bucket}/root{rep}"
        _check(_race(lambda url=url: Store(url, opts), inputs, count_waits), inputs)
    assert count_waits, "the two ingests never overlapped: the race was not exercised"


def test_lock_is_exclusive_times_out_naming_the_holder_and_breaks_an_expired_lease(tmp_path):
    store = Store(str(tmp_path / "root"))
    other = Store(str(tmp_path / "root"))
    with ingest_lock(store) as me, pytest.raises(IngestLocked, match=str(me["pid"])), \
            ingest_lock(other, wait_s=0.2):
        pass
    assert not store.exists(LOCK)
    # a holder that died: its lease expired, so the next ingest takes over
    store.write_bytes(LOCK, json.dumps({"owner": "dead", "expires": 0}).encode())
    with ingest_lock(store, wait_s=1.0) as me:
        assert json.loads(store.read_bytes(LOCK))["owner"] == me["owner"]
    assert not store.exists(LOCK)


def test_a_shard_that_exists_is_never_overwritten(tmp_path):
    store, inputs = Store(str(tmp_path / "root")), _inputs(tmp_path)
    a, b = list(inputs)
    plan_ingest(store, [a], None, IngestConfig(shard_size=4))
    before = store.read_bytes("inputs/000000.jsonl")
    store.write_json(STATE, {"next_shard": 0, "ingested": {}, "slugs": {}})  # stale state
    with pytest.raises(RuntimeError, match="not overwriting"):
        plan_ingest(store, [b], None, IngestConfig(shard_size=4))
    assert store.read_bytes("inputs/000000.jsonl") == before
