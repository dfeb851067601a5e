"""The Dagster UI in headless Chromium: the graph by stage, a shard materialized from the UI.

Starts the real ``dagster-webserver`` and ``dagster-daemon`` (see ``conftest.py``), clicks
through the asset graph like a user (first-run pop-up, expand groups, select raw_shards,
Materialize, pick the shard in the launch dialog, launch), waits for the run, then checks the
materialization in the UI and through GraphQL. Screenshots of the graph and of the asset page
are saved as test artifacts (``tests/ui/artifacts/`` or ``$MM_ASSETS_ARTIFACTS``).
"""

from __future__ import annotations

import re

import requests
from PIL import Image

from mm_assets.runner import ORDER

STAGE_GROUPS = {"raw_shards": "ingest", "image_hashes": "dedup", "exact_duplicates": "dedup",
                "embeddings": "semantic", "clusters": "semantic", "semdedup": "semantic",
                "semdedup_plan": "semantic", "semdedup_range": "semantic",
                "ppl_scores": "quality", "ppl_deciles": "quality", "text_quality": "quality",
                "curated": "curate",
                "merged": "text", "rephrased": "text", "synthetic": "synthetic",
                "synthetic_checked": "synthetic",
                "mixtures": "mixtures", "report": "report", "eval_results": "eval",
                "ablations": "eval", "pool_assign": "mining", "mined": "mining",
                **dict.fromkeys(["interleaved_docs", "doc_hashes", "doc_quality", "doc_embeddings",
                                 "doc_repeats", "doc_clusters", "docs_curated"], "interleaved")}
RUN_TIMEOUT_MS = 180_000


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    r = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}},
                      timeout=30)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def skip_community_popup(page) -> bool:
    """Click Skip on the first-run "Join the Dagster community" dialog when it shows."""
    skip = page.get_by_role("button", name="Skip", exact=True)
    try:
        skip.wait_for(state="visible", timeout=20_000)
    except Exception:  # noqa: BLE001 - already dismissed for this instance
        return False
    skip.click()
    skip.wait_for(state="hidden")
    return True


def open_expanded_graph(page, url: str) -> None:
    """Global asset lineage with every stage group expanded (graph settings menu)."""
    page.goto(f"{url}/asset-groups", wait_until="domcontentloaded")
    page.locator("foreignObject.group").first.wait_for(state="visible")
    settings = page.locator("button").filter(
        has=page.get_by_role("img", name="settings", exact=True)).last
    settings.click()
    toggle = page.get_by_role("menuitem", name=re.compile(r"(Expand|Collapse) all groups"))
    if toggle.inner_text().startswith("Expand"):  # the choice persists in the browser
        toggle.click()
    toggle.press("Escape")
    toggle.wait_for(state="hidden")
    for asset in ORDER:
        page.locator("foreignObject").filter(
            has_text=re.compile(rf"^{asset}$")).last.wait_for(state="visible")


def test_materialize_a_shard_from_the_ui(dagster_ui, page, artifacts):
    url, shard = dagster_ui["url"], dagster_ui["shard"]

    # Every asset has its stage group and a description (docstring) in the UI's data.
    nodes = graphql(url, "{ assetNodes { assetKey { path } groupName description } }")
    got = {n["assetKey"]["path"][0]: n for n in nodes["assetNodes"]}
    assert {a: n["groupName"] for a, n in got.items()} == STAGE_GROUPS
    assert all(len(n["description"] or "") > 40 for n in got.values())

    page.goto(f"{url}/asset-groups", wait_until="domcontentloaded")
    assert skip_community_popup(page), "fresh instance: the community pop-up should show"
    sidebar = page.locator("button").filter(has=page.get_by_role("img", name="asset_group"))
    assert set(sidebar.all_inner_texts()) >= {f"{g}\n{g}" for g in STAGE_GROUPS.values()}

    # Graph -> raw_shards -> Materialize selected -> pick the shard -> Launch 1 run.
    open_expanded_graph(page, url)
    page.locator("foreignObject").filter(has_text=re.compile(r"^raw_shards$")).last.click()
    page.get_by_role("button", name="Materialize selected").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize raw_shards")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem", name=shard).click()
    page.keyboard.press("Escape")  # closes the partition picker, not the dialog
    assert dialog.get_by_text("1 partition", exact=True).is_visible()
    page.screenshot(path=str(artifacts / "launch_dialog.png"))
    dialog.get_by_role("button", name="Launch 1 run").click()

    # The toast links to the run; its page turns to Success once the daemon ran it.
    toast = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
    short_id = toast.inner_text().split()[-1]
    page.get_by_text("View", exact=True).last.click()
    page.wait_for_url(re.compile(rf"/runs/{short_id}[0-9a-f-]{{28}}"))
    run_id = page.url.split("/runs/")[1].split("?")[0]
    page.get_by_text("Success", exact=True).first.wait_for(timeout=RUN_TIMEOUT_MS)

    # Double-check through GraphQL: the run came from the UI, the partition materialized.
    run = graphql(url, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status "
                  "tags { key value } } } }", {"id": run_id})["runOrError"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["status"] == "SUCCESS"
    assert tags["dagster/from_ui"] == "true" and tags["dagster/partition"] == shard
    mats = graphql(url, '{ assetOrError(assetKey: {path: ["raw_shards"]}) { ... on Asset { '
                   'assetMaterializations { runId partition metadataEntries { label '
                   '... on IntMetadataEntry { intValue } } } } } }')
    [mat] = mats["assetOrError"]["assetMaterializations"]
    counts = {e["label"]: e.get("intValue") for e in mat["metadataEntries"]}
    assert (mat["runId"], mat["partition"]) == (run_id, shard)
    n = dagster_ui["n_records"]
    assert (counts["n_in"], counts["n_out"], counts["n_quarantined"]) == (n, n, 0)
    assert (dagster_ui["root"] / "raw_shards" / f"{shard}.tar").stat().st_size > 0

    # In the UI: the asset page shows the partition, its counts, and the passed check.
    page.goto(f"{url}/assets/raw_shards", wait_until="domcontentloaded")
    page.get_by_text("Latest materialization").wait_for()
    main = page.locator("body")
    main.get_by_text(shard, exact=True).first.wait_for()
    n_in_row = page.locator("tr").filter(has=page.get_by_text("n_in", exact=True))
    assert n_in_row.first.inner_text().split()[-1] == str(n)
    page.screenshot(path=str(artifacts / "asset_page.png"), full_page=True)
    page.goto(f"{url}/assets/raw_shards?view=checks", wait_until="domcontentloaded")
    page.get_by_text("Passed", exact=True).first.wait_for()

    open_expanded_graph(page, url)
    page.screenshot(path=str(artifacts / "graph.png"))
    for name in ("graph.png", "asset_page.png", "launch_dialog.png"):
        with Image.open(artifacts / name) as im:
            lo, hi = im.convert("L").getextrema()
            assert im.size[0] >= 1600 and lo < 100 < hi, name  # real content, not blank
