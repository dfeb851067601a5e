"""Rephrasing as a stream: samples in, rephrased samples out, in order, with bounded memory.

The same rewrites as :func:`~mm_assets.core.text.rephrase.rephrase_samples` (which needs every
sample in a list): the same assistant turns are looked up in the cache, the cache misses go to
the model in the same batches (consecutive ``batch_size`` misses in sample and turn order, so
a local model sees the same padded batches and gives the same greedy outputs), and each sample
is assembled the same way (fidelity check, counts, ``metadata["rephrased"]``). A turn counts
as a cache hit only when its rewrite was cached before this call (a text repeated within the
run is generated again, as the list version does). ``tests/core/text/test_rephrase_stream.py``
compares both on the same inputs, cache and backend.

Memory model: the turns waiting for their batch (< ``batch_size`` texts), the first
``hold`` samples waiting behind them in memory, and ≈ 150 B per further waiting sample (its
spool offset and result slots; the sample itself is pickled to a local spool file, as in
:mod:`.merge_stream`). Samples wait only while an earlier sample has a turn not yet generated:
with no cache miss pending, each sample goes out as soon as it is read. Plus the set of cache
entries written by this call (≈ 100 B per generated turn).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from mm_assets.core import layout
from mm_assets.core.records import ASSISTANT, Sample
from mm_assets.core.storage import Store
from mm_assets.core.text.fidelity import Completion, fidelity_problem
from mm_assets.core.text.merge_stream import _Spool
from mm_assets.core.text.rephrase import TEMPLATES, RephraseConfig, cache_key, clean_output

LOG = logging.getLogger("mm_assets.progress")


class _Waiting:
    """One sample waiting for its turns: in memory, or spooled (``at``)."""

    __slots__ = ("at", "open", "results", "sample")

    def __init__(self, sample: Sample | None, at: tuple[int, int] | None):
        self.sample, self.at = sample, at
        self.results: dict[int, Completion] = {}
        self.open = 0  # turns not generated yet


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def assemble(s: Sample, results: dict[int, Completion], cfg: RephraseConfig,
             counts: dict[str, int]) -> Sample:
    """A sample with its accepted rewrites (turn index -> completion); each rewrite failing
    the fidelity check keeps the original text and counts its reason."""
    conv = [dict(t) for t in s.conversations]
    done = 0
    for j, t in enumerate(conv):
        if j not in results:
            continue
        rewrite = results[j]
        problem = fidelity_problem(t["value"], rewrite, rewrite.truncated)
        if problem:
            _bump(counts, problem)
        else:
            t["value"], done = str(rewrite), done + 1
            _bump(counts, "rephrased")
    meta = dict(s.metadata, rephrased=done, rephrase_template=cfg.template if done else None)
    return Sample(s.key, conv, s.images, s.image_exts, s.source, meta)


def rephrase_stream(samples: Iterable[Sample],
                    generate: Callable[[list[str]], list[str | Completion | None]],
                    model_name: str, cfg: RephraseConfig, cache: Store, counts: dict[str, int],
                    seen: dict[str, int] | None = None, hold: int = 64,
                    spool_dir: str | None = None) -> Iterator[Sample]:
    """Rewrite the assistant turns of the first ``cfg.max_samples`` samples, streaming.

    Args:
        samples: input samples in order (read once, lazily).
        generate, model_name, cfg, cache, counts: as
            :func:`~mm_assets.core.text.rephrase.rephrase_samples`.
        seen: receives ``samples`` (read so far) and ``spooled`` (samples that waited on disk).
        hold: samples kept in memory while waiting; later ones are spooled.
        spool_dir: folder of the spool file (default: the system temp folder).

    Yields:
        The rewritten samples, same keys and order (``metadata["rephrased"]`` per sample).
    """
    seen = {} if seen is None else seen
    seen.update(samples=0, spooled=0)
    written: set[str] = set()
    todo: list[tuple[_Waiting, int, str, str]] = []  # cache misses waiting for a batch
    waiting: deque[_Waiting] = deque()
    spool = _Spool(spool_dir)
    clock = {"t0": time.monotonic(), "last": time.monotonic(), "turns": 0}

    def run_batch(chunk) -> None:
        outs = generate([TEMPLATES[cfg.template].format(text=t) for _, _, t, _ in chunk])
        for (w, j, _, rel), out in zip(chunk, outs, strict=True):
            w.open -= 1
            if out is None:  # the backend failed for good: keep the original, not cached
                _bump(counts, "backend_error")
                continue
            truncated = bool(getattr(out, "truncated", False))
            w.results[j] = Completion(clean_output(out), truncated)
            cache.write_json(rel, {"output": str(w.results[j]), "truncated": truncated,
                                   "model": model_name, "template": cfg.template})
            written.add(rel)
        clock["turns"] += len(chunk)
        now = time.monotonic()
        if now - clock["last"] >= 10:
            clock["last"] = now
            LOG.info(f"rephrase: {seen['samples']} samples read, {clock['turns']} turns "
                     f"generated ({clock['turns'] / max(now - clock['t0'], 1e-9):.2f}/s)")

    def ready() -> Iterator[Sample]:
        while waiting and waiting[0].open == 0:
            w = waiting.popleft()
            yield assemble(w.sample if w.sample is not None else spool.get(*w.at), w.results,
                           cfg, counts)

    try:
        for i, s in enumerate(samples):
            seen["samples"] += 1
            spill = len(waiting) >= hold
            w = _Waiting(None if spill else s, spool.put(s) if spill else None)
            seen["spooled"] += spill
            if cfg.max_samples is None or i < cfg.max_samples:
                for j, t in enumerate(s.conversations):
                    if t["from"] != ASSISTANT:
                        continue
                    rel = layout.rephrase_cache(cache_key(model_name, cfg.template, t["value"]))
                    if rel not in written and cache.exists(rel):
                        hit = cache.read_json(rel)
                        w.results[j] = Completion(hit["output"], bool(hit.get("truncated")))
                        _bump(counts, "cache_hits")
                    else:
                        todo.append((w, j, t["value"], rel))
                        w.open += 1
            waiting.append(w)
            while len(todo) >= cfg.batch_size:
                run_batch(todo[:cfg.batch_size])
                del todo[:cfg.batch_size]
            yield from ready()
        if todo:
            run_batch(todo)
            todo.clear()
        yield from ready()
    finally:
        spool.close()
