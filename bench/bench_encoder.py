"""EfficientNet-Lite0 image embedding: onnxruntime vs torch on the same preprocessed batches.

Usage: .venv/bin/python bench/bench_encoder.py [--images 128] [--batch 32] [--threads 2] [--rounds 3]

Both backends take the same ``(B, 3, 224, 224) float32`` batches built once from the real images
in ../shared/data (repeated up to --images), so only the network is timed. Rounds alternate
torch / onnx; the best round of each is reported with the ratio torch_s / onnx_s and the max
abs difference of the pooled features.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from mm_assets.core.ingest.images import decode_rgb
from mm_assets.core.semantic import efficientnet as eff

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    files = [p for p in sorted((SHARED / "llava").rglob("*"))
             if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]
    tf = eff.preprocess()
    x = torch.stack([tf(decode_rgb(files[i % len(files)].read_bytes()))
                     for i in range(a.images)])
    batches = list(x.split(a.batch))
    model = eff.build_torch(pretrained=True)
    onnx = eff.onnx_model(threads=a.threads)

    def run_torch():
        with torch.inference_mode():
            return torch.cat([model(b) for b in batches])

    def run_onnx():
        return torch.cat([onnx(b) for b in batches])

    best = {"torch": float("inf"), "onnx": float("inf")}
    outs = {}
    for _ in range(a.rounds):
        for name, fn in (("torch", run_torch), ("onnx", run_onnx)):
            t0 = time.perf_counter()
            outs[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    diff = float((outs["torch"] - outs["onnx"]).abs().max())
    print(f"{a.images} images, batch {a.batch}, {a.threads} threads")
    for name, s in best.items():
        print(f"  {name:6s} {s:7.2f} s  {a.images / s:7.1f} images/s")
    print(f"  ratio torch/onnx {best['torch'] / best['onnx']:.2f}x   max |diff| {diff:.2e}")
    np.testing.assert_array_less(diff, eff.ONNX_TOLERANCE + 1e-12)


if __name__ == "__main__":
    main()
