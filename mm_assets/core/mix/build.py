"""Building a mixture from its recipe's sources in bounded memory.

Pass 1 reads every source and keeps one :class:`~mm_assets.core.mix.draw.Candidate` per eligible sample (no
image bytes); :func:`~mm_assets.core.mix.draw.draw` picks the output order; pass 2 reads the sources again and
copies the drawn samples into a local spool file (offset index in memory); pass 3 writes the
shards in the drawn (shuffled) order by random reads from the spool. Memory is O(samples ×
~200 bytes) for the candidates plus one sample at a time; local disk holds the drawn samples
once. A source that changes between the passes (content digest differs) fails the build.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec
import polars as pl
import xxhash

from mm_assets.core import layout, schemas
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.interleaved.budget import collect_documents, document_wds, spool_documents
from mm_assets.core.mix.draw import Candidate, Draw, candidate, source_digest
from mm_assets.core.mix.recipe import Recipe, SourceSpec
from mm_assets.core.records import Quarantined, Sample, StageCounts
from mm_assets.core.shards import read_samples, write_shards
from mm_assets.core.storage import Store

ASSET_DIRS = {"raw": layout.RAW_SHARDS, "exact_dedup": layout.RAW_SHARDS,
              "curated": layout.CURATED, "merged": layout.MERGED, "rephrased": layout.REPHRASED}


def iter_source(store: Store, spec: SourceSpec, quarantine: list[Quarantined],
                removed: Counter) -> Iterator[Sample]:
    """Samples of one recipe source, in a fixed order.

    Asset sources are read from ``{root}/{asset}/*.tar`` (``exact_dedup`` = ``raw_shards``
    minus the rows ``exact_duplicates/groups.parquet`` marks ``remove``, counted in
    ``removed["exact_duplicate"]``). External sources are every ``*.tar`` under the ``wds``
    prefix (sorted), read like ingested WebDataset shards: LLaVA ``json`` or ``txt`` captions
    with image members; bad samples go to ``quarantine`` with their reason. Synthetic sources
    are the kept samples of the spec's committed ``synthetic_checked`` partition
    (``{root}/synthetic/{spec}/checked/*.tar``: rendered, verified, then deduplicated and
    filtered like the corpus).

    Raises:
        FileNotFoundError: an external prefix holds no ``.tar`` shard, or the synthetic spec
            has no committed ``synthetic_checked`` partition.
    """
    if spec.mined is not None:  # the shards of the mining recipe's committed `mined` partition
        yield from _mined_samples(store, spec)
        return
    if spec.synthetic is not None:
        from mm_assets.core.commits import read_commit

        rec = read_commit(store, "synthetic_checked", spec.synthetic)
        if rec is None:
            raise FileNotFoundError(f"source {spec.name!r}: synthetic spec {spec.synthetic!r} "
                                    f"has no committed synthetic_checked partition under "
                                    f"{store.url('')}: materialize synthetic[{spec.synthetic}] "
                                    f"and synthetic_checked[{spec.synthetic}] first")
        for rel in sorted(r for r in rec["outputs"] if r.endswith(layout.TAR)):
            with store.open_read(rel) as f:
                yield from read_samples(f)
        return
    if spec.asset is not None:
        folder, drop = ASSET_DIRS[spec.asset], set()
        if spec.asset == "exact_dedup":
            g = store.read_table(layout.EXACT_GROUPS,
                                 schemas.subset(schemas.EXACT_GROUPS, "key", "action"))
            drop = set(g.filter(pl.col("action") == "remove")["key"].to_list())
        for name in store.ls(folder, ".tar"):
            with store.open_read(layout.entry(folder, name)) as f:
                for s in read_samples(f):
                    if s.key in drop:
                        removed["exact_duplicate"] += 1
                    else:
                        yield s
        return
    fs, base = fsspec.core.url_to_fs(spec.wds)
    shards = sorted(p for p in fs.find(base) if p.endswith(".tar"))
    if not shards:
        raise FileNotFoundError(f"source {spec.name!r}: no .tar shards under {spec.wds}")
    for p in shards:
        header = {"kind": "webdataset", "input": fs.unstrip_protocol(p), "source": spec.name}
        q0 = len(quarantine)
        yield from build_samples(header, [], RawShardConfig(), quarantine)
        for q in quarantine[q0:]:
            q.stage = "mixtures"


def _mined_samples(store: Store, spec: SourceSpec) -> Iterator[Sample]:
    """Samples of ``mined/{recipe}/*.tar`` as the committed ``mined`` partition lists them.

    Raises:
        FileNotFoundError: the mining recipe has no committed ``mined`` partition, or it was
            mined against other centroids than the current ones (a re-cluster since).
    """
    from mm_assets.core.commits import read_commit

    rec = read_commit(store, "mined", spec.mined)
    if rec is None:
        raise FileNotFoundError(f"source {spec.name!r}: mining recipe {spec.mined!r} has no "
                                f"committed mined partition under {store.url('')}: "
                                f"materialize mined[{spec.mined}] first")
    from mm_assets.core.mine.pool_shard import stale_mined

    if stale_mined(store, spec.mined):  # its samples carry superseded cluster ids
        raise FileNotFoundError(f"source {spec.name!r}: mined[{spec.mined}] was mined against "
                                "other cluster centroids than the current clusters (re-clustered "
                                "since): re-mine it first: mm-assets run --select "
                                "pool_assign,mined --missing")
    for rel in sorted(r for r in rec["outputs"] if r.endswith(layout.TAR)):
        with store.open_read(rel) as f:
            yield from read_samples(f)


def answer_text(s: Sample) -> str:
    """The assistant turns of a sample, joined by newlines."""
    return "\n".join(t["value"] for t in s.conversations if t["from"] == "gpt")


@dataclass
class Candidates:
    """Pass 1: eligible candidates by key, the stage accounting, per-source facts."""

    cands: dict[str, Candidate] = field(default_factory=dict)
    counts: StageCounts = field(default_factory=StageCounts)
    sources: dict[str, dict] = field(default_factory=dict)
    quarantine: list[Quarantined] = field(default_factory=list)
    count_tokens: object = None  # text -> tokens, kept for pass 2 of interleaved sources
    unit_docs: dict[str, str] = field(default_factory=dict)  # document unit -> document key


def _keyed(recipe: Recipe, spec: SourceSpec, s: Sample) -> str:
    """Candidate key: external samples are keyed ``{name}-{key in the tar}`` already; asset
    samples get the ``{name}-`` prefix when the recipe has several sources."""
    own = spec.asset or spec.synthetic or spec.mined
    return f"{spec.name}-{s.key}" if len(recipe.sources) > 1 and own else s.key


def collect(store: Store, recipe: Recipe, clusters: dict[str, str], count_tokens
            ) -> Candidates:
    """Pass 1 over every source: filters (decile range, ``min_answer_tokens``), duplicate keys
    (quarantined ``duplicate_key``), a content digest per source, one candidate per eligible
    sample. ``clusters`` maps a source key to ``image:3``/``text:0``; ``count_tokens`` is
    ``text -> tokens``."""
    out, lo_hi = Candidates(count_tokens=count_tokens), recipe.deciles
    removed = out.counts.removed
    for spec in recipe.sources:
        if spec.interleaved is not None:  # documents: mm_assets.core.interleaved.budget
            collect_documents(store, recipe, spec, count_tokens, out)
            continue
        digest, n0, q0 = xxhash.xxh3_128(), out.counts.n_in, len(out.quarantine)
        dropped = removed["exact_duplicate"]
        for s in iter_source(store, spec, out.quarantine, removed):
            out.counts.n_in += 1
            source_digest(digest, s)
            key = _keyed(recipe, spec, s)
            if key in out.cands:
                out.quarantine.append(Quarantined(key, "mixtures", "duplicate_key",
                                                  f"key {s.key!r} appears twice", spec.name))
                continue
            if lo_hi != (0, 9) and not lo_hi[0] <= s.metadata.get("ppl_decile", -1) <= lo_hi[1]:
                removed["outside_deciles"] += 1
                continue
            if recipe.min_answer_tokens and count_tokens(answer_text(s)) < \
                    recipe.min_answer_tokens:
                removed["filtered_min_answer_tokens"] += 1
                continue
            cluster = clusters.get(s.key) or (  # a mined image carries its corpus cluster
                f"image:{s.metadata['cluster']}" if spec.mined and "cluster" in s.metadata
                else "none")
            try:
                out.cands[key] = candidate(s, cluster, count_tokens, spec.name, key,
                                           recipe.token_scheme)
            except ValueError:
                removed["unreadable_image_size"] += 1
        out.counts.n_in += removed["exact_duplicate"] - dropped  # read, then removed
        out.sources[spec.name] = {
            "asset": spec.asset, "wds": spec.wds, "synthetic": spec.synthetic,
            **({"mined": spec.mined} if spec.mined else {}),
            "digest_xxh3": digest.hexdigest(),
            "samples": out.counts.n_in - n0, "quarantined": len(out.quarantine) - q0,
            "eligible": sum(1 for c in out.cands.values() if c.origin == spec.name)}
    out.counts.n_in += sum(1 for q in out.quarantine if q.reason != "duplicate_key")
    for q in out.quarantine:
        out.counts.quarantined[q.reason] += 1
    return out


def write_mixture(store: Store, recipe: Recipe, prefix: str, d: Draw, found: Candidates
                  ) -> list[str]:
    """Passes 2 and 3: spool the drawn samples, write ``{prefix}/{i:05d}.tar`` in draw order
    (shard limits from the recipe). Each sample's metadata gains ``source_key``, ``origin`` and
    ``source_asset`` (asset name or WebDataset prefix); interleaved units are written in the
    stored document form (:func:`~mm_assets.core.interleaved.doc.to_wds`, ``meta`` extended).

    Raises:
        RuntimeError: a source changed since pass 1 (digest differs) or lost a drawn sample.
    """
    wanted = {ck for _, ck in d.order}
    specs = {s.name: s for s in recipe.sources}
    with tempfile.TemporaryDirectory(prefix="mm-mixture-") as tmp:
        index: dict[str, tuple[int, int]] = {}
        with open(os.path.join(tmp, "spool"), "w+b") as spool:
            def put(key: str, part) -> None:  # an interleaved document unit
                blob = pickle.dumps(part, protocol=5)
                index[key] = (spool.tell(), len(blob))
                spool.write(blob)

            for spec in recipe.sources:
                digest = xxhash.xxh3_128()
                if spec.interleaved is not None:
                    if spool_documents(store, recipe, spec, found, wanted, put) != \
                            found.sources[spec.name]["digest_xxh3"]:
                        raise RuntimeError(f"source {spec.name!r} changed while the mixture "
                                           f"was built (content digest differs); run it again")
                    continue
                for s in iter_source(store, spec, [], Counter()):
                    source_digest(digest, s)
                    key = _keyed(recipe, spec, s)
                    if key in wanted and key not in index:
                        blob = pickle.dumps((s.conversations, s.images, s.image_exts, s.source,
                                             s.metadata), protocol=5)
                        index[key] = (spool.tell(), len(blob))
                        spool.write(blob)
                if digest.hexdigest() != found.sources[spec.name]["digest_xxh3"]:
                    raise RuntimeError(f"source {spec.name!r} changed while the mixture was "
                                       f"built (content digest differs); run it again")
            spool.flush()
            lost = wanted - index.keys()
            if lost:
                raise RuntimeError(f"{len(lost)} drawn samples vanished from the sources, "
                                   f"e.g. {sorted(lost)[:3]}")
            fd = spool.fileno()

            def ordered() -> Iterator[Sample]:
                for out_key, ck in d.order:
                    off, n = index[ck]
                    c, got = found.cands[ck], pickle.loads(os.pread(fd, n, off))
                    spec = specs[c.origin]
                    if spec.interleaved is not None:
                        yield document_wds(got, out_key, {
                            "source_key": c.source_key, "origin": c.origin,
                            "source_asset": f"interleaved:{spec.interleaved}"})
                        continue
                    conv, images, exts, source, meta = got
                    yield Sample(out_key, conv, images, exts, source, {
                        **meta, "source_key": c.source_key, "origin": c.origin,
                        "source_asset": spec.asset or spec.wds
                        or (f"mined:{spec.mined}" if spec.mined else None)
                        or f"synthetic:{spec.synthetic}"})

            return write_shards(store, prefix, ordered(), *recipe.shard_limits)
