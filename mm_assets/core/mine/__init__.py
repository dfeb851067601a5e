"""Mining an external image pool (DataComp / LAION-style WebDataset) by corpus cluster.

Per pool shard (``pool_assign``, :mod:`.assign`): decode, hash (same functions as
``image_hashes``), embed with the corpus encoder, assign to the corpus image centroids.
Output ``pools/{pool}/{stem}.parquet`` (:data:`mm_assets.core.schemas.POOL_ASSIGN`) and
``pools/{pool}/{stem}.npy`` (N×D float16, L2-normalised). Pools are registered with
:mod:`.pool` (``mm-assets pool add``); :mod:`.poolgen` writes test pools with ground truth.
The global mining step (``recipe``, ``select``) reads assignment tables only.
"""

STAGE = "pool_assign"
"""Asset name and quarantine stage of the per-pool-shard step."""
