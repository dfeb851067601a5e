"""Exact and near-duplicate detection on the real images in ../shared/data, against the
duplicate map in ../shared/data/SOURCES.md."""

import itertools
import re

import polars as pl
import pytest

from mm_assets.core.dedup.exact import exact_groups, hash_samples
from mm_assets.core.dedup.near import near_duplicate_groups
from mm_assets.core.ingest.formats import safe_id
from mm_assets.core.records import Sample

EXTS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".pgm"}
P = "images_edge/Pillow/Tests/images/"
CR = "images_edge/clip-retrieval/tests/test_clip_inference/test_images/"
I2D = "images_edge/img2dataset/tests/"
DJ = "images_edge/data-juicer/tests/ops/data/"
LF = "llava/LLaMA-Factory/data/"
# SOURCES.md "Duplicate map": byte-identical sets and same-decoded-pixel sets.
EXPECTED_SETS = [
    [DJ + "img1.png", DJ + "img4.png"], [DJ + "img2.jpg", DJ + "img5.jpg"],
    [DJ + "img3.jpg", DJ + "img6.jpg", DJ + "img7.jpg"], [LF + "images/1.jpg", LF + "mllm_demo_data/1.jpg"],
    *[[CR + n, I2D + "resize_test_image/" + n] for n in
      ["123_456.jpg", "208_495.jpg", "321_421.jpg", "416_264.jpg", "456_123.jpg", "524_316.jpg"]],
    [CR + "389_535.jpg", I2D + "resize_test_image/389_535.jpg", I2D + "blur_test_files/original.png"],
    [P + "hopper.png", P + "hopper.bmp", P + "hopper_idat_after_image_end.png"],
    [P + "rgb_trns.png", P + "p_trns_single.png"],
    [P + "photoshop-200dpi.jpg", P + "photoshop-200dpi-broken.jpg"],
    [P + "l_trns.png", P + "i_trns.png"], [P + "iss634.gif", P + "iss634.webp"],
    [P + "apng/delay.png", P + "apng/mode_16bit.png"],
]
# Resize / re-encode / blur near-duplicates that the perceptual hash must link.
NEAR = [(LF + "images/2.jpg", LF + "mllm_demo_data/2.jpg"),
        (LF + "images/3.jpg", LF + "mllm_demo_data/3.jpg"),
        (P + "pil_sample_cmyk.jpg", P + "pil_sample_rgb.jpg"),
        (P + "hopper.jpg", P + "hopper_resized.gif"), (P + "hopper.jpg", P + "hopper.webp"),
        (P + "flower.jpg", P + "flower_thumbnail.png"), (P + "flower.jpg", P + "flower.webp"),
        (DJ + "img_pair_1.jpg", DJ + "img_pair_2.jpg")] + [
        (I2D + "blur_test_files/original.png", I2D + "blur_test_files/" + n)
        for n in ["blurred.png", "resize_no.jpg", "resize_keep_ratio.jpg",
                  "resize_keep_ratio_largest.jpg"]]
# Pictures that are one source image in several files (anything else is its own family).
FAMILIES = [(r"Pillow/Tests/images/hopper", "hopper"), (r"Pillow/Tests/images/flower", "flower"),
            (r"_trns", "trns"), (r"pil_sample_", "pil_sample"), (r"apng/", "apng"),
            (r"(blur_test_files/|389_535)", "blur"), (r"img_pair_", "img_pair"),
            (r"LLaMA-Factory/data/(images|mllm_demo_data)/(\d)", r"lf\2")]


def family(path: str) -> str:
    for s in EXPECTED_SETS:  # exact duplicates are one picture
        if path in s and not any(re.search(rx, s[0]) for rx, _ in FAMILIES):
            return s[0]
    for rx, name in FAMILIES:
        m = re.search(rx, path)
        if m:
            return m.expand(name)
    return path.rsplit("/", 1)[-1].split(".")[0]


@pytest.fixture(scope="module")
def hashed(shared):
    files = sorted(p for d in ("images_edge", "llava") for p in (shared / d).rglob("*")
                   if p.suffix.lower() in EXTS)
    rel = [str(p.relative_to(shared)) for p in files]
    keys = {safe_id(r, 200): r for r in rel}
    samples = [Sample(k, [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}],
                      [(shared / r).read_bytes()], ["bin"]) for k, r in keys.items()]
    return keys, hash_samples(samples, 64_000_000)


def _pairs(groups: pl.DataFrame, col: str, keys: dict) -> set[frozenset]:
    out = set()
    for _, g in groups.group_by(col):
        out |= {frozenset(p) for p in itertools.combinations(
            [keys[k] for k in g["key"].to_list()], 2)}
    return out


def test_exact_pairs_match_the_duplicate_map(hashed):
    keys, table = hashed
    assert table.height >= 200
    found = _pairs(exact_groups(table, "keep_one"), "group_id", keys)
    expected = {frozenset(p) for s in EXPECTED_SETS for p in itertools.combinations(s, 2)}
    tp = len(found & expected)
    precision, recall = tp / len(found), tp / len(expected)
    assert precision >= 0.98 and recall >= 0.98, (found - expected, expected - found)


def test_near_duplicates_found_and_unrelated_images_not_linked(hashed):
    keys, table = hashed
    near = near_duplicate_groups(table, threshold=6)
    group = {keys[k]: g for k, g in zip(near["key"], near["near_group"], strict=True)}
    for a, b in NEAR:
        assert a in group and group.get(a) == group.get(b), (a, b)
    for _, g in near.group_by("near_group"):
        fams = {family(keys[k]) for k in g["key"].to_list()}
        assert len(fams) == 1, fams


def test_broken_images_keep_a_byte_hash_and_no_pixel_identity(hashed):
    keys, table = hashed
    by_path = {keys[r["key"]]: r for r in table.iter_rows(named=True)}
    broken = by_path[P + "truncated_jpeg.jpg"]
    assert broken["pixel_hashes"] == broken["bytes_hashes"] and broken["phashes"] == []
