"""Resident memory of this process, and a sampler of its peak (shared by the benchmarks)."""

import threading
import time


def rss_mb() -> float:
    """Current resident set size in MiB (Linux ``/proc``)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


class Peak:
    """``with Peak() as p: ...`` then ``p.extra``: peak RSS above the start, sampled every 5 ms."""

    def __enter__(self):
        self.base, self.peak, self.run = rss_mb(), rss_mb(), True
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self):
        while self.run:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.run = False
        self.extra = self.peak - self.base
