"""Synthetic samples through the corpus checks: hashing and dedup, text-quality flags,
perplexity — the same core functions the corpus stages call, applied to one spec.

Design (issue 17, option (a)): a per-spec stage downstream of the rendered shards, not an
ingest of synthetic shards as corpus shards. Ingesting them would give rendered samples
corpus shard ids, mix them into the corpus-wide global stages (clusters, SemDeDup, perplexity
deciles, curated) and into the corpus funnel, and lose the spec as the unit of lineage (one
partition per spec, re-rendered as a whole when the spec changes). Here the spec stays the
partition: ``synthetic[spec]`` renders and verifies answers, ``synthetic_checked[spec]``
applies the corpus checks, and mixtures read only its kept samples.

Checks, with the function each reuses:

- hashes: :func:`mm_assets.core.dedup.hashing.hash_image` and
  :func:`mm_assets.core.dedup.exact.hash_row` (the ``image_hashes`` table schema);
- exact duplicates within the spec: :func:`mm_assets.core.dedup.exact.exact_groups` with
  policy ``keep_one`` (pixel-list hash; the smallest key is kept) — reason
  ``exact_duplicate``;
- exact duplicates of a corpus image (the committed ``image_hashes`` shards, streamed one
  shard at a time, joined on pixel hashes) — reason ``corpus_duplicate``;
- pHash near duplicates: :func:`mm_assets.core.dedup.near.near_duplicate_groups` (star
  groups); recorded in ``near_group``, removed (reason ``near_duplicate``) only with
  ``near_action="remove"``: a 64-bit pHash barely sees clock hands or bar heights
  (measured on the first 400 samples of the shipped specs at 384 px, none byte- or
  pixel-identical: clocks 12 pairs within 4 bits and 60 within 6, charts 5 and 22,
  counting none within 10), and pairs grow with the square of n, so removing them would
  remove distinct answers;
- text-quality flags: :func:`mm_assets.core.quality.text_flags.flag_rows`; the flags in
  ``text_filters`` remove (reason ``text_<flag>``, first in ``text_filters`` order, as
  ``curated`` does). ``repetition`` is recorded but not a default filter here: pointing
  answers repeat ``<point x=".." y="..">`` by design and 80 % of ``counting_v1`` answers
  trip the Gopher repetition rule (321 of 400 measured);
- perplexity: any ``samples -> PPL_SCORES table`` scorer (the ``lm`` resource's
  :func:`mm_assets.core.quality.ppl.build_scorer`: a causal LM or KenLM); with ``max_ppl``
  > 0 a higher assistant perplexity removes (``ppl_above_max``).

Memory: one rendered shard of samples at a time (two passes over the shards), plus the hash,
flag and perplexity tables of the spec (~300 bytes per sample) and, against the corpus, one
corpus hash shard at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.dedup.exact import exact_groups, hash_row, hash_table
from mm_assets.core.dedup.hashing import hash_image
from mm_assets.core.dedup.near import near_duplicate_groups
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS
from mm_assets.core.quality.text_flags import (
    DEFAULT_FILTERS,
    FLAG_SCHEMA,
    FLAGS,
    TextQualityConfig,
    flag_rows,
)
from mm_assets.core.records import Quarantined, Sample, StageCounts
from mm_assets.core.shards import read_samples, write_shards
from mm_assets.core.storage import Store

STAGE = "synthetic_checked"
SYNTH_FILTERS = tuple(f for f in DEFAULT_FILTERS if f != "repetition")
Scorer = Callable[[list[Sample]], pl.DataFrame]


@dataclass(frozen=True, slots=True)
class SynthCheckConfig:
    """Settings of the corpus checks on one synthetic spec.

    Attributes:
        near_threshold: pHash Hamming radius (bits of 64) of near-duplicate groups.
        near_action: ``record`` (groups in the decisions table only) or ``remove`` (all but
            each group's leader removed, reason ``near_duplicate``).
        against_corpus: also remove samples whose image pixels equal an image of the
            committed corpus ``image_hashes`` (reason ``corpus_duplicate``).
        text_filters: text-quality flags that remove a sample (reason ``text_<flag>``).
        max_ppl: remove samples whose assistant perplexity is above this
            (``ppl_above_max``); 0 = score only.
        max_pixels: pixel cap when decoding images for pixel and perceptual hashes.
    """

    near_threshold: int = 4
    near_action: Literal["record", "remove"] = "record"
    against_corpus: bool = True
    text_filters: tuple[str, ...] = SYNTH_FILTERS
    max_ppl: float = 0.0
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not 0 <= self.near_threshold < 64:
            raise ValueError(f"near_threshold must be in [0, 64), got {self.near_threshold}")
        if self.near_action not in ("record", "remove"):
            raise ValueError(f"near_action must be record or remove, got {self.near_action!r}")
        unknown = sorted(set(self.text_filters) - set(FLAGS))
        if unknown:
            raise ValueError(f"unknown text filter(s) {unknown}; known: {list(FLAGS)}")
        if self.max_ppl < 0:
            raise ValueError(f"max_ppl must be >= 0 (0 = no filter), got {self.max_ppl}")


@dataclass
class Checked:
    """What :func:`check_spec` wrote and decided.

    Attributes:
        counts: in = samples read from the rendered shards; out = kept; removed and
            quarantined by reason.
        decisions: :data:`~mm_assets.core.schemas.SYNTHETIC_DECISIONS`, one row per hashed key.
        paths: kept shards, then the tables, then ``stats.json`` (storage-relative).
        quarantine: samples whose image does not decode (the decoder's reason, e.g.
            ``corrupt_image``).
        stats: the JSON written to ``stats.json``.
    """

    counts: StageCounts
    decisions: pl.DataFrame
    paths: list[str]
    quarantine: list[Quarantined] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _read(store: Store, rel: str) -> list[Sample]:
    with store.open_read(rel) as f:
        return list(read_samples(f))


def corpus_matches(store: Store, hashes: pl.DataFrame) -> dict[str, str]:
    """Synthetic key -> the smallest corpus key sharing one of its images' pixel hash, over
    the committed ``image_hashes`` shards (one shard read at a time; none committed: no
    match)."""
    from mm_assets.core.commits import read_commits

    mine = hashes.select("key", pl.col("pixel_hashes").alias("h")).explode("h").drop_nulls()
    cols = schemas.subset(schemas.IMAGE_HASHES, "key", "pixel_hashes")
    found: list[pl.DataFrame] = []
    for shard in read_commits(store, "image_hashes"):
        corpus = (store.read_table(layout.image_hashes(shard), cols)
                  .select(pl.col("key").alias("corpus_key"), pl.col("pixel_hashes").alias("h"))
                  .explode("h"))
        found.append(mine.join(corpus, on="h"))
    if not found:
        return {}
    hits = pl.concat(found).group_by("key").agg(pl.col("corpus_key").min())
    return dict(hits.iter_rows())


def decide(hashes: pl.DataFrame, flags: pl.DataFrame, ppl: pl.DataFrame,
           corpus: dict[str, str], cfg: SynthCheckConfig) -> pl.DataFrame:
    """One decision per row of ``hashes`` (key order), the first reason that applies in the
    order ``exact_duplicate``, ``corpus_duplicate``, ``near_duplicate``, ``text_<flag>``,
    ``ppl_above_max``.

    Args:
        hashes: :data:`~mm_assets.core.schemas.IMAGE_HASHES` rows of the spec.
        flags: :data:`~mm_assets.core.schemas.TEXT_QUALITY` rows of the same keys.
        ppl: :data:`~mm_assets.core.schemas.PPL_SCORES` rows of the same keys.
        corpus: key -> corpus key with identical pixels (:func:`corpus_matches`).
        cfg: the settings.

    Returns:
        :data:`~mm_assets.core.schemas.SYNTHETIC_DECISIONS`.
    """
    exact = exact_groups(hashes, "keep_one").filter(pl.col("action") == "remove")
    dup_of = dict(exact.select("key", "representative").iter_rows())
    near = near_duplicate_groups(hashes, cfg.near_threshold)
    group = dict(near.select("key", "near_group").iter_rows())
    per_key: dict[str, list[str]] = {}
    for k, f in flags.select("key", "flag").unique(maintain_order=True).iter_rows():
        per_key.setdefault(k, []).append(f)
    score = dict(ppl.select("key", "ppl").iter_rows()) if ppl.height else {}
    rows = []
    for k in sorted(hashes["key"].to_list()):
        have, p, of = per_key.get(k, []), score.get(k), dup_of.get(k) or corpus.get(k)
        hit = [f for f in cfg.text_filters if f in have]
        reason = ("exact_duplicate" if k in dup_of else "corpus_duplicate" if k in corpus
                  else "near_duplicate" if cfg.near_action == "remove" and k in group
                  and group[k] != k
                  else f"text_{hit[0]}" if hit
                  else "ppl_above_max" if cfg.max_ppl and p is not None and p > cfg.max_ppl
                  else None)
        rows.append({"key": k, "status": "removed" if reason else "kept", "reason": reason,
                     "duplicate_of": of if reason in ("exact_duplicate", "corpus_duplicate")
                     else None, "near_group": group.get(k), "ppl": p, "flags": have})
    return pl.DataFrame(rows, schema=schemas.SYNTHETIC_DECISIONS)


def _hash_pass(store: Store, shards: list[str], score: Scorer | None, cfg: SynthCheckConfig
               ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, list[Quarantined]]:
    """Pass 1, one shard at a time: hashes, flags and perplexity of every decodable sample."""
    rows, flag_parts, ppl_parts, quarantine = [], [], [], []
    tq = TextQualityConfig()
    for rel in shards:
        good = []
        for s in _read(store, rel):
            hs = [hash_image(b, cfg.max_pixels) for b in s.images]
            bad = next((h.error for h in hs if h.error), None)
            if bad:
                quarantine.append(Quarantined(s.key, STAGE, bad,
                                              f"image does not decode: {bad}", rel))
                continue
            rows.append(hash_row(s, hs))
            good.append(s)
        flag_parts.append(pl.DataFrame(list(flag_rows(good, tq)), schema=FLAG_SCHEMA))
        if score is not None and good:
            ppl_parts.append(score(good))
    ppl = (pl.concat(ppl_parts) if ppl_parts
           else pl.DataFrame([], schema=schemas.PPL_SCORES))
    flags = pl.concat(flag_parts) if flag_parts else pl.DataFrame([], schema=FLAG_SCHEMA)
    return hash_table(rows), flags, ppl, quarantine


def check_spec(store: Store, spec, shards: list[str], score: Scorer | None,
               cfg: SynthCheckConfig) -> Checked:
    """Apply the corpus checks to the rendered shards of ``spec`` and write
    ``synthetic/{spec}/checked/``: kept samples ``{i:05d}.tar`` (``spec.shard_size`` each,
    in key order), ``decisions``/``hashes``/``text_quality``/``ppl`` tables and ``stats.json``.

    Args:
        store: storage root.
        spec: the :class:`~mm_assets.core.synth.spec.SynthSpec` rendered.
        shards: its rendered shard paths (the ``synthetic`` commit record's outputs).
        score: perplexity scorer (None: no scores, ``ppl`` null, ``max_ppl`` inert).
        cfg: the settings.

    Raises:
        FileNotFoundError: a rendered shard is missing.
        RuntimeError: the rendered shards changed between the two passes.
    """
    from mm_assets.core.synth.generate import Stats, answer_value, value_range

    hashes, flags, ppl, quarantine = _hash_pass(store, shards, score, cfg)
    corpus = corpus_matches(store, hashes) if cfg.against_corpus else {}
    decisions = decide(hashes, flags, ppl, corpus, cfg)
    kept = set(decisions.filter(pl.col("status") == "kept")["key"].to_list())
    stats = Stats()

    def kept_samples() -> Iterator[Sample]:
        for rel in shards:
            for s in _read(store, rel):
                if s.key in kept:
                    stats.n_out += 1
                    stats.values[answer_value(s)] += 1
                    stats.kinds[s.metadata["synthetic"]["answer"].get("kind",
                                                                      spec.generator)] += 1
                    yield s

    paths = write_shards(store, layout.synthetic_checked_dir(spec.name), kept_samples(),
                         spec.shard_size)
    if stats.n_out != len(kept):
        raise RuntimeError(f"synthetic[{spec.name}]: {len(kept)} samples kept but "
                           f"{stats.n_out} written: the rendered shards changed during the "
                           "check; run it again")
    tables = {"decisions": (decisions, schemas.SYNTHETIC_DECISIONS),
              "hashes": (hashes, schemas.IMAGE_HASHES),
              "text_quality": (flags, schemas.TEXT_QUALITY), "ppl": (ppl, schemas.PPL_SCORES)}
    for name, (df, schema) in tables.items():
        store.write_table(layout.synthetic_checked_table(spec.name, name), df, schema)
    counts = StageCounts(hashes.height + len(quarantine), len(kept))
    counts.removed.update(Counter(r for r in decisions["reason"].to_list() if r))
    counts.quarantined.update(Counter(q.reason for q in quarantine))
    stats.n_in = counts.n_in
    scored = ppl["ppl"].drop_nulls() if ppl.height else pl.Series([], dtype=pl.Float64)
    out = {"spec": spec.name, "generator": spec.generator, **counts.as_metadata(),
           "kept": stats.as_json(value_range(spec)),
           "near_groups": decisions["near_group"].drop_nulls().n_unique(),
           "samples_in_near_groups": decisions["near_group"].drop_nulls().len(),
           "flags": dict(Counter(f for fs in decisions["flags"].to_list() for f in fs)),
           "ppl": {"scored": scored.len(),
                   **({q: round(float(scored.quantile(v)), 3) for q, v in
                       (("p10", 0.1), ("median", 0.5), ("p90", 0.9))} if scored.len() else {})},
           "config": {"near_threshold": cfg.near_threshold, "near_action": cfg.near_action,
                      "against_corpus": cfg.against_corpus,
                      "text_filters": list(cfg.text_filters), "max_ppl": cfg.max_ppl}}
    store.write_json(layout.synthetic_checked_stats(spec.name), out)
    table_paths = [layout.synthetic_checked_table(spec.name, n) for n in tables]
    return Checked(counts, decisions, [*paths, *table_paths,
                                       layout.synthetic_checked_stats(spec.name)],
                   quarantine, out)
