"""`mm-assets sample` galleries of every view on the demo, opened in headless Chromium.

The demo is materialized once for the module (the real ``mm-assets demo`` in a temporary
folder with its own ``MM_ASSETS_ROOT`` and ``DAGSTER_HOME``). Per view the gallery is written
with the CLI and opened via ``file://``; the test checks, against figures computed here from
the decision tables and the raw shards (not from the browser's selection code): the number of
cards per section, every ``<img>`` decoded (``naturalWidth > 0``), each card's key and full
conversation text (for ``flagged``: each ``<mark>`` is exactly a flagged span of
``text_quality``, and the rates table is there), and saves a full-page screenshot
``gallery_{view}.png`` (artifacts folder: ``tests/ui/artifacts`` or ``$MM_ASSETS_ARTIFACTS``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mm_assets.cli import app
from mm_assets.core import layout
from mm_assets.core.shards import read_samples
from mm_assets.core.storage import Store

pytestmark = pytest.mark.slow  # the demo loads the language models

REPO = Path(__file__).resolve().parents[2]
MAX_MEMBERS = 8  # cards per duplicate group at most (README "Looking at the data")

# view name -> `mm-assets sample` arguments
VIEWS = {
    "all": ["--asset", "raw_shards", "--n", "24"],
    "unique": ["--asset", "semdedup", "--n", "24"],
    "removed": ["--asset", "curated", "--view", "removed", "--n", "4"],
    "cluster": ["--asset", "clusters", "--cluster", "0", "--space", "image", "--n", "12"],
    "decile": ["--asset", "ppl_deciles", "--decile", "0", "--n", "4"],
    "exact-groups": ["--asset", "exact_duplicates", "--n", "6"],
    "near-groups": ["--asset", "exact_duplicates", "--view", "near-groups", "--n", "6"],
    "flagged": ["--asset", "text_quality", "--n", "4"],
}

# per section: title, and per card its key, shown key, conversation text, image widths
COLLECT = """() => [...document.querySelectorAll('main section')].map(s => ({
  title: s.querySelector('h2').textContent,
  cards: [...s.querySelectorAll('article.card')].map(c => ({
    key: c.dataset.key, shown: c.querySelector('.key').textContent,
    text: c.querySelector('.conv') ? c.querySelector('.conv').textContent : '',
    body: c.textContent,
    marks: [...c.querySelectorAll('.turn mark')].map(m => m.textContent),
    imgs: [...c.querySelectorAll('.imgs img')].map(i => i.naturalWidth)}))}))"""


@pytest.fixture(scope="module")
def truth(demo_root) -> dict:
    """Samples of every raw shard (a full tar read) and the decision tables."""
    store = Store(str(demo_root))
    samples = {}
    for shard in layout.raw_shard_ids(store):
        with store.open_read(layout.raw_shard(shard)) as f:
            samples.update({s.key: s for s in read_samples(f)})
    decisions = pl.concat([store.read_parquet(rel)
                           for _, rel in layout.curated_decision_files(store)])
    # the corpus browser shows the corpus stages' quarantine (a pool's or documents' partitions
    # are no corpus shard)
    quarantine = pl.concat([store.read_parquet(rel) for _, rel in layout.quarantine_files(
        store, layout.CORPUS_QUARANTINE_STAGES)], how="diagonal_relaxed")
    return {"store": store, "samples": samples, "decisions": decisions,
            "quarantine": quarantine}


def _expected_sections(view: str, t: dict) -> dict[str, int] | None:
    """Cards per section title, from the tables (None: group views, checked per group)."""
    store, n = t["store"], int(VIEWS[view][VIEWS[view].index("--n") + 1])
    if view == "all":
        return {"random samples": min(n, len(t["samples"]))}
    if view == "unique":
        sem = store.read_parquet(layout.SEMDEDUP_SCORES).filter(
            pl.col("unique") & ~pl.col("duplicate"))
        return {"unique after SemDeDup": min(n, sem.height)}
    if view == "removed":
        removed = t["decisions"].filter(pl.col("status") == "removed")
        out = {f"removed: {r}": min(n, c) for r, c in
               removed.group_by("reason").len().iter_rows()}
        out.update({f"quarantined at {st}: {r}": min(n, c) for st, r, c in
                    t["quarantine"].group_by("stage", "reason").len().iter_rows()})
        return out
    if view == "cluster":
        c = store.read_parquet(layout.CLUSTER_ASSIGNMENTS).filter(
            (pl.col("space") == "image") & (pl.col("cluster") == 0)).height
        return {"image cluster 0": min(n, c)}
    if view == "flagged":
        flags = pl.concat([store.read_parquet(rel) for _, rel in _flag_tables(store)])
        per = flags.unique(["key", "flag"]).group_by("flag").len()
        return {f"text flag: {f}": min(n, c) for f, c in per.iter_rows()}
    if view == "decile":
        c = store.read_parquet(layout.PPL_DECILES_TABLE).filter(pl.col("decile") == 0).height
        return {f"decile 0 · {side} perplexity": min(n, c) for side in ("lowest", "highest")}
    return None


def _check_groups(view: str, sections: list[dict], t: dict) -> None:
    """Each section is one whole group (up to MAX_MEMBERS), as many groups as asked/available."""
    store = t["store"]
    n = int(VIEWS[view][VIEWS[view].index("--n") + 1])
    if view == "exact-groups":
        groups = store.read_parquet(layout.EXACT_GROUPS).select("key", g="group_id")
    else:
        groups = store.read_parquet(layout.NEAR_GROUPS).select("key", g="near_group")
    members = groups.group_by("g").agg("key")
    by_group = dict(zip(members["g"], members["key"].to_list(), strict=True))
    group_of = dict(zip(groups["key"], groups["g"], strict=True))
    assert len(sections) == min(n, len(by_group)) > 0
    for s in sections:
        keys = [c["key"] for c in s["cards"]]
        [g] = {group_of[k] for k in keys}
        assert len(keys) == min(MAX_MEMBERS, len(by_group[g])) and len(set(keys)) == len(keys)
        assert set(keys) <= set(by_group[g])


def _flag_tables(store: Store) -> list[tuple[str, str]]:
    return [(s, layout.text_quality(s)) for s in layout.raw_shard_ids(store)
            if store.exists(layout.text_quality(s))]


def _check_marks(sections: list[dict], t: dict) -> None:
    """Each flagged card marks exactly its flags' spans (turn text[start:end]), in order."""
    store = t["store"]
    flags = pl.concat([store.read_parquet(rel) for _, rel in _flag_tables(store)])
    for s in sections:
        for c in s["cards"]:
            rows = flags.filter((pl.col("key") == c["key"]) & (pl.col("turn") >= 0)
                                & (pl.col("end") > pl.col("start"))).sort("turn", "start")
            conv = t["samples"][c["key"]].conversations
            want = [_norm(conv[r["turn"]]["value"][r["start"]:r["end"]])
                    for r in rows.iter_rows(named=True)]
            assert c["marks"] == want and want, (c["key"], c["marks"], want)


def _norm(text: str) -> str:
    """Text as the HTML parser gives it back (CR and CRLF become LF, NUL becomes U+FFFD)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")


def _check_cards(sections: list[dict], t: dict) -> int:
    n_cards = 0
    q_keys = set(t["quarantine"]["key"])
    for s in sections:
        for c in s["cards"]:
            n_cards += 1
            assert c["shown"] == c["key"]
            sample = t["samples"].get(c["key"])
            if sample is None:  # quarantined before any shard: its error instead of text
                assert c["key"] in q_keys and "not in any shard" in c["body"], c
                continue
            for turn in sample.conversations:
                assert _norm(turn["value"]) in c["text"], (c["key"], turn["value"])
            assert len(c["imgs"]) == len(sample.images), c["key"]
            assert all(w > 0 for w in c["imgs"]), (c["key"], c["imgs"])
    return n_cards


def write_gallery(root: Path, out: Path, args: list[str]) -> str:
    res = CliRunner().invoke(app, ["sample", *args, "--out", str(out), "--root", str(root)])
    assert res.exit_code == 0, res.output
    return res.output


def open_gallery(page, index: Path, shot: Path) -> list[dict]:
    """Open ``index`` via file://, assert every <img> on the page decoded, screenshot it."""
    page.goto(index.as_uri(), wait_until="load")
    widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth)")
    assert all(w and w > 0 for w in widths), widths
    page.screenshot(path=str(shot), full_page=True)
    return page.evaluate(COLLECT)


@pytest.mark.parametrize("view", list(VIEWS))
def test_gallery_in_chromium(view, demo_root, truth, page, artifacts, tmp_path):
    write_gallery(demo_root, tmp_path / view, VIEWS[view])
    sections = open_gallery(page, tmp_path / view / "index.html",
                            artifacts / f"gallery_{view}.png")
    expected = _expected_sections(view, truth)
    if expected is None:
        _check_groups(view, sections, truth)
    else:
        got = {s["title"]: len(s["cards"]) for s in sections}
        assert got == expected
    n_cards = _check_cards(sections, truth)
    if view == "flagged":
        _check_marks(sections, truth)
        assert page.locator(".rates table tr").count() >= 3  # header, a source, all sources
    header = page.text_content("header .spec")
    assert f"{n_cards} sample{'' if n_cards == 1 else 's'} in {len(sections)} section" in header
