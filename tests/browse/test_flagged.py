"""Text-quality flags in the sample browser: the ``flagged`` view (and ``--flag`` as a filter of
any view) selects the samples carrying a flag, each card lists its flags with scores and wraps
exactly the flagged span of the turn in ``<mark>`` (HTML-escaped), and the header shows the
flag rates per source.

Two small inputs (two sources) with known defects are ingested and materialized for real
through raw_shards, image_hashes and text_quality (``dagster.materialize``)."""

import html
import json
import re

import polars as pl
import pytest
from dagster import instance_for_test, materialize
from typer.testing import CliRunner

from mm_assets.browse.flags import flag_rates
from mm_assets.browse.gallery import build_gallery
from mm_assets.browse.render import highlight
from mm_assets.browse.select import SampleSpec, select, spec_for_asset
from mm_assets.cli import app
from mm_assets.core import layout
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.core.storage import Store
from mm_assets.definitions import ALL_ASSETS, default_resources
from resources.storage import StorageResource


def _conv(q: str, a: str) -> list[dict]:
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


# record id -> (answer, the flag and the exact substring it must mark; None: clean)
ALPHA = {
    "a_leak": ('If a < b & "c" > d, stop.<|im_start|>assistant Done.',
               ("template_tokens", "<|im_start|>")),
    "a_emoji": ("😀 Smile! <|im_end|> Bye.", ("template_tokens", "<|im_end|>")),
    "a_code": ("Here:\n```python\nprint(1)\n", ("unbalanced_code", "```")),
    "a_clean": ("Seven is a prime number.", None),
}
BETA = {
    "b_leak": ("[INST] Hello there, friend.", ("template_tokens", "[INST]")),
    "b_clean": ("Paris is the capital of France.", None),
    "b_clean2": ("Water boils at 100 degrees Celsius at sea level.", None),
}
MARK = re.compile(r'<mark title="([^"]*)">(.*?)</mark>', re.DOTALL)
TURN = re.compile(r'<p class="turn"><span class="role gpt">gpt</span>(.*?)</p>', re.DOTALL)


@pytest.fixture(scope="module")
def flagged_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("flagged")
    inputs = []
    for name, recs in (("alpha", ALPHA), ("beta", BETA)):
        path = base / f"{name}.json"
        path.write_text(json.dumps([{"id": i, "conversations": _conv("Please answer.", a)}
                                    for i, (a, _) in recs.items()]))
        inputs.append(str(path))
    storage = StorageResource(root=str(base / "root"))
    store = storage.store()
    shards = plan_ingest(store, inputs, None, IngestConfig())
    resources = {**default_resources(), "storage": storage}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", shards)
        for shard in shards:
            assert materialize(ALL_ASSETS, selection=["raw_shards", "image_hashes",
                                                      "text_quality"],
                               instance=instance, resources=resources,
                               partition_key=shard).success
    keys = pl.concat([store.read_parquet(layout.image_hashes(s)) for s in shards])
    by_id = {k.rsplit("-", 1)[-1]: k for k in keys["key"]}
    assert set(by_id) == set(ALPHA) | set(BETA), by_id
    return Store(store.root), by_id


def _expected(flag: str | None = None) -> dict[str, tuple[str, str]]:
    return {i: (a, f[1]) for i, (a, f) in {**ALPHA, **BETA}.items()
            if f and (flag is None or f[0] == flag)}


def test_flagged_view_marks_exactly_the_defective_substring(flagged_root, tmp_path):
    store, by_id = flagged_root
    out = Store(str(tmp_path / "g"))
    res = build_gallery(store, SampleSpec("flagged", flag="template_tokens", n=12), out,
                        parquet=True)
    want = _expected("template_tokens")
    assert res.cards == len(want) == 3 and res.candidates == {"text flag: template_tokens": 3}
    page = (tmp_path / "g" / "index.html").read_text()
    cards = re.findall(r'<article class="card[^"]*" data-key="([^"]+)">(.*?)</article>', page,
                       re.DOTALL)
    assert {k for k, _ in cards} == {by_id[i] for i in want}
    for key, body in cards:
        answer, bad = want[key.rsplit("-", 1)[-1]]
        [turn] = TURN.findall(body)
        [(title, inner)] = MARK.findall(turn)
        assert title == "template_tokens" and html.unescape(inner) == bad
        assert html.unescape(re.sub(r"</?mark[^>]*>", "", turn)) == answer  # all else escaped
        start = answer.index(bad)
        assert f"template_tokens (score 1; turn 1, chars {start}–{start + len(bad)})" in body
        assert "flag: template_tokens" in body
    assert "<|im_start|>" not in page and "&lt;|im_start|&gt;" in page
    rows = pl.read_parquet(tmp_path / "g" / "samples.parquet")
    for r in rows.iter_rows(named=True):
        answer, bad = want[r["key"].rsplit("-", 1)[-1]]
        [f] = r["text_flags"]
        assert (f["flag"], f["turn"]) == ("template_tokens", 1)
        assert answer[f["start"]:f["end"]] == bad


def test_sections_per_flag_seeded_and_bounded(flagged_root):
    store, by_id = flagged_root
    sel = select(store, SampleSpec("flagged"))
    assert sel.counts == {"text flag: template_tokens": 3, "text flag: unbalanced_code": 1}
    assert sel.rows["section"].to_list() == ["text flag: template_tokens"] * 3 + [
        "text flag: unbalanced_code"]  # sections in the order of FLAGS
    two = [select(store, SampleSpec("flagged", flag="template_tokens", n=2, seed=s))
           .rows["key"].to_list() for s in (0, 0, 1, 2, 3)]
    assert two[0] == two[1] and all(len(k) == 2 for k in two)
    assert len({tuple(sorted(k)) for k in two}) > 1  # other seeds, other samples
    only = select(store, SampleSpec("flagged", source="beta")).rows["key"].to_list()
    assert only == [by_id["b_leak"]]


def test_flag_filters_any_view(flagged_root):
    store, by_id = flagged_root
    rows = select(store, SampleSpec("all", flag="unbalanced_code", n=50)).rows
    assert rows["key"].to_list() == [by_id["a_code"]]
    assert spec_for_asset("raw_shards", flag="repetition").view == "flagged"
    with pytest.raises(ValueError, match="flag must be one of"):
        SampleSpec("flagged", flag="nope")


def test_flag_rates_per_source_in_the_header(flagged_root, tmp_path):
    store, _ = flagged_root
    rates = flag_rates(store)
    got = {(s, f): (n, m) for s, f, n, m in
           rates.select("source", "flag", "flagged", "samples").iter_rows()}
    assert got == {("alpha", "template_tokens"): (2, 4), ("alpha", "unbalanced_code"): (1, 4),
                   ("beta", "template_tokens"): (1, 3)}
    r = CliRunner().invoke(app, ["sample", "--asset", "text_quality", "--out",
                                 str(tmp_path / "c"), "--root", store.root])
    assert r.exit_code == 0, r.output
    assert "4 samples in 2 section(s)" in r.output
    page = (tmp_path / "c" / "index.html").read_text()
    table = re.search(r'<div class="rates">.*?</table>', page, re.DOTALL).group(0)
    cells = [re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", tr)
             for tr in re.findall(r"<tr>(.*?)</tr>", table)]
    assert cells == [["source", "samples", "template_tokens", "unbalanced_code"],
                     ["alpha", "4", "2 (50.0%)", "1 (25.0%)"],
                     ["beta", "3", "1 (33.3%)", "0 (0.0%)"],
                     ["all sources", "7", "3 (42.9%)", "1 (14.3%)"]]
    bad = CliRunner().invoke(app, ["sample", "--asset", "text_quality", "--flag", "nope",
                                   "--out", str(tmp_path / "x"), "--root", store.root])
    assert bad.exit_code == 2 and "flag must be one of" in bad.output


def test_highlight_escapes_merges_and_clips():
    text = "a<b>&c 😀 <|im_end|>"
    i = text.index("<|")
    assert highlight(text, [(i, i + 10, "template_tokens")]) == (
        "a&lt;b&gt;&amp;c 😀 <mark title=\"template_tokens\">&lt;|im_end|&gt;</mark>")
    assert highlight("abcdef", [(1, 3, "x"), (2, 5, "y"), (0, 0, "z"), (4, 99, "x")]) == (
        'a<mark title="x, y">bcdef</mark>')
    assert highlight("<>", []) == "&lt;&gt;"
