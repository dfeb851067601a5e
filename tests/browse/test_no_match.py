"""``mm-assets sample`` whose filters match nothing exits 2 with one line that lists the known
values of the filters that matched nothing (found by a fresh-user tryout: it exited 0 and wrote
an empty gallery). Synthetic root with known decisions (bench/_synth_root.py)."""

import pytest
from typer.testing import CliRunner

from bench._synth_root import build_root
from mm_assets.browse.gallery import build_gallery
from mm_assets.browse.select import SampleSpec
from mm_assets.cli import app
from mm_assets.core.storage import Store

N, PER_SHARD = 400, 200


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("nomatch")
    build_root(path, N, PER_SHARD)
    return Store(str(path))


def _sample(root, tmp_path, monkeypatch, *args):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    out = tmp_path / "g"
    r = CliRunner().invoke(app, ["sample", "--out", str(out), "--root", root.root, *args])
    return r, out


def _error_line(r, out) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output)
    err = r.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert not (out / "index.html").exists()  # nothing written
    return err


def test_unknown_source_lists_the_known_sources(root, tmp_path, monkeypatch):
    r, out = _sample(root, tmp_path, monkeypatch, "--asset", "raw_shards", "--source", "nope")
    err = _error_line(r, out)
    assert "--source nope matches no sample" in err
    # src{i % 3} over 400 samples: 134, 133, 133
    assert "known sources: src0 (134), src1 (133), src2 (133)" in err, err


def test_cluster_and_reason_list_their_known_values(root, tmp_path, monkeypatch):
    r, out = _sample(root, tmp_path, monkeypatch, "--asset", "clusters", "--cluster", "99",
                     "--space", "image")
    err = _error_line(r, out)
    assert "--cluster 99 --space image matches no sample" in err
    assert err.endswith("known clusters: image 1-3, 5-7 (300 samples)"), err
    r, out = _sample(root, tmp_path, monkeypatch, "--asset", "clusters", "--cluster", "99")
    err = _error_line(r, out)
    assert "known clusters: image 1-3, 5-7 (300 samples); text 0, 4 (100 samples)" in err, err
    r, out = _sample(root, tmp_path, monkeypatch, "--asset", "curated", "--reason", "nope")
    err = _error_line(r, out)
    # exact groups here are merged, not removed: exact_duplicate is no known reason
    assert err.endswith("known reasons: missing_image (2), ppl_out_of_range (36), "
                        "semdedup (40)"), err


def test_flag_without_text_quality_and_decile(root, tmp_path, monkeypatch):
    r, out = _sample(root, tmp_path, monkeypatch, "--asset", "raw_shards", "--view", "all",
                     "--flag", "template_tokens", "--decile", "3")
    err = _error_line(r, out)
    assert "--flag template_tokens matches no sample" in err
    assert "known flags: none (text_quality is not materialized" in err, err
    assert "--decile 3" not in err  # decile 3 has samples: only the empty filter is named


def test_filters_known_alone_but_empty_together(root):
    from mm_assets.browse.known import NoMatchError, explain_empty

    # the unique view leaves SemDeDup duplicates out; --reason semdedup selects only them
    spec = SampleSpec("unique", reason="semdedup")
    msg = explain_empty(root, spec)
    assert "view unique with --reason semdedup selects no sample" in msg
    assert "--reason semdedup alone matches 40 samples" in msg, msg
    with pytest.raises(NoMatchError, match="view unique"):
        build_gallery(root, spec, Store(str(root.root) + "_g"), allow_empty=False)
    # a gallery built by the report (allow_empty, the default) stays empty and quiet
    res = build_gallery(root, spec, Store(str(root.root) + "_g2"))
    assert res.cards == 0


def test_matching_filters_still_exit_0(root, tmp_path, monkeypatch):
    r, _ = _sample(root, tmp_path, monkeypatch, "--asset", "raw_shards", "--source", "src1",
                   "--n", "3")
    assert r.exit_code == 0 and "3 samples in 1 section(s)" in r.output, r.output


def test_filters_on_tables_not_materialized_name_the_asset(tmp_path):
    from mm_assets.browse.known import explain_empty

    empty = Store(str(tmp_path / "empty"))
    msg = explain_empty(empty, SampleSpec("all", decile=3, cluster=1))
    assert "--decile 3 matches no sample; known deciles: none (ppl_deciles is not " in msg
    assert "--cluster 1 matches no sample; known clusters: none (clusters is not " in msg
    assert explain_empty(empty, SampleSpec("removed")).startswith(
        "view removed selects no sample under ")
