import os
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
