"""Progress of long steps, reported through the standard logger ``mm_assets.progress``.

Core loops that can run for minutes (perplexity batches, rephrase batches) count their work
with :class:`Progress`; it logs ``label: done/total unit (rate/s)`` at most every ``every_s``
seconds and once at the end, at INFO. Nothing is printed unless a handler is attached: the
``mm-assets`` CLI attaches one that writes to stderr; Dagster captures it in a run's logs when
the instance lists ``mm_assets.progress`` under ``python_logs.managed_python_loggers``.
No Dagster import; cost: one clock read per :meth:`Progress.add`.
"""

from __future__ import annotations

import logging
import time

LOG = logging.getLogger("mm_assets.progress")


class Progress:
    """Counter of ``total`` units of one step.

    Args:
        label: what is being done (``ppl_scores``).
        total: units to do (> 0 to log anything).
        unit: what a unit is (``samples``, ``turns``).
        every_s: seconds between two log lines at least.
    """

    def __init__(self, label: str, total: int, unit: str = "items", every_s: float = 10.0):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def add(self, n: int = 1) -> None:
        """Count ``n`` more units; log when ``every_s`` passed since the last line, or at the
        end."""
        self.done += n
        now = time.monotonic()
        if self.total and (now - self.last >= self.every_s or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            LOG.info(f"{self.label}: {self.done}/{self.total} {self.unit} ({rate:.1f}/s)")
