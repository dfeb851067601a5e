"""The corpus funnel on the e2e graph: figures reconcile stage to stage, and the CLI, the
``report`` asset's UI metadata and the HTML report show the same figures."""

import base64
import html
import os
import re
from pathlib import Path

import polars as pl
from chromium import artifacts_dir, chromium_page
from dagster import AssetCheckKey, AssetKey
from dagster_procs import DagsterProcs, free_port, webserver_cmd
from typer.testing import CliRunner

from mm_assets.assets._common import read_sharded
from mm_assets.cli import app
from mm_assets.core.report.funnel import build_funnel
from mm_assets.core.report.render import label

CLI_ROW = re.compile(r"^  (\S.*?) +(\d+)(?:  |$)")
ROW = re.compile(r'<tr class="(\w+)" data-stage="([^"]*)"><td class="figure">([^<]*)</td>'
                 r'<td class="n">(\d+)</td>')


def _expected(funnel):
    return [(r.stage, label(r), r.n) for r in funnel.rows]


def _flow_arithmetic(funnel):
    """Within the main flow and within each mixture: every total = the previous total minus
    what was removed or quarantined since, plus what was added."""
    running, stage_of_running = None, None
    for r in funnel.rows:
        branch = r.stage if r.stage.startswith("mixture ") else "flow"
        if r.kind == "total":
            if running is not None and branch == stage_of_running:
                assert r.n == running, (r, running)
            running, stage_of_running = r.n, branch
        elif r.kind in ("removed", "quarantined"):
            running -= r.n
        elif r.kind == "added":
            running += r.n


def test_funnel_reconciles_stage_to_stage(graph):
    store, counts = graph["store"], graph["summary"].counts
    f = build_funnel(store)
    assert [c for c in f.checks if not c.ok] == []
    assert len(f.checks) >= 12
    _flow_arithmetic(f)
    # figures against what each stage reported to Dagster (summed over its runs)
    assert f.total("ingest") == counts["raw_shards"]["n_out"] == 114
    assert f.rows[0].n == counts["raw_shards"]["n_in"]
    assert f.total("quality filters") == counts["curated"]["n_out"]
    folded = next(r.n for r in f.rows if r.figure.startswith("folded"))
    multi = [s for s in read_sharded(store, "merged") if s.metadata.get("n_merged", 1) > 1]
    assert folded == sum(s.metadata["n_merged"] - 1 for s in multi) == 5
    groups = next(r.n for r in f.rows if r.figure.startswith("image duplicate groups"))
    assert groups == 5  # as test_graph_e2e's independently computed sha256 groups
    decisions = pl.concat([store.read_parquet(f"curated/{s}.decisions.parquet")
                           for s in graph["shards"]])
    sem = [r for r in f.rows if r.stage == "SemDeDup" and r.kind == "removed"]
    assert sum(r.n for r in sem) == decisions.filter(pl.col("reason") == "semdedup").height
    mixes = {r.stage for r in f.rows if r.stage.startswith("mixture ")}
    assert {"mixture curated_all", "mixture baseline_raw", "mixture exact_dedup"} <= mixes
    assert set(f.sources.values()) <= {"commit records", "outputs"}


def test_cli_ui_and_html_show_the_same_figures(graph, tmp_path, monkeypatch):
    store, instance = graph["store"], graph["instance"]
    expected = _expected(build_funnel(store))
    monkeypatch.setenv("MM_ASSETS_ROOT", store.root)
    out = tmp_path / "funnel.html"
    res = CliRunner().invoke(app, ["report", "--root", store.root, "--out", str(out)])
    assert res.exit_code == 0, res.output
    cli, stage = [], None
    for line in res.output.splitlines():
        if line and not line.startswith(" ") and ":" not in line:
            stage = line
        elif line.startswith("  ") and stage not in (None, "checks"):
            m = CLI_ROW.match(line)
            cli.append((stage, m.group(1), int(m.group(2))))
    assert cli == expected

    ev = instance.get_latest_materialization_event(AssetKey("report"))
    md = ev.asset_materialization.metadata
    ui = [(r.data["stage"], r.data["figure"], r.data["samples"])
          for r in md["funnel"].value.records]
    assert ui == expected
    assert md["checks_passed"].value == md["checks"].value
    [check] = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [AssetCheckKey(AssetKey("report"), "funnel_reconciles")]).values()
    assert check.status.value == "SUCCEEDED"

    for page in (out.read_text(), store.read_bytes("reports/funnel.html").decode()):
        rows = [(html.unescape(s), html.unescape(fig), int(n)) for _, s, fig, n in
                ROW.findall(page)]
        assert rows == expected


def test_html_report_in_chromium(graph):
    store, art = graph["store"], artifacts_dir()
    n_rows = len(build_funnel(store).rows)
    path = art / "funnel_report.html"
    path.write_bytes(store.read_bytes("reports/funnel.html"))
    with chromium_page() as page:
        page.goto(path.as_uri())
        assert page.locator("tr[data-stage]").count() == n_rows
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert widths and min(widths) >= 800
        page.screenshot(path=str(art / "funnel_report.png"), full_page=True)
    # the plots of the latest materializations, as a user opens them from the asset page
    for asset, key in [("ppl_deciles", "ppl_histogram"), ("semdedup", "image_removal_curve"),
                       ("exact_duplicates", "group_size_plot")]:
        ev = graph["instance"].get_latest_materialization_event(AssetKey(asset))
        md = ev.asset_materialization.metadata[key].value
        png = base64.b64decode(md.split("base64,", 1)[1].rstrip(")"))
        assert int.from_bytes(png[16:20], "big") >= 800  # PNG IHDR width
        (art / f"plot_{asset}_{key}.png").write_bytes(png)


def _no_community_popup(page) -> None:
    """Dagster's community pop-up (ui-core CommunityNux) stays away once ``communityNux`` is
    set in localStorage, as after a click on its Skip button."""
    page.add_init_script("localStorage.setItem('communityNux', JSON.stringify('1'))")


def test_funnel_table_and_plots_in_the_dagster_ui(graph, tmp_path):
    """The report asset page shows the funnel table inline; a plot opens at >= 800 px."""
    instance, store, art = graph["instance"], graph["store"], artifacts_dir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DAGSTER_HOME=instance.root_directory, MM_ASSETS_ROOT=store.root,
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with DagsterProcs(env, tmp_path) as procs, chromium_page(1600, 1100) as page:
        procs.start("webserver", webserver_cmd(port))
        procs.wait_http(url)
        _no_community_popup(page)
        page.goto(f"{url}/assets/report", wait_until="domcontentloaded")
        page.get_by_text("= raw samples", exact=True).first.wait_for()  # inline, no click
        page.screenshot(path=str(art / "ui_report_asset.png"), full_page=True)
        page.goto(f"{url}/assets/ppl_deciles", wait_until="domcontentloaded")
        row = page.locator("tr").filter(has_text="ppl_histogram").last
        row.get_by_text("[Show Markdown]").click()
        img = page.get_by_role("dialog").locator("img").first
        img.wait_for()
        page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=img.element_handle())
        assert img.evaluate("e => e.naturalWidth") >= 800
        assert img.evaluate("e => e.getBoundingClientRect().width") >= 800
        page.screenshot(path=str(art / "ui_ppl_histogram_dialog.png"))


def test_report_writes_and_links_sample_galleries(graph):
    """The report asset writes the galleries of REPORT_VIEWS at every materialization and links
    them from its metadata; the unique view shows samples SemDeDup and exact dedup kept."""
    md = graph["instance"].get_latest_materialization_event(
        AssetKey("report")).asset_materialization.metadata
    links = {k: v.value for k, v in md.items() if k.startswith("gallery_")}
    assert {"gallery_unique", "gallery_removed"} <= set(links), sorted(md)
    page = Path(links["gallery_unique"]).read_text()
    cards = re.findall(r'<article class="card', page)
    assert 0 < len(cards) <= 24
    removed = Path(links["gallery_removed"]).read_text()
    assert "removed: exact_duplicate" in removed or "removed: semdedup" in removed
