"""Charts generator: the checker agrees with every stored answer, answers follow from the stored
table by an independent re-derivation, a seed gives the same bytes, no two images repeat,
answers are spread (kinds, value deciles, max/min positions, trend directions), and the
checker catches tampering."""

from __future__ import annotations

import copy
import io
from collections import Counter

import numpy as np
import pytest
import xxhash
from PIL import Image
from scipy.stats import binomtest, chisquare

from mm_assets.core import layout
from mm_assets.core.shards import read_samples
from mm_assets.core.storage import Store
from mm_assets.core.synth import charts
from mm_assets.core.synth import generate as gen
from mm_assets.core.synth.generate import build_spec, check_sample, make_sample
from mm_assets.core.synth.spec import SpecError, SynthSpec, load_spec, parse_spec

N = 300
SIZE = 160


def _read(store: Store, paths: list[str]):
    out = []
    for p in paths:
        with store.open_read(p) as f:
            out.extend(read_samples(f))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("charts")))
    spec = SynthSpec(name="t_charts", generator="charts", n=N, seed=11, size=SIZE,
                     shard_size=100)
    counts, stats, paths, quarantine = build_spec(store, spec)
    return {"store": store, "spec": spec, "counts": counts, "stats": stats, "paths": paths,
            "quarantine": quarantine, "samples": _read(store, paths)}


def test_checker_agrees_with_every_stored_answer(built):
    assert built["quarantine"] == [] and built["counts"].reconciles()
    assert built["counts"].n_in == built["counts"].n_out == N == len(built["samples"])
    assert len(built["paths"]) == 3
    assert {s.key: check_sample(s) for s in built["samples"]} == \
        {s.key: None for s in built["samples"]}
    stats = built["store"].read_json(layout.synthetic_stats("t_charts"))
    assert stats["n_out"] == N and stats["answer"] == "bin"
    for s in built["samples"]:
        im = Image.open(io.BytesIO(s.images[0]))
        assert im.size == (SIZE, SIZE) and im.format == "PNG"


def _expected(p: dict) -> tuple[str, float]:
    """The answer and tolerance re-derived from the table alone (not via charts.qa)."""
    q, prec = p["question"], p["precision"]
    vals = np.array(p["units"], dtype=np.int64)
    kind, unit = q["kind"], 10 ** prec
    pct = "%" if p["type"] == "pie" else ""
    read_tol = 0 if (p["style"]["value_labels"] and p["type"] != "scatter") else (
        3 * unit if pct else int(np.ceil(0.03 * p["scale"] * unit)))

    def num(u: int) -> str:
        return (f"{u / unit:.{prec}f}") + pct

    if kind == "read":
        return num(int(vals[q["items"][0]])), read_tol / unit
    if kind == "difference":
        a, b = q["items"]
        return num(int(abs(vals[a] - vals[b]))), 2 * read_tol / unit
    if kind == "sum":
        return num(int(vals[q["items"]].sum())), len(q["items"]) * read_tol / unit
    if kind in ("max", "min"):
        i = int(vals.argmax() if kind == "max" else vals.argmin())
        assert (vals == vals[i]).sum() == 1
        return p["labels"][i], 0
    x = np.array(p["x_units"], float) if p["type"] == "scatter" else np.arange(len(vals))
    slope = np.polyfit(x, vals.astype(float), 1)[0]
    assert abs(np.corrcoef(x, vals)[0, 1]) >= 0.7
    return ("increasing" if slope > 0 else "decreasing"), 0


def test_every_answer_is_a_function_of_the_stored_table(built):
    for s in built["samples"]:
        m = s.metadata["synthetic"]
        answer, tol = _expected(m["params"])
        assert s.conversations[1]["value"] == answer, s.key
        assert m["answer"]["tolerance"] == pytest.approx(tol), s.key
        if m["answer"]["type"] == "number":
            assert m["answer"]["value"] == pytest.approx(float(answer.rstrip("%")))
            assert m["answer"]["precision"] == m["params"]["precision"]


def test_same_seed_same_bytes_and_any_sample_alone(built, tmp_path):
    spec = SynthSpec(name="t_charts", generator="charts", n=60, seed=11, size=SIZE,
                     shard_size=25)
    one, two = Store(str(tmp_path / "one")), Store(str(tmp_path / "two"))
    p1, p2 = build_spec(one, spec)[2], build_spec(two, spec)[2]
    assert p1 == p2 and all(one.read_bytes(p) == two.read_bytes(p) for p in p1)
    again = _read(one, p1)
    assert [(s.images, s.conversations, s.metadata) for s in again] == \
        [(s.images, s.conversations, s.metadata) for s in built["samples"][:60]]
    for i in (217, 3, 217):  # the reused figure keeps no state between samples
        assert make_sample(built["spec"], i).images == built["samples"][i].images
    other = SynthSpec(name="t_charts", generator="charts", n=5, seed=12, size=SIZE)
    assert make_sample(other, 0).images != built["samples"][0].images


def test_two_processes_give_the_same_samples(built):
    two = list(gen.generate(built["spec"], 0, 80, workers=2))
    assert [s.images for s in two] == [s.images for s in built["samples"][:80]]


def test_no_exact_duplicate_images(built):
    digests = {xxhash.xxh3_128_hexdigest(s.images[0]) for s in built["samples"]}
    assert len(digests) == N


def test_answers_are_spread(built):
    answers = [s.metadata["synthetic"]["answer"] for s in built["samples"]]
    types = Counter(a["chart"] for a in answers)
    assert set(types) == set(charts.TYPES) and min(types.values()) > N / 4 * 0.6
    for t in charts.TYPES:
        kinds = Counter(a["kind"] for a in answers if a["chart"] == t)
        assert set(kinds) == set(charts.KINDS[t]), t
    groups = Counter(a["kind"] for a in answers)
    assert groups["read"] > 0 and groups["max"] + groups["min"] > 0 and \
        groups["difference"] + groups["sum"] + groups["trend"] > 0
    deciles = Counter(a["bin"] for a in answers if a["bin"].startswith("value_decile"))
    assert len(deciles) == 10
    assert chisquare([deciles[f"value_decile:{d}"] for d in range(10)]).pvalue > 0.01
    pos = Counter(a["index"] for a in answers if a["kind"] in ("max", "min"))
    assert chisquare([pos[i] for i in range(3)]).pvalue > 0.01  # every chart has >= 3 items
    trend = Counter(a["bin"] for a in answers if a["kind"] == "trend")
    assert binomtest(trend["trend:up"], sum(trend.values())).pvalue > 0.01
    tol = Counter(a["tolerance"] == 0 for a in answers if a["type"] == "number")
    assert tol[True] > 0 and tol[False] > 0  # exact (printed values) and read off the axis
    stats = built["stats"]
    assert stats["uniformity"]["bins"] == 10 and stats["uniformity"]["p_value"] > 0.01
    assert sum(stats["answer_distribution"].values()) == N
    assert set(stats["question_kinds"]) == {"read", "max", "min", "difference", "sum", "trend"}


def _first(built, pred):
    return copy.deepcopy(next(s for s in built["samples"] if pred(s.metadata["synthetic"])))


def test_the_checker_catches_wrong_answers(built):
    s = _first(built, lambda m: m["answer"]["kind"] == "read")
    s.conversations[1]["value"] += "1"
    assert check_sample(s) == "answer_mismatch"
    s = _first(built, lambda m: m["answer"]["kind"] == "read" and m["params"]["type"] != "pie")
    i = s.metadata["synthetic"]["params"]["question"]["items"][0]
    s.metadata["synthetic"]["params"]["units"][i] += 1  # the table no longer gives the answer
    assert check_sample(s) == "answer_mismatch"
    s = _first(built, lambda m: m["answer"]["type"] == "number")
    s.metadata["synthetic"]["answer"]["tolerance"] += 1
    assert check_sample(s) == "structured_answer_mismatch"
    s = _first(built, lambda m: m["answer"]["kind"] == "max" and m["params"]["type"] == "bar")
    p = s.metadata["synthetic"]["params"]
    top = int(np.argmax(p["units"]))
    p["units"][top] = sorted(p["units"])[-2]  # a tie: the answer is not determined
    assert check_sample(s) == "extreme_not_distinct"
    s = _first(built, lambda m: m["params"]["type"] == "line")
    p = s.metadata["synthetic"]["params"]
    p["style"]["colors"] = [next(c for c in range(len(charts.PALETTE))
                                 if c not in p["style"]["colors"])]
    assert check_sample(s) == "series_colour_not_drawn"
    s = _first(built, lambda m: m["params"]["type"] == "pie")
    s.metadata["synthetic"]["params"]["units"][0] += 1
    assert check_sample(s) == "pie_not_100_percent"


def test_charts_spec_ships_and_validates(tmp_path):
    assert load_spec(Store(str(tmp_path)), "charts_v1").n == 5000
    o = parse_spec("name: x\ngenerator: charts\noptions: {types: [pie, bar]}\n").opts()
    assert o.types == ("bar", "pie")
    for text, msg in [("name: x\ngenerator: charts\noptions: {types: [radar]}\n", "types"),
                      ("name: x\ngenerator: charts\noptions: {max_items: 20}\n", "max_items"),
                      ("name: x\ngenerator: charts\noptions: {value_labels: 2}\n",
                       "value_labels"),
                      ("name: x\ngenerator: charts\noptions: {bars: 3}\n", "unknown")]:
        with pytest.raises(SpecError, match=msg):
            parse_spec(text)
