"""`mm-assets sample --asset mined --recipe R`: per cluster the corpus contact sheet beside the
mined images, written with the CLI on a small mined root and opened in headless Chromium.

Checked against figures computed here from the cluster assignments and the mined selection
(not from the browser's code): one section per cluster that wanted images, every corpus image
of a section from that cluster, every mined image one the recipe took for that cluster, every
``<img>`` decoded; a full-page screenshot ``gallery_mined.png`` goes to the artifacts folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from mm_assets.cli import app
from mm_assets.core import layout, schemas
from mm_assets.core.mine.output import write_mined
from mm_assets.core.mine.recipe import parse_mining_recipe
from mm_assets.core.mine.select import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "mine"))
from chromium import artifacts_dir, chromium_page
from mining_world import build_world

COLLECT = """() => [...document.querySelectorAll('main section')].map(s => ({
  id: s.id, note: s.querySelector('.note').textContent,
  corpus: [...s.querySelectorAll('.side.corpus .cell')].map(c => c.title),
  mined: [...s.querySelectorAll('.side.mined .cell')].map(c => c.title),
  widths: [...s.querySelectorAll('img')].map(i => i.naturalWidth)}))"""


def test_mined_view_in_chromium(tmp_path, monkeypatch):
    w = build_world(str(tmp_path / "root"), str(tmp_path / "pool"), n_corpus=160, n_pool=300,
                    pool_shard=150)
    r = parse_mining_recipe("name: look\npools: [testpool]\nfill_to: median\nmin_sim: 0.2\n"
                            "dedup: {cosine: 0.9}\nseed: 2\nshard_size: 20\n")
    write_mined(w.store, r, select(w.store, r))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(tmp_path / "root"))
    out = tmp_path / "gallery"
    res = CliRunner().invoke(app, ["sample", "--asset", "mined", "--recipe", "look", "--n", "8",
                                   "--out", str(out), "--parquet"])
    assert res.exit_code == 0, res.output
    assert "mined images" in res.output and (out / "samples.parquet").exists()
    man = w.store.read_json(layout.mined_manifest("look"))
    wanted = sorted(int(c) for c, t in man["clusters"].items() if t["wanted"])
    a = w.store.read_table(layout.CLUSTER_ASSIGNMENTS, schemas.CLUSTER_ASSIGNMENTS)
    sel = w.store.read_table(layout.mined_selection("look"), schemas.MINED_SELECTION)
    with chromium_page() as page:
        page.goto((out / "index.html").as_uri())
        page.wait_for_load_state("load")
        sections = page.evaluate(COLLECT)
        page.screenshot(path=str(artifacts_dir() / "gallery_mined.png"), full_page=True)
    assert [int(s["id"][1:]) for s in sections] == wanted
    for s in sections:
        c = int(s["id"][1:])
        members = set(a.filter(pl.col("cluster") == c)["key"])
        taken = set(sel.filter(pl.col("cluster") == c)["out_key"])
        assert s["corpus"] and set(s["corpus"]) <= members
        assert len(s["corpus"]) == min(8, len(members))
        assert set(s["mined"]) <= taken and len(s["mined"]) == min(8, len(taken))
        assert all(wd > 0 for wd in s["widths"])
        assert f"taken {man['clusters'][str(c)]['taken']}" in s["note"]
    bad = CliRunner().invoke(app, ["sample", "--asset", "mined", "--recipe", "look",
                                   "--cluster", "99", "--out", str(tmp_path / "g2")])
    assert bad.exit_code == 2 and "--cluster 99" in bad.output
