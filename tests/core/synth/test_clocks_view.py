"""Clocks seen in perspective and partly occluded: the checker agrees with every sample,
re-derives the warp, catches a warp or an occluder that is not what the parameters say; a
seed gives the same bytes; the gallery overlay draws the hands through the warp."""

from __future__ import annotations

import copy
import dataclasses
import io
import math

import numpy as np
import pytest
from PIL import Image

from mm_assets.browse.overlay import HANDS, overlay
from mm_assets.core.storage import Store
from mm_assets.core.synth import clocks, clocks_view
from mm_assets.core.synth.clocks_check import check
from mm_assets.core.synth.draw import png_bytes
from mm_assets.core.synth.generate import check_sample, make_sample
from mm_assets.core.synth.spec import SpecError, SynthSpec, load_spec, parse_spec

N, SIZE = 160, 128
OPTS = {"perspective": 0.7, "tilt": [15, 40], "focal": [1.2, 3.0], "occlusion": 0.6,
        "occluder_size": [0.15, 0.35]}
SPEC = SynthSpec(name="v", generator="clocks", n=N, seed=11, size=SIZE, options=OPTS)


@pytest.fixture(scope="module")
def samples():
    return [make_sample(SPEC, i) for i in range(N)]


def _p(s):
    return s.metadata["synthetic"]["params"]


def test_every_sample_checks_and_the_options_are_used(samples):
    assert [check_sample(s) for s in samples] == [None] * N
    views = [_p(s)["view"] for s in samples if _p(s)["view"]]
    occluders = [_p(s)["occluder"] for s in samples if _p(s)["occluder"]]
    assert 0.55 * N < len(views) < 0.85 * N and 0.4 * N < len(occluders) < 0.8 * N
    assert all(15 <= v["tilt"] <= 40 and 1.2 * SIZE <= v["focal"] <= 3.0 * SIZE
               and 0 < v["fit"] <= 1 for v in views)
    assert any(v["fit"] < 1 for v in views)  # some faces had to be scaled to stay inside
    for s in samples:  # the hour and minute tips are never both under the occluder
        p, o = _p(s), _p(s)["occluder"]
        if o:
            tips = [pts[-1] for pts in clocks.hand_points(p).values()]
            assert sum(clocks_view.covers(o, *t, 0) for t in tips) <= 1


def test_homography_is_the_pinhole_view_of_the_plane():
    h = clocks_view.homography((64.0, 64.0), 0.0, 0.0, 200.0)
    assert np.allclose(h, np.eye(3))
    h = clocks_view.homography((64.0, 64.0), 30.0, 0.0, 200.0)  # about the x axis
    (x0, y0), (x1, y1) = clocks_view.project(h, [(64, 34), (64, 94)])
    # point at (0, ±30) turned by 30°: Y = ±30 cos30, Z = 200 ± 30 sin30 (pinhole u = f Y / Z)
    assert (x0, x1) == (64, 64)
    assert y1 - 64 == pytest.approx(200 * 30 * math.cos(math.radians(30))
                                    / (200 + 30 * math.sin(math.radians(30))))
    assert 64 - y0 == pytest.approx(200 * 30 * math.cos(math.radians(30))
                                    / (200 - 30 * math.sin(math.radians(30))))


def test_the_checker_catches_a_wrong_warp_or_occluder(samples):
    warped = [s for s in samples if _p(s)["view"] and _p(s)["view"]["tilt"] > 30]
    assert len(warped) >= 5
    caught = 0
    for s in warped:
        p = _p(s)
        flat = png_bytes(clocks.render({**p, "view": None}, SIZE))  # the warp not applied
        q, a = (t["value"] for t in s.conversations)
        caught += check(p, q.split("\n", 1)[1], a, flat, SIZE) is not None
        tilted = copy.deepcopy(p)
        tilted["view"]["tilt"] += 5
        assert check(tilted, q.split("\n", 1)[1], a, s.images[0], SIZE) == "warp_mismatch"
    assert caught == len(warped)  # the background shows where the warped face is not
    s = next(s for s in samples if _p(s)["occluder"])
    q, a = (t["value"] for t in s.conversations)
    q = q.split("\n", 1)[1]
    p = copy.deepcopy(_p(s))
    p["occluder"]["rgb"] = [255 - v for v in p["occluder"]["rgb"]]
    assert check(p, q, a, s.images[0], SIZE) == "occluder_not_drawn"
    p = copy.deepcopy(_p(s))
    p["occluder"].update(center=p["center"], r=p["radius"])  # the whole face: both tips
    assert check(p, q, a, s.images[0], SIZE) == "occluder_covers_both_tips"


def test_same_seed_same_bytes_and_older_specs_unchanged(samples):
    again = [make_sample(SPEC, i) for i in (0, 7, 99)]
    assert [s.images for s in again] == [samples[i].images for i in (0, 7, 99)]
    plain = SynthSpec(name="v", generator="clocks", n=3, seed=11, size=SIZE)
    p = _p(make_sample(plain, 0))
    assert "view" not in p and "occluder" not in p  # no view options: v1 parameters
    v2 = load_spec(Store("/nonexistent-root-for-shipped-specs"), "clocks_v2")
    small = dataclasses.replace(v2, n=20, size=SIZE)
    assert all(check_sample(make_sample(small, i)) is None for i in range(20))


def test_overlay_draws_the_hands_through_the_warp(samples):
    s = next(s for s in samples if _p(s)["view"] and _p(s)["view"]["tilt"] > 30)
    p = _p(s)
    px = np.asarray(Image.open(io.BytesIO(overlay(s))).convert("RGB")).astype(int)
    h = np.reshape(p["view"]["homography"], (3, 3))
    ang = math.radians(p["angles"]["minute"] + p["rotation"])
    mid = (p["center"][0] + 0.5 * p["radius"] * math.sin(ang),
           p["center"][1] - 0.5 * p["radius"] * math.cos(ang))
    x, y = clocks_view.project(h, [mid])[0]
    near = px[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].reshape(-1, 3)
    assert (np.abs(near - HANDS["minute"]).sum(axis=1) < 30).any()


@pytest.mark.parametrize("opts, msg", [({"tilt": [40, 10]}, "tilt"),
                                       ({"focal": 2}, "focal"),
                                       ({"occlusion": 1.5}, "occlusion"),
                                       ({"occluder_size": [0.1, 0.9]}, "occluder_size")])
def test_bad_view_options_are_refused(opts, msg):
    body = ", ".join(f"{k}: {v}" for k, v in opts.items())
    with pytest.raises(SpecError, match=msg):
        parse_spec(f"name: x\ngenerator: clocks\noptions: {{{body}}}\n")
