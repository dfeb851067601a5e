"""Fixtures for the browser test: a real dagster-webserver + dagster-daemon over a temporary
instance and storage root holding one ingested shard, and headless Debian Chromium.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it), driven by
Playwright from PyPI without any browser download. Outside CI a missing Chromium skips the
test with the reason; in CI (``$CI`` set) it fails, so the browser test never silently vanishes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MM_ASSETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# Fast queue polling so a run launched from the UI starts within a second; no telemetry.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
"""
IMAGE_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
N_TEXT_ONLY = 2


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser test: .ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the Debian Chromium binary; skip (fail in CI) when it or Playwright is absent."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _missing(f"Chromium not installed at {CHROMIUM}: apt-get install -y "
                 "--no-install-recommends chromium chromium-driver fonts-liberation")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright not installed: pip install -e '.[dev]'")
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: ``$MM_ASSETS_ARTIFACTS`` or ``tests/ui/artifacts`` (git-ignored)."""
    path = Path(os.environ.get("MM_ASSETS_ARTIFACTS") or REPO / "tests" / "ui" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_llava_drop(folder: Path) -> Path:
    """A tiny LLaVA JSONL: one PNG (made with Pillow) per colour and some text-only records."""
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    records = []
    for i, colour in enumerate(IMAGE_COLOURS):
        Image.new("RGB", (64, 48), colour).save(folder / "images" / f"c{i}.png")
        records.append({"id": f"img{i}", "image": f"c{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour fills this picture?"},
            {"from": "gpt", "value": f"The picture is filled with RGB {colour}."}]})
    for i in range(N_TEXT_ONLY):
        records.append({"id": f"txt{i}", "conversations": [
            {"from": "human", "value": f"What is {i} plus one?"},
            {"from": "gpt", "value": f"{i} plus one is {i + 1}."}]})
    path = folder / "drop.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Signal the parent only (signalling the group left dagster children hung)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def dagster_ui(chromium, tmp_path_factory):
    """Webserver + daemon on 127.0.0.1 over a fresh instance whose root holds one shard.

    Yields:
        dict with ``url``, ``shard``, ``root``, ``home``, ``logs`` (server logs folder) and
        ``n_records``.
    """
    from dagster import DagsterInstance

    from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
    from resources.storage import StorageResource

    base = tmp_path_factory.mktemp("ui")
    home, root = base / "dagster_home", base / "root"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    drop = write_llava_drop(base / "drop")
    [shard] = plan_ingest(StorageResource(root=str(root)).store(), [str(drop)],
                          str(drop.parent / "images"), IngestConfig(shard_size=64))
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("shards", [shard])

    port = _free_port()
    env = dict(os.environ, DAGSTER_HOME=str(home), MM_ASSETS_ROOT=str(root),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    bindir = Path(sys.executable).parent
    url = f"http://127.0.0.1:{port}"
    with open(base / "webserver.log", "wb") as web_log, \
            open(base / "daemon.log", "wb") as daemon_log:
        web = subprocess.Popen([str(bindir / "dagster-webserver"), "-w", "workspace.yaml",
                                "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
                               stdout=web_log, stderr=subprocess.STDOUT)
        daemon = subprocess.Popen([str(bindir / "dagster-daemon"), "run", "-w",
                                   "workspace.yaml"], cwd=REPO, env=env, stdout=daemon_log,
                                  stderr=subprocess.STDOUT)
        try:
            _wait_ready(url, web, base / "webserver.log")
            yield {"url": url, "shard": shard, "root": root, "home": home, "logs": base,
                   "n_records": len(IMAGE_COLOURS) + N_TEXT_ONLY}
        finally:
            _stop(daemon)
            _stop(web)


def _wait_ready(url: str, web: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if web.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"dagster-webserver did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture
def page(chromium):
    """A fresh headless Chromium page (1600×1000)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1600, "height": 1000})
            pg.set_default_timeout(30_000)
            yield pg
        finally:
            browser.close()
