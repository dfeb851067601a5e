"""The storage layout: every path under the storage root, in one place.

Paths are relative, ``/``-separated and resolved by :class:`~mm_assets.core.storage.Store`.
No other module spells a root folder or file name (``tests/core/test_layout.py`` says so);
the tables handed between stages have their declared schemas in :mod:`mm_assets.core.schemas`.
``{shard}`` is an ingest shard id (``000000``), ``{i}`` a 5-digit output shard number::

    {root}/
      incoming/                          drop folder the new-data sensor watches (users)
      inputs/{shard}.jsonl               ingest manifests, one per shard (plan_ingest)
      inputs/_state.json  _ingest.lock   ingest state (inputs seen, next id) and its lock
      inputs/_reingest/{shard}.jsonl     manifests staged by ingest --force (moved, then gone)
      recipes/{name}.yaml                the root's own mixture recipes (users)
      raw_shards/{shard}.tar             canonical WebDataset shards (raw_shards)
      raw_shards/{shard}.hashes.parquet  image hashes computed while validating (raw_shards)
      quarantine/{stage}/{part}.parquet  unusable records with their reason (any stage)
      image_hashes/{shard}.parquet       per-sample hashes (image_hashes)
      exact_duplicates/                  groups, group_sizes, near_groups.parquet
                                         (exact_duplicates)
      image_embeddings/{fp}/{seg}.npy|.parquet  per-image vectors by encoder (embeddings)
      embeddings/{shard}/                image|text .npy + image|text_keys.parquet, encoder.json
                                         (embeddings)
      clusters/                          assignments.parquet, centroids_{space}.npy, contact
                                         sheet PNG (clusters)
      semdedup/                          scores.parquet, example_pairs.png (semdedup)
      semdedup_ranges/plan.json          SemDeDup cluster ranges of the current plan (semdedup_plan)
      semdedup_ranges/jobs|scores/{key}.parquet  per range: its points / its scores (+ .json
                                         sidecar) (semdedup_plan / semdedup_range)
      text_quality/{shard}.parquet       formatting flags (text_quality)
      ppl_scores/{shard}.parquet         perplexities (ppl_scores)
      ppl_deciles/                       deciles.parquet, edges.json (ppl_deciles)
      curated/{shard}.tar|.decisions.parquet  kept samples, every decision (curated)
      curated/_index/{fp}/{shard}.parquet     global decision tables split by shard (curated)
      merged/{i}.tar  rephrased/{i}.tar  merged and rephrased conversations (merged, rephrased)
      cache/rephrase/{key}.json          one cached rewrite per (model, template, text) (rephrased)
      mixtures/{recipe}/                 {i}.tar, manifest.json, lineage.json, index.parquet
                                         (mixtures; index: mm_assets.loader.export_index)
      synthetic/{spec}.yaml              the root's own synthetic-data specs (users)
      synthetic/{spec}/                  {i}.tar, stats.json (synthetic; rendered samples)
      synthetic/{spec}/checked/          {i}.tar kept samples, decisions|hashes|text_quality|ppl
                                         .parquet, stats.json (synthetic_checked)
      pools/{pool}.yaml                  a registered external image pool (mm-assets pool add)
      pools/{pool}/{stem}.parquet|.npy|.json  per pool shard: assignment table, N×D float16
                                         vectors, encoder sidecar (pool_assign)
      mining/{recipe}.yaml               the root's own mining recipes (users)
      mined/{recipe}/                    {i}.tar, manifest.json, selection.parquet (mined;
                                         pool images chosen per corpus cluster)
      doc_inputs/{shard}.json  _state.json  interleaved ingest manifests (record range of
                                         one input) and state (mm-assets interleaved ingest)
      docs/{shard}.tar                   interleaved document shards, MINT-1T style json +
                                         {pos}.{ext} images (interleaved_docs)
      doc_hashes/{shard}.parquet|.docs.parquet  per image / per document hashes (doc_hashes)
      doc_repeats/                       images.parquet groups.parquet documents.parquet:
                                         repeated images, duplicate documents (doc_repeats)
      doc_repeats/shards/{shard}.parquet  the removals of one doc shard (doc_repeats)
      doc_quality/{shard}.flags|.ppl.parquet  text-segment flags, perplexity (doc_quality)
      docs_curated/{shard}.tar|.decisions.parquet  documents after the policies (docs_curated)
      doc_embeddings/{shard}.npy|.parquet  document image vectors (M×D float16) + (key, pos)
                                         (doc_embeddings); clusters/ assignments (doc_clusters)
      reports/funnel.html                the corpus funnel (report, mm-assets report)
      reports/ablations.html             mixtures x benchmarks (ablations, mm-assets eval compare)
      incoming_evals/{mixture}/          eval-results drop folder the eval sensor watches (users)
      evals/{mixture}/{digest}/{file}.parquet  recorded eval results of one results file,
                                         by mixture content digest (eval_results, mm-assets
                                         eval record; append-only)
      _commits/{asset}/{partition}.json  commit record, written last by each partition
"""

from __future__ import annotations

# ------------------------------------------------------------------ root folders
INCOMING = "incoming"
INPUTS = "inputs"
RECIPES = "recipes"
RAW_SHARDS = "raw_shards"
QUARANTINE = "quarantine"
IMAGE_HASHES = "image_hashes"
EXACT_DUPLICATES = "exact_duplicates"
IMAGE_EMBEDDINGS = "image_embeddings"
EMBEDDINGS = "embeddings"
CLUSTERS = "clusters"
SEMDEDUP = "semdedup"
TEXT_QUALITY = "text_quality"
PPL_SCORES = "ppl_scores"
PPL_DECILES = "ppl_deciles"
CURATED = "curated"
MERGED = "merged"
REPHRASED = "rephrased"
CACHE = "cache"
MIXTURES = "mixtures"
REPORTS = "reports"
INCOMING_EVALS = "incoming_evals"
EVALS = "evals"
SYNTHETIC = "synthetic"
POOLS = "pools"
MINING = "mining"
MINED = "mined"
COMMITS = "_commits"

#: every top-level folder of the root
ROOT_FOLDERS = (INCOMING, INPUTS, RECIPES, RAW_SHARDS, QUARANTINE, IMAGE_HASHES,
                EXACT_DUPLICATES, IMAGE_EMBEDDINGS, EMBEDDINGS, CLUSTERS, SEMDEDUP, TEXT_QUALITY,
                PPL_SCORES, PPL_DECILES, CURATED, MERGED, REPHRASED, CACHE, MIXTURES, REPORTS,
                INCOMING_EVALS, EVALS,
                SYNTHETIC, POOLS, COMMITS)
ROOT_FOLDERS += (MINING, MINED)
# interleaved documents (mm_assets.core.interleaved; assets/interleaved.py)
DOC_INPUTS, DOCS, DOC_HASHES = "doc_inputs", "docs", "doc_hashes"
DOC_REPEATS, DOC_QUALITY, DOCS_CURATED = "doc_repeats", "doc_quality", "docs_curated"
ROOT_FOLDERS += (DOC_INPUTS, DOCS, DOC_HASHES, DOC_REPEATS, DOC_QUALITY, DOCS_CURATED)
DOC_EMBEDDINGS = "doc_embeddings"
ROOT_FOLDERS += (DOC_EMBEDDINGS,)

GLOBAL = "all"  # partition name of a global asset's commit record


def entry(folder: str, name: str) -> str:
    """``{folder}/{name}``: an entry of ``folder`` as :meth:`Store.ls` names it."""
    return f"{folder}/{name}"


def stem(name: str, suffix: str) -> str:
    """``name`` without ``suffix`` (a listed file name back to its shard id)."""
    return name[: -len(suffix)] if suffix else name


# ------------------------------------------------------------------ ingest
INGEST_STATE = f"{INPUTS}/_state.json"
"""Ingest state: inputs already ingested (fingerprint -> shards), next shard id, slugs."""
INGEST_LOCK = f"{INPUTS}/_ingest.lock"
"""The root's ingest lock (one ingest at a time; see :mod:`mm_assets.core.ingest.lock`)."""
MANIFEST_SUFFIX = ".jsonl"


def manifest(shard: str) -> str:
    """Ingest manifest of one shard: a header line, then one source record per line."""
    return f"{INPUTS}/{shard}{MANIFEST_SUFFIX}"


REINGEST_STAGING = f"{INPUTS}/_reingest"
"""Manifests of a forced re-ingest, written here first and moved over the live ones only once
the whole input is planned (``mm-assets ingest --force``; :mod:`mm_assets.core.ingest.reingest`)."""


def reingest_manifest(shard: str) -> str:
    """Staged manifest of one shard during ``ingest --force``."""
    return f"{REINGEST_STAGING}/{shard}{MANIFEST_SUFFIX}"


def recipe(file_name: str) -> str:
    """A root recipe by file name (``{name}.yaml``)."""
    return f"{RECIPES}/{file_name}"


# ------------------------------------------------------------------ per-shard stage outputs
TAR = ".tar"
PARQUET = ".parquet"
DECISIONS_SUFFIX = ".decisions.parquet"


def shard_tar(folder: str, shard: str) -> str:
    """``{folder}/{shard}.tar``: one shard of a per-shard WebDataset asset."""
    return f"{folder}/{shard}{TAR}"


def numbered_tar(prefix: str, i: int) -> str:
    """``{prefix}/{i:05d}.tar``: output shard ``i`` of merged, rephrased or a mixture."""
    return f"{prefix}/{i:05d}{TAR}"


def raw_shard(shard: str) -> str:
    """Canonical WebDataset shard of one ingest manifest (raw_shards)."""
    return shard_tar(RAW_SHARDS, shard)


def recorded_hashes(shard: str) -> str:
    """Image hashes raw_shards computed while validating (reused by image_hashes)."""
    return f"{RAW_SHARDS}/{shard}.hashes{PARQUET}"


def quarantine_dir(stage: str) -> str:
    return f"{QUARANTINE}/{stage}"


def quarantine(stage: str, part: str) -> str:
    """Quarantine table of one stage and partition (shard id or recipe name)."""
    return f"{QUARANTINE}/{stage}/{part}{PARQUET}"


def image_hashes(shard: str) -> str:
    """Per-sample hash table of one shard (image_hashes)."""
    return f"{IMAGE_HASHES}/{shard}{PARQUET}"


def text_quality(shard: str) -> str:
    """Formatting flags of one shard (text_quality)."""
    return f"{TEXT_QUALITY}/{shard}{PARQUET}"


def ppl_scores(shard: str) -> str:
    """Perplexity table of one shard (ppl_scores)."""
    return f"{PPL_SCORES}/{shard}{PARQUET}"


def curated_shard(shard: str) -> str:
    """Kept samples of one shard (curated)."""
    return shard_tar(CURATED, shard)


def curated_decisions(shard: str) -> str:
    """Every key of one shard: kept / removed + reason (curated)."""
    return f"{CURATED}/{shard}{DECISIONS_SUFFIX}"


CURATED_INDEXES = f"{CURATED}/_index"
"""Folder of the per-shard indexes of curated's global tables, one per table version."""


def curated_index_dir(fingerprint: str) -> str:
    """Per-shard split of the global decision tables, named by their fingerprint (curated)."""
    return f"{CURATED_INDEXES}/{fingerprint}"


def curated_index(fingerprint: str, shard: str) -> str:
    return f"{curated_index_dir(fingerprint)}/{shard}{PARQUET}"


# ------------------------------------------------------------------ embeddings
def embeddings_dir(shard: str) -> str:
    return f"{EMBEDDINGS}/{shard}"


def embedding_vectors(shard: str, space: str) -> str:
    """(N, D) float16 vectors of one shard and space (``image`` / ``text``)."""
    return f"{EMBEDDINGS}/{shard}/{space}.npy"


def embedding_keys(shard: str, space: str) -> str:
    """Keys of the rows of :func:`embedding_vectors`, in order."""
    return f"{EMBEDDINGS}/{shard}/{space}_keys{PARQUET}"


def embedding_encoder(shard: str) -> str:
    """Identity of the image encoder that wrote one shard's vectors (JSON: model, weights
    checksum, D, fingerprint); read by pool_assign to refuse another encoder."""
    return f"{EMBEDDINGS}/{shard}/encoder.json"


def image_embeddings_dir(fingerprint: str) -> str:
    """Content-addressed per-image vectors of one encoder (see ``embed_cache``)."""
    return f"{IMAGE_EMBEDDINGS}/{fingerprint}"


def image_embeddings_segment(fingerprint: str, segment: str, ext: str) -> str:
    """One segment of :func:`image_embeddings_dir`: ``npy`` vectors or ``parquet`` table."""
    return f"{IMAGE_EMBEDDINGS}/{fingerprint}/{segment}.{ext}"


# ------------------------------------------------------------------ global stage outputs
EXACT_GROUPS = f"{EXACT_DUPLICATES}/groups{PARQUET}"
"""Exact-duplicate groups and the policy's action per member (exact_duplicates)."""
EXACT_GROUP_SIZES = f"{EXACT_DUPLICATES}/group_sizes{PARQUET}"
NEAR_GROUPS = f"{EXACT_DUPLICATES}/near_groups{PARQUET}"
"""pHash near-duplicate groups (exact_duplicates)."""
CLUSTER_ASSIGNMENTS = f"{CLUSTERS}/assignments{PARQUET}"
"""Cluster id and distance to its centroid per (key, space) (clusters)."""
CLUSTER_SHEET = f"{CLUSTERS}/contact_sheet_image.png"
SEMDEDUP_SCORES = f"{SEMDEDUP}/scores{PARQUET}"
"""SemDeDup score and decision per (key, space) (semdedup)."""
SEMDEDUP_PAIRS = f"{SEMDEDUP}/example_pairs.png"
# SemDeDup cluster ranges (mm_assets.core.semantic.semdedup_plan; assets semdedup_plan,
# semdedup_range): the plan, then per range key its job and its scores
SEMDEDUP_RANGES = "semdedup_ranges"
ROOT_FOLDERS += (SEMDEDUP_RANGES,)
SEMDEDUP_PLAN = f"{SEMDEDUP_RANGES}/plan.json"
SEMDEDUP_RANGE_JOBS = f"{SEMDEDUP_RANGES}/jobs"
SEMDEDUP_RANGE_SCORES = f"{SEMDEDUP_RANGES}/scores"


def semdedup_range_job(key: str) -> str:
    """Positions, cluster, distance of one range's unique points (semdedup_plan)."""
    return f"{SEMDEDUP_RANGE_JOBS}/{key}{PARQUET}"


def semdedup_range_scores(key: str) -> str:
    """Position, score, partner position of one range's points (semdedup_range)."""
    return f"{SEMDEDUP_RANGE_SCORES}/{key}{PARQUET}"


def semdedup_range_meta(key: str) -> str:
    """Sidecar of :func:`semdedup_range_scores` (plan id, scoring settings, rows), written
    last."""
    return f"{SEMDEDUP_RANGE_SCORES}/{key}.json"


PPL_DECILES_TABLE = f"{PPL_DECILES}/deciles{PARQUET}"
"""Perplexity decile per key (ppl_deciles)."""
PPL_DECILE_EDGES = f"{PPL_DECILES}/edges.json"
FUNNEL_HTML = f"{REPORTS}/funnel.html"


def report_gallery(view: str) -> str:
    """Folder of the gallery the report asset writes for one ``mm-assets sample`` view."""
    return f"{REPORTS}/galleries/{view}"
"""The corpus funnel as HTML (report asset, ``mm-assets report``)."""


def centroids(space: str) -> str:
    return f"{CLUSTERS}/centroids_{space}.npy"


def rephrase_cache(key: str) -> str:
    """One cached rewrite (JSON) by :func:`~mm_assets.core.text.rephrase.cache_key`."""
    return f"{CACHE}/rephrase/{key}.json"


# ------------------------------------------------------------------ mixtures
def mixture_dir(recipe: str) -> str:
    """Shards ``{i:05d}.tar`` and the JSON files of one mixture."""
    return f"{MIXTURES}/{recipe}"


def mixture_manifest(recipe: str) -> str:
    return f"{MIXTURES}/{recipe}/manifest.json"


def mixture_lineage(recipe: str) -> str:
    return f"{MIXTURES}/{recipe}/lineage.json"


def mixture_index(recipe: str) -> str:
    """Per-sample index of a mixture as Parquet (``mm_assets.loader.export_index``)."""
    return f"{MIXTURES}/{recipe}/index{PARQUET}"


# ------------------------------------------------------------------ synthetic data
def synthetic_spec(file_name: str) -> str:
    """A root synthetic-data spec by file name (``{name}.yaml``)."""
    return f"{SYNTHETIC}/{file_name}"


def synthetic_dir(spec: str) -> str:
    """Shards ``{i:05d}.tar`` and ``stats.json`` of one synthetic spec (synthetic)."""
    return f"{SYNTHETIC}/{spec}"


def synthetic_stats(spec: str) -> str:
    """Answer distributions and counts of one synthetic spec (JSON)."""
    return f"{SYNTHETIC}/{spec}/stats.json"


def synthetic_checked_dir(spec: str) -> str:
    """Kept samples ``{i:05d}.tar`` of one synthetic spec after the corpus checks
    (synthetic_checked), with its tables and ``stats.json``."""
    return f"{SYNTHETIC}/{spec}/checked"


def synthetic_checked_table(spec: str, table: str) -> str:
    """One table of synthetic_checked: ``decisions``, ``hashes``, ``text_quality`` or ``ppl``."""
    return f"{SYNTHETIC}/{spec}/checked/{table}{PARQUET}"


def synthetic_checked_stats(spec: str) -> str:
    """Counts, reasons and the kept answer distribution of synthetic_checked (JSON)."""
    return f"{SYNTHETIC}/{spec}/checked/stats.json"


# ------------------------------------------------------------------ external image pools
POOL_SPEC_SUFFIX = ".yaml"


def pool_spec(pool: str) -> str:
    """Registration of one external image pool (YAML: name, prefixes, shards)."""
    return f"{POOLS}/{pool}{POOL_SPEC_SUFFIX}"


def pool_dir(pool: str) -> str:
    """Per-shard outputs of one pool (pool_assign)."""
    return f"{POOLS}/{pool}"


def pool_assign(pool: str, stem: str) -> str:
    """Assignment table of one pool shard (:data:`~mm_assets.core.schemas.POOL_ASSIGN`)."""
    return f"{POOLS}/{pool}/{stem}{PARQUET}"


def pool_vectors(pool: str, stem: str) -> str:
    """(N, D) float16 L2-normalised image vectors of one pool shard; row i = ``row`` i."""
    return f"{POOLS}/{pool}/{stem}.npy"


def pool_sidecar(pool: str, stem: str) -> str:
    """JSON sidecar of one pool shard: encoder fingerprint, centroids digest, counts."""
    return f"{POOLS}/{pool}/{stem}.json"


# ------------------------------------------------------------------ mining
def mining_recipe(file_name: str) -> str:
    """A root mining recipe by file name (``{name}.yaml``)."""
    return f"{MINING}/{file_name}"


def mined_dir(recipe: str) -> str:
    """Shards ``{i:05d}.tar`` and ``manifest.json`` of one mining recipe (mined)."""
    return f"{MINED}/{recipe}"


def mined_manifest(recipe: str) -> str:
    """Per-cluster wanted / candidates / taken / rejected per reason / shortfall (JSON)."""
    return f"{MINED}/{recipe}/manifest.json"


def mined_selection(recipe: str) -> str:
    """The mined rows (:data:`~mm_assets.core.schemas.MINED_SELECTION`), in output order."""
    return f"{MINED}/{recipe}/selection{PARQUET}"


# ------------------------------------------------------------------ interleaved documents
DOC_INGEST_STATE = f"{DOC_INPUTS}/_state.json"
"""Interleaved ingest state: inputs already ingested (fingerprint -> shards), next shard id."""
DOC_REPEAT_IMAGES = f"{DOC_REPEATS}/images{PARQUET}"
"""Per image position in a repeated group, with the policy's action (doc_repeats)."""
DOC_REPEAT_GROUPS = f"{DOC_REPEATS}/groups{PARQUET}"
"""Repeated-image groups: kind, documents, images, action (doc_repeats)."""
DOC_DUPLICATES = f"{DOC_REPEATS}/documents{PARQUET}"
"""Exact-duplicate documents: key, group, representative (doc_repeats)."""
DOC_REPEAT_SHARDS = f"{DOC_REPEATS}/shards"


def doc_repeats_shard(shard: str) -> str:
    """The removals doc_repeats decided for one doc shard (docs_curated reads only this)."""
    return f"{DOC_REPEAT_SHARDS}/{shard}{PARQUET}"

DOC_MANIFEST_SUFFIX = ".json"
DOC_TABLE_SUFFIX = ".docs.parquet"


def doc_manifest(shard: str) -> str:
    """Interleaved ingest manifest of one doc shard (JSON: format, input, record range)."""
    return f"{DOC_INPUTS}/{shard}{DOC_MANIFEST_SUFFIX}"


def doc_shard(shard: str) -> str:
    """Interleaved document shard (``mm_assets.core.interleaved.doc.to_wds`` members)."""
    return shard_tar(DOCS, shard)


def doc_image_hashes(shard: str) -> str:
    """One row per image segment of one doc shard (doc_hashes)."""
    return f"{DOC_HASHES}/{shard}{PARQUET}"


def doc_hashes(shard: str) -> str:
    """One row per document of one doc shard: ordered-segment hash (doc_hashes)."""
    return f"{DOC_HASHES}/{shard}{DOC_TABLE_SUFFIX}"


def doc_flags(shard: str) -> str:
    """Text-quality flags of the text segments of one doc shard (doc_quality)."""
    return f"{DOC_QUALITY}/{shard}.flags{PARQUET}"


def doc_ppl(shard: str) -> str:
    """Perplexity per text segment of one doc shard (doc_quality)."""
    return f"{DOC_QUALITY}/{shard}.ppl{PARQUET}"


def doc_embedding_vectors(shard: str) -> str:
    """(M, D) float16 L2-normalised vectors of one doc shard's images (doc_embeddings)."""
    return f"{DOC_EMBEDDINGS}/{shard}.npy"


def doc_embedding_keys(shard: str) -> str:
    """``(key, pos)`` of each row of :func:`doc_embedding_vectors` (doc_embeddings)."""
    return f"{DOC_EMBEDDINGS}/{shard}{PARQUET}"


DOC_CLUSTERS = f"{DOC_EMBEDDINGS}/clusters/assignments{PARQUET}"
"""Cluster and cosine distance to its centroid per document image (doc_clusters)."""
DOC_CENTROIDS = f"{DOC_EMBEDDINGS}/clusters/centroids.npy"


def docs_curated_shard(shard: str) -> str:
    """Documents of one doc shard after the repeat / duplicate policies (docs_curated)."""
    return shard_tar(DOCS_CURATED, shard)


def docs_curated_decisions(shard: str) -> str:
    """Per document and image: kept / removed + reason (docs_curated)."""
    return f"{DOCS_CURATED}/{shard}{DECISIONS_SUFFIX}"


# ------------------------------------------------------------------ commit records
def commits_dir(asset: str) -> str:
    """Folder of ``asset``'s commit records (one ``{partition}.json`` each)."""
    return f"{COMMITS}/{asset}"


def commit(asset: str, partition: str) -> str:
    """Commit record of one partition of ``asset`` (JSON, written last by the partition;
    ``partition`` is :data:`GLOBAL` for an unpartitioned asset)."""
    return f"{COMMITS}/{asset}/{partition}.json"


# ------------------------------------------------------------------ listings
def shard_ids(store, folder: str, suffix: str) -> list[str]:
    """Sorted ids of the entries of ``folder`` ending in ``suffix`` (suffix removed)."""
    return [stem(n, suffix) for n in store.ls(folder, suffix)]


def raw_shard_ids(store) -> list[str]:
    """Shard ids with a raw shard tar, sorted."""
    return shard_ids(store, RAW_SHARDS, TAR)


def curated_decision_files(store) -> list[tuple[str, str]]:
    """``(shard, path)`` of every curated decision table."""
    return [(s, curated_decisions(s)) for s in shard_ids(store, CURATED, DECISIONS_SUFFIX)]


CORPUS_QUARANTINE_STAGES = (RAW_SHARDS, EMBEDDINGS)
"""Stages whose quarantine partitions are corpus shards (the others: pool shards, documents,
synthetic specs, mixture recipes)."""


def quarantine_files(store, stages: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """``(partition, path)`` of every quarantine table of every stage (of ``stages`` only,
    when given)."""
    return [(p, quarantine(st, p)) for st in store.ls(QUARANTINE)
            if stages is None or st in stages
            for p in shard_ids(store, quarantine_dir(st), PARQUET)]


# ------------------------------------------------------------------ evaluation results
ABLATIONS_HTML = f"{REPORTS}/ablations.html"
"""Mixtures x benchmarks comparison (ablations asset, ``mm-assets eval compare``)."""


def incoming_evals(mixture: str) -> str:
    """Drop folder of one mixture's eval-results files (the eval sensor watches it)."""
    return f"{INCOMING_EVALS}/{mixture}"


def evals_dir(mixture: str) -> str:
    """Recorded results of one mixture: one folder per mixture content digest."""
    return f"{EVALS}/{mixture}"


def evals_digest_dir(mixture: str, digest: str) -> str:
    return f"{EVALS}/{mixture}/{digest}"


def eval_record(mixture: str, digest: str, file_id: str) -> str:
    """One recorded results file (its rows, :data:`~mm_assets.core.schemas.EVAL_RESULTS`),
    named by the xxh3-64 of the file's bytes; written once, never overwritten."""
    return f"{EVALS}/{mixture}/{digest}/{file_id}{PARQUET}"
