"""SemDeDup as stored range partitions, each range in a process of its own (as one pod per
range would run it): peak RSS of the plan step, of every range process and of the finishing
step against the bytes of all vectors, and identity with the in-process range implementation
(``semdedup_ranges``, what the asset ran before) on the same corpus.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/bench_semdedup_partitions.py \\
        --n 1000000 --dim 768 --k 4000 --procs 2

Corpus: as ``bench/bench_semdedup_scale.py`` (per-shard ``embeddings/{shard}/image.npy``
files, 5% noisy copies, 85% unique). Steps: plan in this process
(:func:`~mm_assets.core.semantic.semdedup_plan.make_plan` + ``write_plan``); each range key
scored by ``python -c`` (:func:`~mm_assets.core.semantic.semdedup_scoring.range_counts`: the
store and the key only), ``--procs`` at a time, each reporting its own peak RSS
(``ru_maxrss``) and its RSS after imports; finishing in this process (``gather_scores`` +
``finish_space``). Then ``semdedup_ranges`` in this process as the reference: scores,
partners, decisions and ε must be identical (asserted). RSS includes what ``import torch``
maps (≈ 0.4–0.7 GB of shared library pages), so "above imports" is given too.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_semdedup_scale import write_corpus

from mm_assets.core.semantic.semdedup import SemDedupConfig, finish_space
from mm_assets.core.semantic.semdedup_plan import SpaceInput, make_plan, write_plan
from mm_assets.core.semantic.semdedup_ranges import semdedup_ranges
from mm_assets.core.semantic.semdedup_scoring import gather_scores
from mm_assets.core.storage import Store

MIB = 2**20
RANGE = """
import json, resource, sys, time, psutil
from mm_assets.core.semantic.semdedup import SemDedupConfig
from mm_assets.core.semantic.semdedup_scoring import range_counts
from mm_assets.core.storage import Store
base = psutil.Process().memory_info().rss
t = time.perf_counter()
counts, _ = range_counts(sys.argv[2], Store(sys.argv[1]), SemDedupConfig())
print(json.dumps({"key": sys.argv[2], "n": counts.n_in, "ok": counts.reconciles(),
                  "s": time.perf_counter() - t, "base": base / 2**20,
                  "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def rss() -> float:
    return psutil.Process().memory_info().rss / MIB


def score_ranges(root: str, keys: list[str], procs: int) -> list[dict]:
    """Each key in a fresh ``python -c`` process, ``procs`` at a time."""
    out, running, todo = [], [], list(keys)
    while todo or running:
        while todo and len(running) < procs:
            running.append(subprocess.Popen([sys.executable, "-c", RANGE, root, todo.pop(0)],
                                            stdout=subprocess.PIPE, text=True))
        p = running.pop(0)
        line = p.communicate()[0].strip().splitlines()[-1]
        assert p.returncode == 0, line
        out.append(json.loads(line))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=4000)
    ap.add_argument("--shard", type=int, default=10_000)
    ap.add_argument("--range-mib", type=int, default=128)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir, prefix="semdedup-parts-") as d:
        store = Store(d)
        src, assign, distance, unique = write_corpus(store, a.n, a.dim, a.k, a.shard)
        shards = tuple(f"{i:06d}" for i in range(len(src.rels)))
        total = a.n * a.dim * 2 / MIB
        print(f"corpus: {a.n:,} x {a.dim} float16 in {len(shards)} shard files = "
              f"{total:,.0f} MiB of vectors; k = {a.k}", flush=True)
        cfg = SemDedupConfig()
        base, t = rss(), time.perf_counter()
        inp = SpaceInput(shards, tuple(int(c) for c in src.counts), a.dim, assign, distance,
                         unique)
        plan, jobs = make_plan({"image": inp}, {"bench": 1}, a.range_mib * MIB, 0)
        write_plan(store, plan, jobs)
        del jobs
        print(f"plan: {len(plan.keys())} ranges in {time.perf_counter() - t:.1f} s, "
              f"RSS {rss():,.0f} MiB ({rss() - base:+,.0f} above start)", flush=True)
        t = time.perf_counter()
        done = score_ranges(d, plan.keys(), a.procs)
        wall = time.perf_counter() - t
        assert all(r["ok"] for r in done) and sum(r["n"] for r in done) == int(unique.sum())
        top = max(done, key=lambda r: r["peak"])
        print(f"ranges: {len(done)} processes, {a.procs} at a time, {wall:.1f} s wall "
              f"(scoring {sum(r['s'] for r in done):.1f} s in all); peak RSS per process "
              f"max {top['peak']:,.0f} MiB ({top['peak'] - top['base']:+,.0f} above its "
              f"imports, range of {top['n']:,} points), median "
              f"{np.median([r['peak'] for r in done]):,.0f} MiB", flush=True)
        t, before = time.perf_counter(), rss()
        scores, partner, _ = gather_scores(store, plan, "image")
        got = finish_space(scores, partner, assign, unique, cfg)
        print(f"finish: {time.perf_counter() - t:.1f} s, RSS {rss():,.0f} MiB "
              f"({rss() - before:+,.0f}); removed {int(got.duplicate.sum()):,}", flush=True)
        t = time.perf_counter()
        ref = semdedup_ranges(src, assign, distance, unique, cfg, "cpu", 1)
        print(f"reference semdedup_ranges (1 process): {time.perf_counter() - t:.1f} s",
              flush=True)
        for f in ("scores", "partner", "duplicate"):
            np.testing.assert_array_equal(getattr(got, f), getattr(ref, f))
        assert got.epsilon == ref.epsilon
        print(f"identical scores, partners, decisions and epsilon; this process's peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB "
              f"(vectors: {total:,.0f} MiB)")


if __name__ == "__main__":
    main()
