"""Long steps report progress through the ``mm_assets.progress`` logger."""

import logging

from mm_assets.core.progress import Progress


def test_progress_logs_at_most_every_interval_and_at_the_end(caplog):
    caplog.set_level(logging.INFO, logger="mm_assets.progress")
    p = Progress("rephrase", 5, "turns", every_s=3600)
    for _ in range(5):
        p.add()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("rephrase: 5/5 turns")
    caplog.clear()
    q = Progress("perplexity", 3, "samples", every_s=0)
    q.add(2)
    q.add(1)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "perplexity: 2/3 samples", "perplexity: 3/3 samples"]
