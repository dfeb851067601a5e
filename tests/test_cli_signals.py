"""Ctrl-C / SIGTERM stop the whole `mm-assets run`; `run --missing` continues (issue 19 item 7),
and `run` before any ingest says so (item 6). Real subprocesses of the console script."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLI = str(Path(sys.executable).with_name("mm-assets"))
N_SHARDS = 6
PER_SHARD = 20  # each record decodes a 3000x3000 PNG (~0.1-0.2 s): a shard takes seconds


def _env(tmp_path):
    return {**os.environ, "MM_ASSETS_ROOT": str(tmp_path / "root"),
            "DAGSTER_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1"}


def _ingest(tmp_path, env):
    """Records that each reference one large, slow-to-decode PNG (155 KB, 9 Mpx), so a shard
    of raw_shards runs for seconds and the signal lands inside a run, not after the last."""
    images = tmp_path / "images"
    images.mkdir()
    ramp = (np.add.outer(np.arange(3000), np.arange(3000)) % 256).astype("uint8")
    Image.fromarray(np.stack([ramp, ramp.T, ramp // 2], -1)).save(images / "big.png")
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": i, "image": "big.png", "conversations": [
        {"from": "human", "value": f"<image>\nQuestion {i}?"},
        {"from": "gpt", "value": f"Answer {i}."}]}) + "\n" for i in range(N_SHARDS * PER_SHARD)))
    subprocess.run([CLI, "ingest", "--input", str(src), "--images", str(images),
                    "--shard-size", str(PER_SHARD)], env=env, check=True, capture_output=True,
                   timeout=120)


def _done(tmp_path) -> int:
    return len(list((tmp_path / "root" / "raw_shards").glob("*.tar")))


def test_run_before_any_ingest_says_nothing_ingested_yet(tmp_path):
    r = subprocess.run([CLI, "run"], env=_env(tmp_path), capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 2
    assert "nothing ingested yet" in r.stderr and "concat" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_whole_run_and_missing_continues(tmp_path, sig):
    env = _env(tmp_path)
    _ingest(tmp_path, env)
    proc = subprocess.Popen([CLI, "run", "--select", "raw_shards"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    for line in proc.stdout:  # progress lines: "[   1.2s] raw_shards [000001]"
        seen.append(line)
        if "raw_shards [000001]" in line:
            break
    assert seen and "raw_shards [000001]" in seen[-1], seen
    proc.send_signal(sig)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    stopped_after = time.monotonic() - t0
    assert proc.returncode == 130, err[-2000:]
    assert stopped_after < 10
    assert "STOPPED: interrupted during raw_shards [000001]" in err, err[-2000:]
    assert "not started: 4 run(s)" in err and "--missing" in err
    assert _done(tmp_path) <= 2  # the rest never started
    if sig == signal.SIGTERM:
        return
    again = subprocess.run([CLI, "run", "--select", "raw_shards", "--missing"], env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _done(tmp_path) == N_SHARDS
    assert "raw_shards [000000]" not in again.stdout  # finished shards are not recomputed


def test_a_signal_dagster_swallows_as_a_run_closes_still_stops_the_call():
    """Dagster's ``capture_interrupts`` only sets a flag for a SIGINT that lands after the step
    and clears it as the run closes (CI lost a Ctrl-C that way: the call ran on and exited 0).
    The runner's wakeup-fd watch still sees it; with no signal it sees nothing."""
    from dagster._utils.interrupts import capture_interrupts

    from mm_assets.runner import _signals_interrupt

    with _signals_interrupt() as pending:
        with capture_interrupts():  # what materialize() wraps around run teardown
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here and only sets Dagster's flag
        assert pending() is True
        assert pending() is False  # drained: one signal stops one call
        with capture_interrupts():
            time.sleep(0.01)
        assert pending() is False
