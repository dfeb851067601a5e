"""Real ``dagster-webserver`` / ``dagster-daemon`` processes for the tests, started and stopped
the same way everywhere.

``dagster_home(path)`` writes a ``dagster.yaml`` (SQLite storage, QueuedRunCoordinator dequeuing
every second, no telemetry). ``DagsterProcs`` starts each command in its own process group, its
stderr in ``{log_dir}/{name}.log``; ``stop()`` (called on leaving the ``with`` block, also on
failure) sends SIGTERM to each parent, which stops its own code server, then SIGKILLs whatever
is left in its group (code server, run workers, step processes of an interrupted run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAGSTER_YAML = """run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
telemetry:
  enabled: false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dagster_home(path: Path, yaml: str = DAGSTER_YAML) -> Path:
    """``path`` as a ``DAGSTER_HOME``: created, with ``dagster.yaml``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(yaml)
    return path


def webserver_cmd(port: int, workspace: str = "workspace.yaml") -> list[str]:
    return [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]


def daemon_cmd(workspace: str = "workspace.yaml") -> list[str]:
    return [str(BIN / "dagster-daemon"), "run", "-w", workspace]


def _kill_group(pgid: int, tries: int = 20) -> None:
    """SIGKILL the process group ``pgid`` (leftovers of a stopped parent: code server, run
    workers, step processes) until it is empty; again after a pause, for a child forked while
    the first signal was sent."""
    for _ in range(tries):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.2)


class DagsterProcs:
    """Long-running Dagster processes of one test (or module); a context manager."""

    def __init__(self, env: dict[str, str], log_dir: Path, cwd: Path = REPO):
        self.env, self.log_dir, self.cwd = env, log_dir, cwd
        self.procs: dict[str, subprocess.Popen] = {}
        self._files: list = []

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop())
        self._files.append(log)
        proc = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)
        self.procs[name] = proc
        return proc

    def logs(self) -> list[Path]:
        return [self.log_dir / f"{name}.log" for name in self.procs]

    def tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
                         for p in self.logs() if p.exists())

    def check_alive(self) -> None:
        """Fail the test (with the logs) when one of the processes has exited."""
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            pytest.fail(f"dagster process(es) exited: {dead}\n{self.tails()}")

    def wait_http(self, url: str, timeout: float = 240) -> None:
        """Wait until the webserver at ``url`` answers ``/server_info``."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            self.check_alive()
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        pytest.fail(f"dagster-webserver not ready at {url}\n{self.tails()}")

    def stop(self, timeout: float = 60) -> None:
        for p in self.procs.values():  # the parent first: it stops its own code server
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
            _kill_group(p.pid)
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
