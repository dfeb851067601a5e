import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """``../shared/data`` beside the repository (or ``$MM_ASSETS_SHARED_DATA``)."""
    path = Path(os.environ.get("MM_ASSETS_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"shared test data not found at {path}; set MM_ASSETS_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_data()


@pytest.fixture(scope="session")
def pillow_images(shared) -> Path:
    return shared / "images_edge" / "Pillow" / "Tests" / "images"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The storage root of a full ``mm-assets demo`` run (about 4-5 min on 2 cores);
    ``$MM_ASSETS_DEMO_ROOT`` names an already materialized demo root to reuse instead."""
    if os.environ.get("MM_ASSETS_DEMO_ROOT"):
        return Path(os.environ["MM_ASSETS_DEMO_ROOT"])
    base = tmp_path_factory.mktemp("demo_gallery")
    home, root = base / "home", base / "root"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "DAGSTER_HOME": str(home), "MM_ASSETS_ROOT": str(root)}
    exe = Path(sys.executable).parent / "mm-assets"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                           "from mm_assets.cli import app; app()"]
    res = subprocess.run([*cmd, "demo"], cwd=base, env=env, capture_output=True, text=True,
                         timeout=1800, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return root
