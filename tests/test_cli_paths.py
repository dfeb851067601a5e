"""Paths on the command line (found by a fresh-user tryout): a missing or invalid input file or
an unwritable output location exits 2 with one line, before any work is done; and
``export_index`` writes an absolute path or URL where it says, a relative one under the root."""

import polars as pl
import pytest
from typer.testing import CliRunner

from mm_assets.cli import app
from mm_assets.core import layout
from mm_assets.core.storage import Store
from mm_assets.loader import export_index


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(tmp_path / "root"))
    return tmp_path


def _one_line_exit_2(r) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output)
    err = r.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in r.output, err
    return err


@pytest.mark.parametrize("content, says", [
    (None, "no such file"),
    ("semdedup: [1, 2\n", "not valid YAML"),
    ("- semdedup\n", "expected a mapping"),
    ("semdedupe: {target_fraction: 0.1}\n", "unknown asset 'semdedupe'"),
    ("semdedup: {epsilonn: 0.1}\n", ("semdedup has no field 'epsilonn'; its fields: "
                                     "dense_median, epsilon,")),  # found by a tryout: it started the run, then exit 1
    ("mixtures: {k: 1}\n", "mixtures has no field 'k'; its fields: none"),
])
def test_run_config_missing_or_invalid_exits_2_before_running(env, content, says):
    cfg = env / "cfg.yaml"
    if content is not None:
        cfg.write_text(content)
    r = CliRunner().invoke(app, ["run", "--config", str(cfg), "--select", "clusters"])
    err = _one_line_exit_2(r)
    assert "--config" in err and str(cfg) in err and says in err, err
    assert not (env / "home").exists()  # refused before the instance was opened


def test_report_out_in_a_missing_folder_fails_before_the_funnel(env):
    r = CliRunner().invoke(app, ["report", "--out", str(env / "nowhere" / "x.html")])
    err = _one_line_exit_2(r)
    assert "--out" in err and "nowhere" in err and "does not exist" in err
    assert r.stdout == ""  # nothing of the funnel printed first
    folder = env / "adir"
    folder.mkdir()
    err = _one_line_exit_2(CliRunner().invoke(app, ["report", "--out", str(folder)]))
    assert "is a folder" in err


def test_eval_compare_out_checked_first(env):
    r = CliRunner().invoke(app, ["eval", "compare", "--out", str(env / "no" / "t.html")])
    assert "--out" in _one_line_exit_2(r)


def test_sample_out_under_a_file_and_ingest_images_missing(env):
    blocker = env / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(app, ["sample", "--asset", "raw_shards", "--out", str(blocker / "g")])
    err = _one_line_exit_2(r)
    assert "--out" in err and "not a folder" in err
    data = env / "in.jsonl"
    data.write_text('{"id": "a", "conversations": []}\n')
    r = CliRunner().invoke(app, ["ingest", "--input", str(data), "--images",
                                 str(env / "no_images")])
    err = _one_line_exit_2(r)
    assert "--images" in err and "no_images" in err


def test_path_checks_accept_good_paths_and_urls(tmp_path):
    from mm_assets.cli_paths import check_input_file, check_output_dir, check_output_file

    f = tmp_path / "a.yaml"
    f.write_text("{}")
    assert check_input_file(str(f), "--config") == str(f)
    assert check_output_file(str(tmp_path / "new.html"), "--out") == str(tmp_path / "new.html")
    assert check_output_dir(str(tmp_path / "x" / "y"), "--out") == str(tmp_path / "x" / "y")
    for url in ("s3://bucket/a.yaml", "memory://x/y.html"):
        assert check_input_file(url, "--config") == url
        assert check_output_file(url, "--out") == url
    with pytest.raises(FileNotFoundError, match="--config .*: is a folder"):
        check_input_file(str(tmp_path), "--config")


def _store_with_manifest(tmp_path) -> Store:
    store = Store(str(tmp_path / "root"))
    store.write_json(layout.mixture_manifest("r1"), {"samples": [
        {"key": "a", "source": "s"}, {"key": "b", "source": "t"}]})
    return store


def test_export_index_absolute_path_used_as_given(tmp_path):
    store = _store_with_manifest(tmp_path)
    dest = tmp_path / "elsewhere" / "index.parquet"
    url = export_index(store, "r1", str(dest))
    assert url == str(dest) and dest.is_file()
    assert pl.read_parquet(dest)["key"].to_list() == ["a", "b"]
    assert not store.exists(str(dest).lstrip("/"))  # not copied under the root


def test_export_index_relative_and_default_under_the_root(tmp_path):
    store = _store_with_manifest(tmp_path)
    assert export_index(store, "r1") == store.url(layout.mixture_index("r1"))
    url = export_index(store, "r1", "exports/r1.parquet")
    assert url == store.url("exports/r1.parquet")
    assert store.read_parquet("exports/r1.parquet").height == 2
    url = export_index(store, "r1", "memory://exports/r1.parquet")
    assert url == "memory://exports/r1.parquet"
    assert Store("memory://exports").read_parquet("r1.parquet").height == 2
