"""The sample browser on synthetic samples: ``--asset synthetic`` shows one section per spec
(``--source`` picks one), every card has an answer-overlay thumbnail beside the original, the
thumbnails decode, and the counting markers land where the answer's points say."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from mm_assets.browse.gallery import build_gallery
from mm_assets.browse.overlay import MARKER, overlay, points
from mm_assets.browse.select import spec_for_asset
from mm_assets.core.storage import Store
from mm_assets.core.synth.generate import build_spec, make_sample
from mm_assets.core.synth.spec import SynthSpec

SIZE = 256  # < THUMB_PX: thumbnails keep the image's pixel grid


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("synroot")))
    for g in ("clocks", "counting", "charts"):
        build_spec(store, SynthSpec(name=f"s_{g}", generator=g, n=24, seed=5, size=SIZE,
                                    shard_size=10))
    return store


def _decode(out: Store, src: str) -> np.ndarray:
    im = Image.open(io.BytesIO(out.read_bytes(src)))
    assert im.format == "JPEG"
    return np.asarray(im.convert("RGB"), dtype=np.int32)


def test_every_spec_a_section_with_overlay_thumbnails(root, tmp_path):
    out = Store(str(tmp_path / "all"))
    res = build_gallery(root, spec_for_asset("synthetic", None, n=4), out, parquet=True)
    assert res.candidates == {"synthetic: s_charts": 24, "synthetic: s_clocks": 24,
                              "synthetic: s_counting": 24}
    assert res.cards == 12 and res.sections == 3
    html = out.read_bytes("index.html").decode()
    assert html.count("_0_answer.jpg") == 12 and "answer overlaid" in html
    df = pl.read_parquet(out.path("samples.parquet"))
    assert df["n_images"].to_list() == [1] * 12
    for thumbs in df["thumbs"].to_list():
        original, answer = thumbs
        assert answer == original.replace("_0.jpg", "_0_answer.jpg")
        a, b = _decode(out, original), _decode(out, answer)
        assert a.shape == b.shape == (SIZE, SIZE, 3)
        assert np.abs(a - b).max() > 100  # something was drawn


def test_source_picks_one_generator(root, tmp_path):
    for source in ("s_counting", "synthetic:s_counting"):
        out = Store(str(tmp_path / source.replace(":", "_")))
        res = build_gallery(root, spec_for_asset("synthetic", None, n=5, source=source), out)
        assert res.candidates == {"synthetic: s_counting": 24} and res.cards == 5
    with pytest.raises(ValueError, match="no rendered synthetic spec"):
        build_gallery(root, spec_for_asset("synthetic", None, source="nope"),
                      Store(str(tmp_path / "x")))


def test_counting_markers_land_on_the_answer_points(root, tmp_path):
    out = Store(str(tmp_path / "count"))
    build_gallery(root, spec_for_asset("synthetic", None, n=6, source="s_counting"), out,
                  parquet=True)
    df = pl.read_parquet(out.path("samples.parquet"))
    checked = 0
    for conv, (original, answer) in zip(df["conversations"].to_list(), df["thumbs"].to_list(),
                                        strict=True):
        import json

        pts = points(json.loads(conv)[1]["value"])
        a, b = _decode(out, original), _decode(out, answer)
        for x, y in pts:
            px, py = min(int(x * SIZE), SIZE - 1), min(int(y * SIZE), SIZE - 1)
            assert np.abs(b[py, px] - MARKER).max() < 60, (answer, x, y, b[py, px])
            assert np.abs(a[py, px] - MARKER).max() >= 60  # not magenta before the overlay
            checked += 1
    assert checked >= 6


def test_clock_overlay_draws_the_hands_and_a_non_synthetic_sample_has_none():
    spec = SynthSpec(name="c", generator="clocks", n=3, seed=1, size=SIZE)
    s = make_sample(spec, 0)
    im = np.asarray(Image.open(io.BytesIO(overlay(s))).convert("RGB"), dtype=np.int32)
    p = s.metadata["synthetic"]["params"]
    import math

    for hand, colour in (("minute", (20, 60, 235)), ("hour", (230, 20, 20))):
        ang = math.radians(p["angles"][hand] + p["rotation"])
        d = p["radius"] * 0.4
        x, y = p["center"][0] + d * math.sin(ang), p["center"][1] - d * math.cos(ang)
        near = im[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].reshape(-1, 3)
        assert np.abs(near - colour).max(axis=1).min() < 40, hand
    s.metadata = {}
    assert overlay(s) is None
