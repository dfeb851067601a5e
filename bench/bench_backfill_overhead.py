"""Dagster overhead per shard in a 1,000-shard backfill of a trivial per-shard asset:
one run per shard versus runs covering a range of shards (BackfillPolicy).

Usage: .venv/bin/python bench/bench_backfill_overhead.py [--shards 1000] [--single-shards 200]
           [--batch 16] [--no-daemon] [--daemon-single-shards 30] [--daemon-shards 1000]

The asset ``trivial`` is partitioned by a DynamicPartitionsDefinition and writes a few bytes per
partition (``{out}/{shard}.txt``): whatever the run costs beyond that is Dagster's overhead.
Every mode uses a persistent SQLite instance (a fresh temporary ``DAGSTER_HOME`` per mode, so
run and event-log storage costs are real: one runs.db row and one per-run event-log DB per run).

In process (``materialize``, in-process executor, what ``mm-assets run`` does):
  (a) one run per shard: ``materialize(partition_key=shard)`` per shard, over the first
      ``--single-shards`` shards (default 200 of the 1,000: 1,000 runs take ~4 min here);
  (b) batched: runs tagged ``dagster/asset_partition_range_start`` / ``_end`` over consecutive
      chunks of ``--batch`` shards (what the backfill daemon launches for
      ``BackfillPolicy.multi_run(max_partitions_per_run=N)``), over all ``--shards``;
  (c) one run over all ``--shards`` (``BackfillPolicy.single_run()``).
Through the real daemon (unless ``--no-daemon``): ``dagster-webserver`` + ``dagster-daemon`` on
127.0.0.1 over a temporary SQLite ``DAGSTER_HOME`` (QueuedRunCoordinator, dequeue every 1 s,
default 10 concurrent runs, DefaultRunLauncher: one subprocess per run, multiprocess executor),
backfills launched with GraphQL ``launchPartitionBackfill`` (``mm_assets.backfill.launch``):
  (d) ``trivial`` (no BackfillPolicy: one run per partition) over ``--daemon-single-shards``;
  (e) ``trivial_batched`` (``BackfillPolicy.multi_run(--batch)``) over ``--daemon-shards``.
For the daemon, "active span" is from the first run's start to the last run's end; "wall" is
from the launch mutation to the last run's end (includes the backfill daemon's 30 s tick).

Also run as a Dagster code location (``-f`` this file): it then only defines ``defs``.
"""

import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=Warning, module=r"dagster.*")

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Definitions,
    DynamicPartitionsDefinition,
    MaterializeResult,
    asset,
)

bench_shards = DynamicPartitionsDefinition(name="bench_shards")
BATCH = int(os.environ.get("MM_BENCH_BATCH", "16"))


def _write(keys: list[str], asset_name: str) -> int:
    out = Path(os.environ["MM_BENCH_OUT"]) / asset_name
    out.mkdir(exist_ok=True)
    for k in keys:
        (out / f"{k}.txt").write_bytes(f"shard {k}\n".encode())
    return len(keys)


@asset(partitions_def=bench_shards)
def trivial(context: AssetExecutionContext) -> MaterializeResult:
    """A few bytes per partition; one run per partition in a backfill (no BackfillPolicy)."""
    return MaterializeResult(metadata={"n": _write(context.partition_keys, "trivial")})


@asset(partitions_def=bench_shards, backfill_policy=BackfillPolicy.multi_run(BATCH))
def trivial_batched(context: AssetExecutionContext) -> MaterializeResult:
    """Same body; a backfill runs ``MM_BENCH_BATCH`` partitions per run."""
    return MaterializeResult(metadata={"n": _write(context.partition_keys, "trivial_batched")})


defs = Definitions(assets=[trivial, trivial_batched])

DAGSTER_YAML = """run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
telemetry:
  enabled: false
"""
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def row(**fields) -> dict:
    """One table row: mode, shards, runs, wall (s), cpu (s or None), bare (s/shard), flags."""
    return fields


def new_home(base: Path, name: str, keys: list[str]):
    from dagster import DagsterInstance

    home = base / name
    (home / "out").mkdir(parents=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    instance = DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("bench_shards", keys)
    os.environ["MM_BENCH_OUT"] = str(home / "out")
    return home, instance


def check(instance, home: Path, asset_def, n: int) -> None:
    got = len(instance.get_materialized_partitions(asset_def.key))
    out = home / "out" / asset_def.key.path[-1]
    files = len(list(out.iterdir())) if out.exists() else 0
    if got != n or files != n:
        raise SystemExit(f"{home.name}: {got} partitions materialized, {files} files; expected {n}")


def timed_runs(calls) -> tuple[float, float, int, list[float]]:
    """Run ``calls`` (each a materialize thunk); wall s, process CPU s, runs, CPU s per run."""
    w, c = time.perf_counter(), time.process_time()
    each = []
    for call in calls:
        c1 = time.process_time()
        if not call().success:
            raise SystemExit("a run failed")
        each.append(time.process_time() - c1)
    return time.perf_counter() - w, time.process_time() - c, len(calls), each


def in_process(base: Path, keys: list[str], n_single: int, batch: int) -> list[dict]:
    from dagster import DagsterInstance, materialize

    rows = []
    # Warm-up (imports, first job build) outside the timings.
    with DagsterInstance.ephemeral() as eph:
        eph.add_dynamic_partitions("bench_shards", ["w"])
        (base / "warm").mkdir()
        os.environ["MM_BENCH_OUT"] = str(base / "warm")
        materialize([trivial], instance=eph, partition_key="w", run_config=QUIET)

    # Bare work: the same writes without Dagster.
    home = base / "bare"
    (home / "out").mkdir(parents=True)
    os.environ["MM_BENCH_OUT"] = str(home / "out")
    w = time.perf_counter()
    _write(keys, "trivial")
    bare = (time.perf_counter() - w) / len(keys)
    rows.append(row(mode="no Dagster (same writes)", shards=len(keys), runs=0,
                     wall=bare * len(keys), cpu=None, bare=bare))

    # (a) one run per shard.
    home, inst = new_home(base, "single", keys)
    sub = keys[:n_single]
    wall, cpu, runs, each = timed_runs([lambda k=k: materialize(
        [trivial], instance=inst, partition_key=k, run_config=QUIET) for k in sub])
    check(inst, home, trivial, len(sub))
    inst.dispose()
    q = max(1, len(each) // 10)
    rows.append(row(mode="(a) in-process, 1 run per shard", shards=len(sub), runs=runs,
                     wall=wall, cpu=cpu, bare=bare, single=True,
                     trend=(sum(each[:q]) / q, sum(each[-q:]) / q, q)))

    # (b) ranged runs of `batch` shards, as the daemon launches for multi_run(batch).
    home, inst = new_home(base, "batched", keys)
    chunks = [keys[i:i + batch] for i in range(0, len(keys), batch)]
    wall, cpu, runs, _ = timed_runs([lambda c=c: materialize(
        [trivial], instance=inst, run_config=QUIET,
        tags={RANGE_START: c[0], RANGE_END: c[-1]}) for c in chunks])
    check(inst, home, trivial, len(keys))
    inst.dispose()
    rows.append(row(mode=f"(b) in-process, ranged runs of {batch} (multi_run({batch}))",
                     shards=len(keys), runs=runs, wall=wall, cpu=cpu, bare=bare, batched=True))

    # (c) one ranged run over all shards, as for single_run().
    home, inst = new_home(base, "single_run", keys)
    wall, cpu, runs, _ = timed_runs([lambda: materialize(
        [trivial], instance=inst, run_config=QUIET,
        tags={RANGE_START: keys[0], RANGE_END: keys[-1]})])
    check(inst, home, trivial, len(keys))
    inst.dispose()
    rows.append(row(mode="(c) in-process, 1 ranged run (single_run())", shards=len(keys),
                     runs=runs, wall=wall, cpu=cpu, bare=bare))
    return rows


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon(base: Path, keys: list[str], n_single: int, n_batched: int, batch: int,
           bare: float, timeout_s: float) -> list[dict]:
    import subprocess

    import requests
    from dagster import RunsFilter
    from dagster._core.storage.dagster_run import DagsterRunStatus

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mm_assets.backfill import GraphQL, launch

    home, inst = new_home(base, "daemon", keys)
    env = dict(os.environ, DAGSTER_HOME=str(home), MM_BENCH_BATCH=str(batch),
               PYTHONUNBUFFERED="1")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    binp, me = Path(sys.executable).parent, str(Path(__file__).resolve())
    cmds = [[str(binp / "dagster-webserver"), "-f", me, "-h", "127.0.0.1", "-p", str(port)],
            [str(binp / "dagster-daemon"), "run", "-f", me]]
    with open(home / "webserver.log", "wb") as wlog, open(home / "daemon.log", "wb") as dlog:
        logs = [wlog, dlog]
        procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=base)
                 for c, log in zip(cmds, logs, strict=True)]
        rows = []
        try:
            t0 = time.time()
            while True:
                try:
                    if requests.get(f"{url}/server_info", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                if time.time() - t0 > 120 or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"webserver not ready; see {home}/*.log")
                time.sleep(0.5)
            gql = GraphQL(url)
            for name, n in (("trivial", n_single), ("trivial_batched", n_batched)):
                asset_def = {"trivial": trivial, "trivial_batched": trivial_batched}[name]
                t_launch = time.time()
                (bid,) = launch(gql, [name], keys[:n], title=f"bench {name}")
                while True:
                    recs = inst.get_run_records(filters=RunsFilter(tags={"dagster/backfill": bid}))
                    mat = len(inst.get_materialized_partitions(asset_def.key))
                    if mat >= n and recs and all(r.dagster_run.is_finished for r in recs):
                        break
                    if time.time() - t_launch > timeout_s:
                        raise SystemExit(f"daemon backfill {name}: {mat}/{n} after {timeout_s} s; "
                                         f"see {home}/*.log")
                    time.sleep(0.5)
                failed = [r for r in recs if r.dagster_run.status != DagsterRunStatus.SUCCESS]
                if failed:
                    raise SystemExit(f"daemon backfill {name}: {len(failed)} failed runs")
                check(inst, home, asset_def, n)
                first = min(r.start_time for r in recs)
                last = max(r.end_time for r in recs)
                label = ("(d) daemon, 1 run per shard (no policy)" if name == "trivial"
                         else f"(e) daemon, multi_run({batch})")
                rows.append(row(mode=label, shards=n, runs=len(recs), wall=last - first, cpu=None,
                                 bare=bare, launch_wall=last - t_launch,
                                 single=name == "trivial", batched=name != "trivial", daemon=True))
        finally:
            for p in procs:  # the parents only: each stops its own code server
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
            inst.dispose()
    return rows


def main() -> None:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=1000, help="shards for the batched cases")
    ap.add_argument("--single-shards", type=int, default=200,
                    help="shards for in-process one-run-per-shard (first N of --shards)")
    ap.add_argument("--batch", type=int, default=16, help="max_partitions_per_run (project: 16)")
    ap.add_argument("--no-daemon", action="store_true", help="skip the real-daemon cases")
    ap.add_argument("--daemon-single-shards", type=int, default=30)
    ap.add_argument("--daemon-shards", type=int, default=1000)
    ap.add_argument("--daemon-timeout", type=float, default=300.0,
                    help="seconds per daemon backfill before giving up")
    args = ap.parse_args()
    if not 0 < args.single_shards <= args.shards:
        ap.error("--single-shards must be in 1..--shards")
    keys = [f"{i:06d}" for i in range(args.shards)]
    t_all, load0 = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mm_bench_backfill_") as tmp:
        base = Path(tmp)
        rows = in_process(base, keys, args.single_shards, args.batch)
        if not args.no_daemon:
            rows += daemon(base, keys, min(args.daemon_single_shards, args.shards),
                           min(args.daemon_shards, args.shards), args.batch, rows[0]["bare"],
                           args.daemon_timeout)
    report(rows, args, time.perf_counter() - t_all, (load0, os.getloadavg()[0]))


def report(rows: list[dict], args, total_s: float, load: tuple[float, float]) -> None:
    def per(r):
        return r["wall"] / r["shards"]

    def over(r):
        return per(r) - r["bare"]

    ref = {kind: next((r for r in rows if r.get(kind) and r.get("daemon", False) == d), None)
           for kind, d in (("single", False), ("batched", False))}
    dref = {kind: next((r for r in rows if r.get(kind) and r.get("daemon")), None)
            for kind in ("single", "batched")}
    print(f"\nDagster overhead per shard, trivial per-shard asset (DynamicPartitionsDefinition, "
          f"a few bytes per shard), SQLite instance, Dagster {__import__('dagster').__version__},"
          f" {os.cpu_count()} CPUs (shared machine; 1-min load {load[0]:.1f} at start, "
          f"{load[1]:.1f} at end)")
    print(f"In-process rows: materialize() with the in-process executor. One-run-per-shard "
          f"figures are from the shards listed (not {args.shards}); batched from {args.shards}.")
    if any(r.get("daemon") for r in rows):
        print("Daemon rows: dagster-webserver + dagster-daemon, launchPartitionBackfill, "
              "QueuedRunCoordinator (10 concurrent runs), one subprocess per run, multiprocess "
              "executor; CPU not measured (other processes).")
    hdr = (f"{'mode':<50} {'shards':>6} {'runs':>5} {'seconds':>8} {'s/shard':>9} "
           f"{'overhead s/shard':>16} {'CPU s/shard':>11} {'vs batched':>10}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        cpu = f"{r['cpu'] / r['shards']:.5f}" if r.get("cpu") is not None else "-"
        base = (dref if r.get("daemon") else ref)["batched"]
        ratio = f"{over(r) / over(base):.1f}x" if base and r["runs"] else "-"
        ov = f"{over(r):.5f}" if r["runs"] else "-"
        print(f"{r['mode']:<50} {r['shards']:>6} {r['runs']:>5} {r['wall']:>8.2f} "
              f"{per(r):>9.5f} {ov:>16} {cpu:>11} {ratio:>10}")
    for r in rows:
        if r.get("daemon"):
            print(f"  {r['mode']}: seconds = first run start -> last run end; from the launch "
                  f"mutation: {r['launch_wall']:.1f} s ({r['launch_wall'] / r['shards']:.4f} "
                  f"s/shard)")
    if ref["single"] and ref["batched"]:
        s1, b1 = ref["single"], ref["batched"]
        cpu_ratio = (s1["cpu"] / s1["shards"]) / (b1["cpu"] / b1["shards"])
        print(f"Ratio in process, 1 run per shard / multi_run({args.batch}), overhead per shard: "
              f"{over(s1) / over(b1):.1f}x wall, {cpu_ratio:.1f}x CPU "
              f"({ref['single']['shards']} vs {ref['batched']['shards']} shards)")
        a, b, q = ref["single"]["trend"]
        print(f"  (a) CPU s per run, first {q} runs {a:.4f}, last {q} runs {b:.4f} "
              f"(growth with the number of runs in the instance)")
    if dref["single"] and dref["batched"]:
        print(f"Ratio through the daemon, 1 run per shard / multi_run({args.batch}): "
              f"{over(dref['single']) / over(dref['batched']):.1f}x "
              f"({dref['single']['shards']} vs {dref['batched']['shards']} shards)")
    print(f"overhead = seconds per shard minus the same writes without Dagster; whole script "
          f"{total_s:.0f} s")


if __name__ == "__main__":
    main()
