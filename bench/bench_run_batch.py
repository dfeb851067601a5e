"""`mm-assets run` with one run per shard against runs of ``--batch`` consecutive shards.

Usage: .venv/bin/python bench/bench_run_batch.py [--shards 48] [--per-shard 25] [--batch 16]
       [--select raw_shards,image_hashes,text_quality]

Builds ``--shards × --per-shard`` LLaVA records over the real images in ../shared/data (repeated
under new keys; every 5th record text-only), ingests them once, copies the ingested root and a
fresh ``DAGSTER_HOME`` per mode, then times the real CLI (`mm-assets run --select ...`) with
``--batch 1`` and ``--batch N`` in the same run. With batches each per-shard asset gets N
shards per Dagster run and spreads them over its worker processes (one per core by default),
so the ratio shows both the per-run overhead saved and the cores used. Outputs are compared:
every commit record's counts and every output file byte for byte (asserted).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CLI = str(Path(sys.executable).with_name("mm-assets"))


def build_input(d: Path, n: int) -> tuple[Path, Path]:
    root = SHARED / "llava"
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    rows = []
    for i in range(n):
        conv = [{"from": "human", "value": ("<image>\n" if i % 5 else "") + f"What is {i}?"},
                {"from": "gpt", "value": f"It is item number {i}, as the picture shows."}]
        rec = {"id": f"r{i}", "conversations": conv}
        if i % 5:
            rec["image"] = str(images[i % len(images)].relative_to(root))
        rows.append(json.dumps(rec))
    (d / "in.jsonl").write_text("\n".join(rows) + "\n")
    return d / "in.jsonl", root


def env_for(base: Path) -> dict:
    return {**os.environ, "MM_ASSETS_ROOT": str(base / "root"),
            "DAGSTER_HOME": str(base / "home"), "HF_HUB_OFFLINE": "1"}


def outputs(root: Path, select: list[str]) -> dict[str, bytes]:
    """Every file the selected assets wrote, and their commit records' counts."""
    got = {}
    for asset in select:
        for p in sorted((root / asset).rglob("*")) if (root / asset).exists() else []:
            if p.is_file():
                got[str(p.relative_to(root))] = p.read_bytes()
        for p in sorted((root / "_commits" / asset).glob("*.json")):
            got[str(p.relative_to(root))] = json.dumps(json.loads(p.read_text())["counts"],
                                                       sort_keys=True).encode()
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=48)
    ap.add_argument("--per-shard", type=int, default=25)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--select", default="raw_shards,image_hashes,text_quality")
    a = ap.parse_args()
    select = a.select.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, images = build_input(tmp, a.shards * a.per_shard)
        ingested = tmp / "ingested"
        (ingested / "home").mkdir(parents=True)
        subprocess.run([CLI, "ingest", "--input", str(src), "--images", str(images),
                        "--shard-size", str(a.per_shard)], env=env_for(ingested), check=True,
                       capture_output=True)
        results = {}
        for batch in (1, a.batch):
            base = tmp / f"batch{batch}"
            shutil.copytree(ingested, base)
            t0 = time.perf_counter()
            r = subprocess.run([CLI, "run", "--select", a.select, "--batch", str(batch)],
                               env=env_for(base), capture_output=True, text=True, check=False)
            secs = time.perf_counter() - t0
            assert r.returncode == 0, r.stderr[-3000:]
            runs = sum(1 for ln in r.stdout.splitlines() if ln.startswith("["))
            results[batch] = (secs, runs, outputs(base / "root", select))
            print(f"--batch {batch:>3}: {runs:>4} runs, {secs:7.1f} s, "
                  f"{a.shards * a.per_shard / secs:7.1f} samples/s", flush=True)
        one, many = results[1], results[a.batch]
        assert one[2] == many[2], "outputs differ between --batch 1 and --batch N"
        print(f"{a.shards} shards x {a.per_shard} samples, select {a.select}: "
              f"--batch {a.batch} is {one[0] / many[0]:.2f}x --batch 1; "
              f"{len(one[2])} output files + commit counts byte-identical")


if __name__ == "__main__":
    main()
