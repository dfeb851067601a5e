"""A new user's first run on their own data, through the real ``mm-assets`` command: a fresh
root with 3 records (one text-only) runs the whole graph with exit 0 and builds no recipe it
was not given; a recipe of theirs that selects nothing fails alone, in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]


def _records(folder: Path) -> Path:
    (folder / "img").mkdir(parents=True)
    for i, colour in enumerate([(200, 30, 30), (30, 60, 200)]):
        im = Image.new("RGB", (96, 72), colour)
        ImageDraw.Draw(im).ellipse((10 + 20 * i, 10, 60 + 20 * i, 60), fill=(240, 240, 20))
        im.save(folder / "img" / f"p{i}.png")
    turns = [("<image>\nWhat colour is the background?", "Red, with a yellow circle."),
             ("<image>\nDescribe the picture.", "A yellow disc on a blue background."),
             ("What is 12 times 3?", "12 times 3 is 36.")]
    recs = [{"id": f"r{i}", "conversations": [{"from": "human", "value": q},
                                              {"from": "gpt", "value": a}]}
            for i, (q, a) in enumerate(turns)]
    recs[0]["image"], recs[1]["image"] = "img/p0.png", "img/p1.png"
    (folder / "mine.json").write_text(json.dumps(recs))
    return folder / "mine.json"


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "mm-assets"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                           "from mm_assets.cli import app; app()"]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True,
                          timeout=1800, check=False)


@pytest.mark.slow
def test_first_run_on_three_own_records(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "DAGSTER_HOME": str(tmp_path / "home")}  # a new home: no dagster.yaml yet
    env.pop("MM_ASSETS_ROOT", None)
    root = tmp_path / "root"
    src = _records(tmp_path / "in")
    ing = _cli("ingest", "--input", str(src), "--root", str(root), env=env)
    assert ing.returncode == 0, ing.stderr
    run = _cli("run", "--root", str(root), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    assert "dagster.yaml" not in run.stderr  # a new home gets one, silently
    assert "Loading weights" not in run.stderr  # no model-loading tqdm bars
    table = {ln.split()[0]: ln.split()[1:3] for ln in run.stdout.splitlines()
             if ln.split() and ln.split()[0] in ("raw_shards", "embeddings", "rephrased")}
    assert table == {"raw_shards": ["3", "3"], "embeddings": ["3", "3"],
                     "rephrased": ["3", "3"]}
    assert not (root / "mixtures").exists()  # no shipped example recipe was built
    status = _cli("status", "--root", str(root), env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "mixtures                       0         0       0" in status.stdout

    # their own recipes: one that selects nothing fails alone, naming why; the other builds
    (root / "recipes").mkdir()
    (root / "recipes" / "mine_all.yaml").write_text("name: mine_all\nsource: curated\n")
    (root / "recipes" / "mine_long.yaml").write_text(
        "name: mine_long\nsource: curated\nmin_answer_tokens: 5000\n")
    mix = _cli("run", "--select", "mixtures", "--root", str(root), env=env)
    assert mix.returncode == 1
    errors = [ln for ln in mix.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("FAILED: mixtures[mine_long]"), errors
    assert "selects no sample" in errors[0] or "no sample" in errors[0], errors[0]
    assert sorted(p.name for p in (root / "mixtures").iterdir()) == ["mine_all"]
    status = _cli("status", "--root", str(root), env=env)
    assert status.returncode == 1 and "mixtures[mine_long]" in status.stderr
    assert "mixtures                       1         1       1" in status.stdout


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAGSTER_HOME": str(tmp_path / "home")}
    bad = _cli("ingest", "--input", str(tmp_path / "nope.json"), "--root", str(tmp_path),
               env=env)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode != 0 and len(lines) == 1 and "nope.json" in lines[0], bad.stderr
    assert "Traceback" not in bad.stderr
    dbg = _cli("ingest", "--input", str(tmp_path / "nope.json"), "--root", str(tmp_path),
               "--debug", env=env)
    assert dbg.returncode != 0 and "Traceback" in dbg.stderr
