"""Synthetic generators: samples/s per generator, 1 process and P processes, against rendering
a blank image of the same size (the floor: PNG encode of an empty canvas) in the same run.
Generators: clocks, counting, charts (matplotlib Agg, one reused figure per process).

Usage: .venv/bin/python bench/bench_synth.py [--n 400] [--size 384] [--procs 2]

Per generator: ``render`` = parameters + drawing + PNG encode (``make_sample``), ``checked``
= the same plus the checker (what the ``synthetic`` asset does); ``blank`` = a blank RGB
image of the same size PNG-encoded with the same settings. With P processes the indices are
split into P equal ranges, one per process (spawned; start-up included in the time).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from mm_assets.core.synth.draw import png_bytes
from mm_assets.core.synth.generate import check_sample, make_sample
from mm_assets.core.synth.spec import SynthSpec


def blank(size: int, lo: int, hi: int) -> int:
    return sum(len(png_bytes(Image.new("RGB", (size, size), (255, 255, 255))))
               for _ in range(lo, hi))


def render(spec: SynthSpec, lo: int, hi: int) -> int:
    return sum(len(make_sample(spec, i).images[0]) for i in range(lo, hi))


def checked(spec: SynthSpec, lo: int, hi: int) -> int:
    n = 0
    for i in range(lo, hi):
        s = make_sample(spec, i)
        assert check_sample(s) is None
        n += len(s.images[0])
    return n


def rate(fn, arg, n: int, procs: int) -> float:
    t = time.perf_counter()
    if procs == 1:
        fn(arg, 0, n)
    else:
        bounds = [(n * k // procs, n * (k + 1) // procs) for k in range(procs)]
        with ProcessPoolExecutor(procs, mp_context=mp.get_context("spawn")) as ex:
            list(ex.map(fn, [arg] * procs, *zip(*bounds, strict=True)))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    print(f"n={a.n} per measurement, {a.size}x{a.size} PNG, procs 1 and {a.procs}")
    print(f"{'generator':<10}{'mode':<9}{'1 proc /s':>11}{f'{a.procs} procs /s':>13}"
          f"{'slower (1p)':>14}")
    base = {p: rate(blank, a.size, a.n * 4, p) for p in (1, a.procs)}
    print(f"{'blank':<10}{'encode':<9}{base[1]:>11.0f}{base[a.procs]:>13.0f}{1.0:>14.2f}")
    for g in ("clocks", "counting", "charts"):
        spec = SynthSpec(name=f"bench_{g}", generator=g, n=a.n, size=a.size)
        for mode, fn in (("render", render), ("checked", checked)):
            r = {p: rate(fn, spec, a.n, p) for p in (1, a.procs)}
            print(f"{g:<10}{mode:<9}{r[1]:>11.1f}{r[a.procs]:>13.1f}"
                  f"{base[1] / r[1]:>13.1f}x")


if __name__ == "__main__":
    main()
