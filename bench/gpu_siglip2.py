"""Prepared GPU check: SigLIP2 B/16 images/s end to end (decode + preprocess + forward).

Usage on a GPU machine (random weights are fine for throughput; pass --pretrained PATH or a tag
for real weights):
    .venv/bin/python bench/gpu_siglip2.py --device cuda --images 2048 --batch 256 --workers 8
Here (CPU smoke run): .venv/bin/python bench/gpu_siglip2.py --device cpu --images 16 --batch 8

Prints one table: bare forward images/s on preprocessed tensors (bf16 autocast on CUDA) and
``embed_images`` images/s with DataLoader workers decoding JPEGs, and their ratio.
"""

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mm_assets.core.semantic.embed import embed_images
from mm_assets.core.semantic.encoders import build_image_encoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ViT-B-16-SigLIP2")
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=8)
    a = ap.parse_args()
    enc = build_image_encoder(a.model, a.pretrained, a.device)
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(a.images):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (384, 512, 3), dtype=np.uint8)).save(buf, "JPEG")
        blobs.append(buf.getvalue())
    one = enc.preprocess(Image.open(io.BytesIO(blobs[0])).convert("RGB"))
    batch = one[None].repeat(a.batch, 1, 1, 1)
    enc.forward(batch)  # warm-up (cudnn autotune, allocator)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(max(1, a.images // a.batch)):
        enc.forward(batch)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    bare = max(1, a.images // a.batch) * a.batch / (time.perf_counter() - t)
    t = time.perf_counter()
    embed_images(blobs, enc, a.batch, a.workers, 64_000_000)
    stage = a.images / (time.perf_counter() - t)
    name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    print(f"{'model':<20}{'device':<24}{'bare img/s':>12}{'stage img/s':>13}{'stage/bare':>12}")
    print(f"{a.model:<20}{name[:23]:<24}{bare:>12.1f}{stage:>13.1f}{stage / bare:>12.2f}")


if __name__ == "__main__":
    main()
