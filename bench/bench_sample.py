"""`mm-assets sample` on a large synthetic root: wall seconds and peak RSS per view, against a
plain sequential read of the same raw shards measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/bench_sample.py --n 100000
    PYTHONPATH=. .venv/bin/python bench/bench_sample.py --root /tmp/r --views unique removed all

The root is ``bench/_synth_root.py`` (raw shards of small PNG/text-only samples and every
decision table, decisions following known rules). Each command runs in its own process (the
CLI as a user runs it, imports included); its peak RSS is that process's ``ru_maxrss``
(``os.wait4``); this script imports only the standard library and builds the root in a
child process, so the RSS a child inherits at fork (Linux keeps the larger) stays small. Baselines, same process
start-up: ``startup`` imports the browser and exits; ``sequential read`` reads every tar
member of every raw shard once (``tarfile`` stream, data read and dropped).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = "import sys; from bench._synth_root import build_root; " \
    "build_root(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))"

SEQUENTIAL_READ = """
import sys, tarfile
from pathlib import Path
n = b = 0
for p in sorted(Path(sys.argv[1], "raw_shards").glob("*.tar")):
    with open(p, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tf:
        for m in tf:
            if m.isfile():
                b += len(tf.extractfile(m).read()); n += 1
print(n, b)
"""
STARTUP = "import mm_assets.browse.gallery, mm_assets.cli"
VIEW_ARGS = {"unique": ["--asset", "semdedup"],
             "removed": ["--asset", "curated", "--view", "removed"],
             "all": ["--asset", "raw_shards"],
             "cluster": ["--asset", "clusters", "--cluster", "3"],
             "decile": ["--asset", "ppl_deciles"],
             "exact-groups": ["--asset", "exact_duplicates"]}


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="samples in the synthetic root")
    ap.add_argument("--per-shard", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1000, help="--n of `mm-assets sample`")
    ap.add_argument("--views", nargs="+", default=["unique", "removed"], choices=VIEW_ARGS)
    ap.add_argument("--root", default="", help="reuse (or build once into) this root")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench_sample_")
    root = Path(args.root or Path(tmp) / "root")
    if not (root / "raw_shards").is_dir():
        wall, rss, _ = timed([sys.executable, "-c", BUILD, str(root), str(args.n),
                              str(args.per_shard)])
        print(f"built {args.n:,} samples ({-(-args.n // args.per_shard)} shards) in "
              f"{wall:.0f} s (peak RSS {rss:.0f} MiB): {root}", flush=True)
    tars = sorted((root / "raw_shards").glob("*.tar"))
    mib = sum(p.stat().st_size for p in tars) / 2**20
    py = sys.executable
    cli = [py, "-c", "from mm_assets.cli import app; app()"]

    rows = []
    wall, rss, _ = timed([py, "-c", STARTUP])
    rows.append(("startup (imports only)", wall, rss, ""))
    base_wall, base_rss, out = timed([py, "-c", SEQUENTIAL_READ, str(root)])
    members = int(out.split()[0])
    rows.append((f"sequential read ({len(tars)} tars, {mib:,.0f} MiB, {members:,} members)",
                 base_wall, base_rss, ""))
    for view in args.views:
        dest = Path(tmp) / f"g_{view}"
        wall, rss, out = timed([*cli, "sample", *VIEW_ARGS[view], "--n", str(args.samples),
                                "--out", str(dest), "--root", str(root)])
        rows.append((f"sample --view {view} --n {args.samples}", wall, rss,
                     out.split(" -> ")[0]))
        shutil.rmtree(dest, ignore_errors=True)

    print(f"\nroot {args.n:,} samples, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print("| command | seconds | × sequential read | peak RSS MiB | × sequential read | output |")
    print("|---|---:|---:|---:|---:|---|")
    for name, wall, rss, note in rows:
        print(f"| {name} | {wall:.1f} | {wall / base_wall:.2f} | {rss:.0f} | "
              f"{rss / base_rss:.2f} | {note} |")
    if not args.root:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
