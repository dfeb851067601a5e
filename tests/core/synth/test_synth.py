"""Synthetic generators: the checker agrees with every stored answer, answers are uniform
(chi-square), no two images are identical, a seed gives the same bytes, any sample can be
re-made alone, and the checker catches a wrong answer."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import xxhash
from scipy.stats import chisquare

from mm_assets.core import layout
from mm_assets.core.shards import read_samples
from mm_assets.core.storage import Store
from mm_assets.core.synth import generate as gen
from mm_assets.core.synth.generate import build_spec, check_sample, make_sample
from mm_assets.core.synth.spec import SpecError, SynthSpec, load_spec, parse_spec

N = 600
SIZE = 128


def _read(store: Store, paths: list[str]):
    out = []
    for p in paths:
        with store.open_read(p) as f:
            out.extend(read_samples(f))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """600 clocks and 600 counting scenes, 128 px, written as shards and read back."""
    store = Store(str(tmp_path_factory.mktemp("synth")))
    out = {}
    for g in ("clocks", "counting"):
        spec = SynthSpec(name=f"t_{g}", generator=g, n=N, seed=7, size=SIZE, shard_size=250)
        counts, stats, paths, quarantine = build_spec(store, spec)
        out[g] = {"spec": spec, "counts": counts, "stats": stats, "paths": paths,
                  "quarantine": quarantine, "samples": _read(store, paths)}
    return store, out


@pytest.mark.parametrize("g", ["clocks", "counting"])
def test_checker_agrees_with_every_stored_answer(built, g):
    store, out = built
    r = out[g]
    assert r["quarantine"] == [] and r["counts"].reconciles()
    assert r["counts"].n_in == r["counts"].n_out == N == len(r["samples"])
    assert len(r["paths"]) == 3  # 250 + 250 + 100
    bad = {s.key: check_sample(s) for s in r["samples"] if check_sample(s) is not None}
    assert not bad
    assert store.read_json(layout.synthetic_stats(f"t_{g}"))["n_out"] == N


def test_answers_are_uniform(built):
    _, out = built
    hours = Counter(s.metadata["synthetic"]["answer"]["hour"] for s in out["clocks"]["samples"])
    counts = Counter(s.metadata["synthetic"]["answer"]["count"]
                     for s in out["counting"]["samples"])
    assert sorted(hours) == list(range(1, 13)) and sorted(counts) == list(range(1, 31))
    assert chisquare([hours[h] for h in range(1, 13)]).pvalue > 0.01
    assert chisquare([counts[c] for c in range(1, 31)]).pvalue > 0.01
    minutes = Counter(s.metadata["synthetic"]["answer"]["minute"] // 5
                      for s in out["clocks"]["samples"])
    assert chisquare([minutes[m] for m in range(12)]).pvalue > 0.01
    assert out["clocks"]["stats"]["uniformity"]["p_value"] > 0.01
    kinds = out["clocks"]["stats"]["question_kinds"]
    assert set(kinds) == {"time", "time_hhmm", "time24", "time_hms", "minutes_until",
                          "minutes_past"}


def test_no_exact_duplicate_images(built):
    _, out = built
    digests = [xxhash.xxh3_128_hexdigest(s.images[0])
               for g in out for s in out[g]["samples"]]
    assert len(set(digests)) == len(digests) == 2 * N


def test_same_seed_same_bytes_and_any_sample_alone(built, tmp_path):
    _, out = built
    for g in ("clocks", "counting"):
        spec = SynthSpec(name=f"t_{g}", generator=g, n=120, seed=7, size=SIZE, shard_size=250)
        other = Store(str(tmp_path / g))
        _, _, paths, _ = build_spec(other, spec)
        first = out[g]["samples"][:120]
        again = _read(other, paths)
        assert [(s.key, s.conversations, s.images, s.metadata) for s in again] == \
            [(s.key, s.conversations, s.images, s.metadata) for s in first]
        alone = make_sample(out[g]["spec"], 417)  # re-made on its own
        stored = out[g]["samples"][417]
        assert alone.images == stored.images and alone.conversations == stored.conversations
    spec = SynthSpec(name="b", generator="counting", n=60, seed=3, size=SIZE, shard_size=25)
    one, two = Store(str(tmp_path / "one")), Store(str(tmp_path / "two"))
    p1, p2 = build_spec(one, spec)[2], build_spec(two, spec)[2]
    assert p1 == p2 and len(p1) == 3
    assert all(one.read_bytes(p) == two.read_bytes(p) for p in p1)  # byte-identical shards
    a = SynthSpec(name="t_clocks", generator="clocks", n=5, seed=7, size=SIZE)
    b = SynthSpec(name="t_clocks", generator="clocks", n=5, seed=8, size=SIZE)
    assert make_sample(a, 0).images != make_sample(b, 0).images


def test_two_processes_give_the_same_samples(built):
    _, out = built
    spec = out["counting"]["spec"]
    two = list(gen.generate(spec, 0, 140, workers=2))
    assert [s.images for s in two] == [s.images for s in out["counting"]["samples"][:140]]


def test_counting_answer_points_before_the_count(built):
    _, out = built
    for s in out["counting"]["samples"][:50]:
        answer = s.conversations[1]["value"]
        n = s.metadata["synthetic"]["answer"]["count"]
        assert answer.count("<point ") == n
        assert answer.rindex("<point ") < answer.index("There ")
        assert answer.endswith(".") and f" {n} " in answer.splitlines()[-1]


def test_the_checker_catches_wrong_answers(built):
    _, out = built
    clock = out["clocks"]["samples"][0]
    wrong = copy.deepcopy(clock)
    wrong.conversations[1]["value"] = "13:61"
    assert check_sample(wrong) == "answer_mismatch"
    moved = copy.deepcopy(clock)  # minute hand not where the time says
    moved.metadata["synthetic"]["params"]["angles"]["minute"] += 90
    assert check_sample(moved) == "hands_disagree"
    other = copy.deepcopy(clock)  # parameters of another sample, this image
    other.metadata["synthetic"]["params"] = out["clocks"]["samples"][5].metadata[
        "synthetic"]["params"]
    other.conversations = out["clocks"]["samples"][5].conversations
    assert check_sample(other) is not None  # the pixels under the hands disagree

    scene = next(s for s in out["counting"]["samples"]
                 if s.metadata["synthetic"]["answer"]["count"] > 3)
    off = copy.deepcopy(scene)  # one point moved off its object
    p = off.metadata["synthetic"]["answer"]["points"][0]
    off.conversations[1]["value"] = off.conversations[1]["value"].replace(
        f'<point x="{p[0]:.3f}"', f'<point x="{(p[0] + 0.5) % 1:.3f}"', 1)
    assert check_sample(off) == "answer_mismatch"
    fewer = copy.deepcopy(scene)  # a target drawn but not in the parameters
    objs = fewer.metadata["synthetic"]["params"]["objects"]
    t = fewer.metadata["synthetic"]["params"]["target"]
    objs.remove(next(o for o in objs if (o["shape"], o["color"]) == (t["shape"], t["color"])))
    assert check_sample(fewer) == "count_mismatch"


def test_failures_and_repeated_images_are_quarantined(tmp_path, monkeypatch):
    spec = SynthSpec(name="q", generator="clocks", n=12, size=SIZE, shard_size=100)
    real = gen.make_sample

    def flaky(spec, i):
        s = real(spec, 0 if i == 5 else i)  # sample 5 repeats sample 0's image
        if i == 7:
            s.conversations[1]["value"] += "!"
        return s

    monkeypatch.setattr(gen, "make_sample", flaky)
    counts, stats, _, q = build_spec(Store(str(tmp_path)), spec)
    assert counts.n_in == 12 and counts.n_out == 10 and counts.reconciles()
    assert {x.reason for x in q} == {"duplicate_image", "answer_mismatch"}
    assert stats["quarantined"] == {"answer_mismatch": 1, "duplicate_image": 1}


def test_specs_validate_and_ship(tmp_path):
    store = Store(str(tmp_path))
    assert load_spec(store, "clocks_v1").n == 10000
    assert load_spec(store, "counting_v1").opts().max_count == 30
    store.write_bytes(layout.synthetic_spec("mine.yaml"),
                      b"name: mine\ngenerator: counting\nn: 10\noptions: {max_count: 5}\n")
    assert load_spec(store, "mine").opts().max_count == 5
    for text, msg in [("name: x\ngenerator: dice\n", "generator"),
                      ("name: x\ngenerator: clocks\ncolour: red\n", "unknown field"),
                      ("name: x\ngenerator: clocks\noptions: {hands: 3}\n", "options"),
                      ("name: x\ngenerator: counting\noptions: {min_count: 5, max_count: 2}\n",
                       "min_count"),
                      ("name: x\ngenerator: clocks\nsize: 10\n", "size")]:
        with pytest.raises(SpecError, match=msg):
            parse_spec(text)
    with pytest.raises(SpecError, match="unknown synthetic spec"):
        load_spec(store, "nope")
