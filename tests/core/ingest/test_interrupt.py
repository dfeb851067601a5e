"""An interrupted ingest (Ctrl-C, kill -9) leaves a root the next ingest repairs by itself: the
same shards as an uninterrupted ingest; a dead holder's lock is broken at once (tryout S2)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from s3_fixtures import jsonl_drop

from mm_assets.core import layout
from mm_assets.core.commits import write_commit
from mm_assets.core.ingest import plan, recover
from mm_assets.core.ingest.lock import LOCK, IngestLocked, ingest_lock
from mm_assets.core.ingest.plan import STATE, IngestConfig, ingest_inputs
from mm_assets.core.ingest.recover import OPEN, IngestInterrupted
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

CFG = IngestConfig(shard_size=2)


@pytest.fixture
def inputs(tmp_path):
    """a.jsonl (5 records: 3 shards) and b.jsonl (7 records: 4 shards) at shard_size 2."""
    out = []
    for tag, n in (("a", 5), ("b", 7)):
        (tmp_path / f"{tag}.jsonl").write_bytes(jsonl_drop(tag, n))
        out.append(str(tmp_path / f"{tag}.jsonl"))
    return out


def _root(store: Store) -> dict[str, bytes]:
    """Every manifest's bytes by shard id, plus the state (the journal must be gone)."""
    files = {n: store.read_bytes(f"{layout.INPUTS}/{n}") for n in store.ls(layout.INPUTS, ".jsonl")}
    state = store.read_json(STATE)
    assert OPEN not in state and not store.exists(LOCK)
    return {**files, "state": json.dumps(state, sort_keys=True).encode()}


@pytest.fixture
def reference(tmp_path, inputs):
    store = Store(str(tmp_path / "ref"))
    ingest_inputs(store, inputs, None, CFG)
    return _root(store)


def _interrupt_after(monkeypatch, k: int, exc=KeyboardInterrupt):
    """The planner's manifest writer raises ``exc`` once ``k`` manifests are written."""
    real, n = plan._Planner.write, [0]

    def write(self, lines, header):
        if n[0] == k:
            raise exc()
        n[0] += 1
        return real(self, lines, header)

    monkeypatch.setattr(plan._Planner, "write", write)


def test_ctrl_c_mid_input_cleans_up_and_the_next_ingest_completes(tmp_path, monkeypatch, inputs,
                                                                  reference):
    store = Store(str(tmp_path / "root"))
    _interrupt_after(monkeypatch, 5)  # a's 3 shards + 2 of b's 4
    with pytest.raises(IngestInterrupted) as e:
        ingest_inputs(store, inputs, None, CFG)
    assert e.value.done == inputs[:1] and e.value.pending == inputs[1:]
    assert e.value.done_shards == ["000000", "000001", "000002"]
    assert e.value.removed == ["000003", "000004"]  # b's partial manifests, gone already
    assert "a.jsonl ingested (3 new shard(s)); NOT ingested: b.jsonl" in e.value.line()
    assert store.ls(layout.INPUTS, ".jsonl") == [f"00000{i}.jsonl" for i in range(3)]
    assert not store.exists(LOCK)
    monkeypatch.undo()
    lines = []
    again = ingest_inputs(store, inputs, None, CFG, report=lines.append)
    assert [s.shape for s in again] == ["already_ingested", "jsonl"]
    assert again[1].shards == ["000003", "000004", "000005", "000006"] and lines == []
    assert _root(store) == reference


@pytest.mark.parametrize("force", [False, True])
def test_leftovers_of_a_killed_ingest_are_removed_by_the_next(tmp_path, monkeypatch, inputs,
                                                             reference, force):
    """kill -9: no cleanup on the way out (simulated: the exit-path cleanup does nothing)."""
    store = Store(str(tmp_path / "root"))
    _interrupt_after(monkeypatch, 2)  # 2 of a's 3 shards
    monkeypatch.setattr(recover, "close_journal", lambda store: [])
    with pytest.raises(IngestInterrupted):
        ingest_inputs(store, inputs, None, CFG)
    assert store.ls(layout.INPUTS, ".jsonl") == ["000000.jsonl", "000001.jsonl"]
    assert store.read_json(STATE)["ingested"] == {}
    monkeypatch.undo()
    lines = []
    again = ingest_inputs(store, inputs, None, CFG, force=force, report=lines.append)
    assert lines == ["removed 2 shard manifest(s) left by an interrupted ingest (000000, 000001)"]
    assert [s.shards for s in again] == [["000000", "000001", "000002"],
                                         ["000003", "000004", "000005", "000006"]]
    assert _root(store) == reference


def test_an_error_mid_input_removes_its_partial_manifests(tmp_path, monkeypatch, inputs):
    store = Store(str(tmp_path / "root"))
    _interrupt_after(monkeypatch, 4, OSError)
    with pytest.raises(OSError):
        ingest_inputs(store, inputs, None, CFG)
    assert store.ls(layout.INPUTS, ".jsonl") == [f"00000{i}.jsonl" for i in range(3)]
    assert OPEN not in store.read_json(STATE)  # journal closed: the root is clean


def test_a_leftover_with_a_raw_shards_record_is_not_removed(tmp_path, monkeypatch, inputs):
    store = Store(str(tmp_path / "root"))
    _interrupt_after(monkeypatch, 2)
    monkeypatch.setattr(recover, "close_journal", lambda store: [])
    with pytest.raises(IngestInterrupted):
        ingest_inputs(store, inputs, None, CFG)
    monkeypatch.undo()
    write_commit(store, "raw_shards", "000001", StageCounts(2, 2))
    with pytest.raises(RuntimeError, match="000001 were left by an interrupted ingest"):
        ingest_inputs(store, inputs, None, CFG)
    assert store.ls(layout.INPUTS, ".jsonl") == ["000000.jsonl", "000001.jsonl"]


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path):
    store = Store(str(tmp_path / "root"))
    with ingest_lock(store) as me:
        holder = json.loads(store.read_bytes(LOCK))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid no longer exists
    store.write_bytes(LOCK, json.dumps({**holder, "owner": "killed", "pid": gone.pid,
                                        "expires": time.time() + 600}).encode())
    t0 = time.monotonic()
    with ingest_lock(store, wait_s=30.0) as me:
        assert json.loads(store.read_bytes(LOCK))["owner"] == me["owner"]
    assert time.monotonic() - t0 < 5.0  # not the 120 s lease
    # a live holder (this process, another owner) is still waited for
    store.write_bytes(LOCK, json.dumps({**holder, "owner": "alive", "pid": os.getpid(),
                                        "expires": time.time() + 600}).encode())
    with pytest.raises(IngestLocked), ingest_lock(store, wait_s=0.3):
        pass


CHILD = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    from mm_assets.core.ingest import plan, recover
    from mm_assets.core.ingest.recover import IngestInterrupted
    from mm_assets.core.storage import Store
    real = plan._Planner.write
    def write(self, lines, header):
        sid = real(self, lines, header)
        print("wrote", sid, flush=True)
        time.sleep(0.05)
        return sid
    plan._Planner.write = write
    try:
        plan.ingest_inputs(Store(sys.argv[1]), sys.argv[2:], None, plan.IngestConfig(shard_size=2))
    except IngestInterrupted as e:
        print(e.line(), flush=True)
        sys.exit(130)
""")


def test_sigint_during_a_real_ingest(tmp_path, inputs):
    big = tmp_path / "big.jsonl"
    big.write_bytes(jsonl_drop("c", 2000))  # 1000 shards, ~50 s at 0.05 s each: never finishes
    store = Store(str(tmp_path / "root"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "root"), inputs[0],
                              str(big)], stdout=subprocess.PIPE, text=True, env=env)
    seen = [child.stdout.readline() for _ in range(5)]  # a's 3 shards, 2 of big's
    assert all(s.startswith("wrote") for s in seen), seen
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 130, out
    assert "ingest interrupted: a.jsonl ingested (3 new shard(s)); NOT ingested: big.jsonl" in out
    assert store.ls(layout.INPUTS, ".jsonl") == [f"00000{i}.jsonl" for i in range(3)]
    assert not store.exists(LOCK)
    again = ingest_inputs(store, [inputs[0], str(big)], None, IngestConfig(shard_size=500))
    assert [s.shape for s in again] == ["already_ingested", "jsonl"]
    assert again[1].shards == ["000003", "000004", "000005", "000006"]
