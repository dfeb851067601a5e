"""Rendering a spec into checked LLaVA samples, one sample at a time.

Sample ``i`` of a spec depends only on ``(spec, i)``: its generator draws every parameter from
``np.random.default_rng([seed, i])``, renders from the parameters alone and encodes PNG with
fixed settings, so any sample can be re-made on its own and a seed gives the same bytes.

Each sample stores ``metadata["synthetic"] = {generator, spec, seed, index, size, params,
answer}``; :func:`check_sample` re-derives the answer from the parameters (and checks the
pixels, see each generator) and returns the reason when they disagree. :func:`generate` yields
the samples that pass and quarantines the others (and repeated images, ``duplicate_image``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import xxhash

from mm_assets.core.records import (
    ASSISTANT,
    HUMAN,
    IMAGE_TOKEN,
    Quarantined,
    Sample,
    StageCounts,
)
from mm_assets.core.synth import charts, clocks, clocks_check, counting
from mm_assets.core.synth.draw import png_bytes

GENERATORS = {
    "clocks": SimpleNamespace(options=clocks.options, params=clocks.sample_params,
                              render=clocks.render, qa=lambda p, size: clocks.qa(p),
                              check=clocks_check.check),
    "counting": SimpleNamespace(options=counting.options, params=counting.sample_params,
                                render=counting.render, qa=counting.qa, check=counting.check),
    "charts": SimpleNamespace(options=charts.options, params=charts.sample_params,
                              render=charts.render, qa=charts.qa, check=charts.check),
}
STAGE = "synthetic"


def sample_key(spec_name: str, i: int) -> str:
    return f"{spec_name}_{i:06d}"


def make_sample(spec, i: int) -> Sample:
    """Sample ``i`` of ``spec`` (a :class:`~mm_assets.core.synth.spec.SynthSpec`)."""
    g = GENERATORS[spec.generator]
    rng = np.random.default_rng([spec.seed, i])
    params = g.params(rng, spec.size, spec.opts())
    image = png_bytes(g.render(params, spec.size))
    question, answer, structured = g.qa(params, spec.size)
    conv = [{"from": HUMAN, "value": f"{IMAGE_TOKEN}\n{question}"},
            {"from": ASSISTANT, "value": answer}]
    meta = {"synthetic": {"generator": spec.generator, "spec": spec.name, "seed": spec.seed,
                          "index": i, "size": spec.size, "params": params,
                          "answer": structured}}
    return Sample(sample_key(spec.name, i), conv, [image], ["png"], f"synthetic:{spec.name}",
                  meta)


def check_sample(s: Sample) -> str | None:
    """None when every stored answer follows from the stored parameters, else the reason."""
    m = s.metadata.get("synthetic")
    if not m or m.get("generator") not in GENERATORS:
        return "no_generator_parameters"
    if len(s.images) != 1 or len(s.conversations) != 2:
        return "bad_shape"
    human, gpt = (t["value"] for t in s.conversations)
    if not human.startswith(f"{IMAGE_TOKEN}\n"):
        return "bad_prompt"
    g = GENERATORS[m["generator"]]
    question = human[len(IMAGE_TOKEN) + 1:]
    try:
        reason = g.check(m["params"], question, gpt, s.images[0], m["size"])
        if reason is None and g.qa(m["params"], m["size"])[2] != m.get("answer"):
            return "structured_answer_mismatch"  # e.g. a stated tolerance that is not the rule's
        return reason
    except (KeyError, TypeError, ValueError, IndexError) as e:
        return f"bad_parameters_{type(e).__name__}"


ANSWER = {"clocks": "hour", "counting": "count", "charts": "bin"}


def answer_value(s: Sample):
    """The value whose distribution is reported: hour (1..12) for clocks, count for counting,
    the answer bin for charts (``value_decile:D``, ``position:I``, ``trend:up``, ...)."""
    m = s.metadata["synthetic"]
    return m["answer"][ANSWER[m["generator"]]]


@dataclass
class Stats:
    """Counts, quarantine reasons and answer distributions of a rendered range."""

    n_in: int = 0
    n_out: int = 0
    quarantined: Counter = field(default_factory=Counter)
    values: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)

    def as_json(self, expected: list | None = None) -> dict:
        """Counts and distributions; with ``expected`` (the value range) a chi-square test
        of uniformity over it (``statistic``, ``p_value``)."""
        out = {"n_in": self.n_in, "n_out": self.n_out,
               "quarantined": dict(sorted(self.quarantined.items())),
               "answer_distribution": {str(k): v for k, v in sorted(self.values.items())},
               "question_kinds": dict(sorted(self.kinds.items()))}
        if expected and self.n_out:
            from scipy.stats import chisquare

            obs = [self.values.get(v, 0) for v in expected]
            r = chisquare(obs)
            out["uniformity"] = {"test": "chi-square", "bins": len(expected),
                                 "statistic": round(float(r.statistic), 4),
                                 "p_value": round(float(r.pvalue), 6)}
        return out


def value_range(spec) -> list:
    """The answer values a spec draws uniformly from (hours 1..12, the count range; charts:
    the deciles of read values of bar/scatter charts and lines, ``value_decile:0..9``)."""
    if spec.generator == "clocks":
        return list(range(1, 13))
    if spec.generator == "charts":
        return [f"value_decile:{d}" for d in range(10)]
    o = spec.opts()
    return list(range(o.min_count, o.max_count + 1))


def make_checked(spec, lo: int, hi: int) -> list[tuple[Sample, str | None]]:
    """Samples ``lo..hi-1`` with their checker verdict (a module-level function: worker
    processes run it on chunks)."""
    return [(s, check_sample(s)) for s in (make_sample(spec, i) for i in range(lo, hi))]


def _chunks(spec, lo: int, hi: int, workers: int, chunk: int = 64
            ) -> Iterator[tuple[Sample, str | None]]:
    bounds = [(a, min(a + chunk, hi)) for a in range(lo, hi, chunk)]
    if workers <= 1 or len(bounds) <= 1:
        for a, b in bounds:
            yield from make_checked(spec, a, b)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        for part in ex.map(make_checked, [spec] * len(bounds), *zip(*bounds, strict=True)):
            yield from part


def generate(spec, lo: int = 0, hi: int | None = None, stats: Stats | None = None,
             quarantine: list[Quarantined] | None = None, seen: set | None = None,
             workers: int = 1) -> Iterator[Sample]:
    """Checked samples ``lo..hi-1`` of ``spec`` (default all ``spec.n``), in index order;
    failures go to ``quarantine`` with their reason, repeated image bytes (xxh3-128, over
    ``seen``) as ``duplicate_image``. ``workers`` > 1 renders chunks in that many processes
    (same output)."""
    stats = stats if stats is not None else Stats()
    quarantine = quarantine if quarantine is not None else []
    seen = seen if seen is not None else set()
    for s, reason in _chunks(spec, lo, spec.n if hi is None else hi, workers):
        i = s.metadata["synthetic"]["index"]
        stats.n_in += 1
        digest = xxhash.xxh3_128_digest(s.images[0])
        if reason is None and digest in seen:
            reason = "duplicate_image"
        if reason is not None:
            stats.quarantined[reason] += 1
            quarantine.append(Quarantined(s.key, STAGE, reason, f"{spec.generator} sample {i}",
                                          f"synthetic:{spec.name}#{i}"))
            continue
        seen.add(digest)
        stats.n_out += 1
        stats.values[answer_value(s)] += 1
        stats.kinds[s.metadata["synthetic"]["answer"].get("kind", spec.generator)] += 1
        yield s


def build_spec(store, spec, workers: int = 1) -> tuple[StageCounts, dict, list[str],
                                                        list[Quarantined]]:
    """Render ``spec`` into ``{root}/synthetic/{spec}/{i:05d}.tar`` (``shard_size`` samples
    each, stale shards of a larger earlier output removed) and ``stats.json``.

    Returns:
        counts (in = rendered, out = written, quarantined by reason), the stats written,
        the shard paths, the quarantined rows.
    """
    from mm_assets.core import layout
    from mm_assets.core.shards import write_shards

    stats, quarantine = Stats(), []
    paths = write_shards(store, layout.synthetic_dir(spec.name),
                         generate(spec, stats=stats, quarantine=quarantine, workers=workers),
                         spec.shard_size)
    out = {"spec": spec.name, "generator": spec.generator, "seed": spec.seed,
           "size": spec.size, "answer": ANSWER[spec.generator],
           **stats.as_json(value_range(spec)), "shards": paths}
    store.write_json(layout.synthetic_stats(spec.name), out)
    counts = StageCounts(stats.n_in, stats.n_out, Counter(), Counter(stats.quarantined))
    return counts, out, paths, quarantine


def render_only(spec, lo: int, hi: int) -> int:
    """Render and encode samples ``lo..hi-1`` without checking (benchmarks); returns bytes."""
    return sum(len(make_sample(spec, i).images[0]) for i in range(lo, hi))
