"""The sample browser's core on a synthetic root whose decisions follow known rules
(bench/_synth_root.py): selection per view and filter, seeds, groups, random-access fetch,
decisions joined per sample, Parquet rows = HTML cards, only needed shards opened."""

import re
import tarfile

import polars as pl
import pytest
from typer.testing import CliRunner

from bench._synth_root import build_root
from mm_assets.browse.fetch import iter_members, tar_samples
from mm_assets.browse.gallery import build_gallery
from mm_assets.browse.select import SampleSpec, select, spec_for_asset
from mm_assets.cli import app
from mm_assets.core.shards import read_samples
from mm_assets.core.storage import Store

N, PER_SHARD = 1200, 200


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    facts = build_root(root, N, PER_SHARD)
    return Store(str(root)), facts


def test_unique_view_samples_only_unique_and_is_seeded(synth):
    store, facts = synth
    sel = select(store, SampleSpec("unique", n=30, seed=1))
    groups = store.read_parquet("exact_duplicates/groups.parquet")
    non_rep = set(groups.filter(~pl.col("is_representative"))["key"])
    ok = set(facts.filter(~pl.col("duplicate"))["key"]) - non_rep
    assert sel.rows.height == 30 and set(sel.rows["key"]) <= ok
    assert sel.counts == {"unique after SemDeDup": len(ok)}
    again = select(store, SampleSpec("unique", n=30, seed=1)).rows["key"]
    assert again.to_list() == sel.rows["key"].to_list()
    other = select(store, SampleSpec("unique", n=30, seed=2)).rows["key"]
    assert set(other) != set(sel.rows["key"])


def test_removed_view_sections_match_the_decisions(synth):
    store, facts = synth
    sel = select(store, SampleSpec("removed", n=5))
    expect = {f"removed: {r}": c for r, c in
              facts.group_by("reason").len().drop_nulls("reason").iter_rows()}
    expect["quarantined at raw_shards: missing_image"] = N // PER_SHARD
    assert sel.counts == expect
    by_key = dict(zip(facts["key"], facts["reason"], strict=True))
    for key, section in sel.rows.select("key", "section").iter_rows():
        if section.startswith("removed"):
            assert section == f"removed: {by_key[key]}"
        else:
            assert key.startswith("bad")


@pytest.mark.parametrize("filters", [{"cluster": 3}, {"decile": 9, "source": "src1"},
                                     {"cluster": 5, "space": "image", "decile": 2}])
def test_filters_combine_on_any_view(synth, filters):
    store, facts = synth
    sel = select(store, SampleSpec("removed", n=1000, reason="semdedup", **filters))
    want = facts.filter(pl.col("duplicate"), *[pl.col(k) == v for k, v in filters.items()
                                                if k != "space"])
    if filters.get("space") == "image":
        want = want.filter(~pl.col("text_only"))
    assert sorted(sel.rows["key"]) == sorted(want["key"]) and want.height > 0


def test_decile_view_takes_lowest_and_highest_per_decile(synth):
    store, facts = synth
    rows = select(store, SampleSpec("decile", n=3, decile=4)).rows
    d4 = facts.filter(pl.col("decile") == 4).sort("ppl", "key")
    low = rows.filter(pl.col("section").str.contains("lowest"))["key"].to_list()
    high = rows.filter(pl.col("section").str.contains("highest"))["key"].to_list()
    assert set(low) == set(d4.head(3)["key"]) and set(high) == set(d4.tail(3)["key"])


def test_group_views_return_whole_groups_representative_first(synth):
    store, _ = synth
    sel = select(store, SampleSpec("exact-groups", n=4, seed=3))
    groups = store.read_parquet("exact_duplicates/groups.parquet")
    assert sel.counts == {"groups": groups["group_id"].n_unique()}
    for _, part in sel.rows.group_by("section", maintain_order=True):
        gid = part["group_id"][0]
        assert sorted(part["key"]) == sorted(groups.filter(pl.col("group_id") == gid)["key"])
        assert part["is_representative"][0]
    near = select(store, SampleSpec("near-groups", n=100)).rows
    assert near.height == store.read_parquet("exact_duplicates/near_groups.parquet").height


def test_tar_random_access_matches_a_full_read(synth):
    store, _ = synth
    with store.open_read("raw_shards/000002.tar") as f:
        full = {s.key: s for s in read_samples(f)}
    with store.open_read("raw_shards/000002.tar") as f:
        names = [n for n, _, _ in iter_members(f)]
    with tarfile.open(store.path("raw_shards/000002.tar")) as tf:
        assert names == [m.name for m in tf if m.isfile()]
    want = ["k0000401", "k0000404", "k0000599"]
    got = tar_samples(store, "000002", want + ["k9999999"])
    assert sorted(got) == want
    for k in want:
        assert got[k] == full[k]


def test_gallery_decisions_parquet_and_shards_read(synth, tmp_path, monkeypatch):
    store, _ = synth
    opened = []
    real = Store.open_read
    monkeypatch.setattr(Store, "open_read", lambda self, rel: (opened.append(rel),
                                                               real(self, rel))[1])
    out = Store(str(tmp_path / "g"))
    res = build_gallery(store, SampleSpec("removed", n=6, reason="semdedup"), out, parquet=True)
    rows = pl.read_parquet(out.path("samples.parquet"))
    assert rows.height == res.cards == 6
    for r in rows.iter_rows(named=True):
        i = int(r["key"][1:])
        assert r["status"] == "removed" and r["reason"] == "semdedup" and r["sem_duplicate"]
        assert r["sem_partner"] == f"k{i - 1:07d}" and r["sem_partner_duplicate"] is False
        assert r["shard"] == f"{i // PER_SHARD:06d}" and r["text"].startswith(
            ("<image>\nQuestion", "Question"))
    tars = {rel for rel in opened if rel.endswith(".tar")}
    need = {f"raw_shards/{s}.tar" for s in rows["shard"]}
    assert tars == need  # partners live in the same shard here (i - 1)
    html = (tmp_path / "g" / "index.html").read_text()
    assert len(re.findall(r'<article class="card', html)) == 6
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert (tmp_path / "g" / src).is_file()


def test_cli_sample_and_errors(synth, tmp_path):
    store, _ = synth
    r = CliRunner().invoke(app, ["sample", "--asset", "clusters", "--cluster", "2", "--n", "5",
                                 "--out", str(tmp_path / "c"), "--root", store.root, "--parquet"])
    assert r.exit_code == 0, r.output
    assert "5 samples in 1 section(s)" in r.output
    rows = pl.read_parquet(tmp_path / "c" / "samples.parquet")
    assert set(rows["cluster"]) == {2} and rows["thumbs"].list.len().min() == 1
    bad = CliRunner().invoke(app, ["sample", "--asset", "nope", "--out", str(tmp_path / "x"),
                                   "--root", store.root])
    assert bad.exit_code == 2 and "known:" in bad.output
    assert spec_for_asset("curated", reason="semdedup").view == "removed"
    with pytest.raises(ValueError, match="view must be one of"):
        SampleSpec("bogus")


def test_missing_table_names_the_asset(tmp_path):
    with pytest.raises(FileNotFoundError, match="mm-assets run --select semdedup"):
        select(Store(str(tmp_path)), SampleSpec("unique"))
