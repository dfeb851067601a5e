"""Interleaved image-text documents (MINT-1T / OBELICS / mmc4) through the graph.

- :mod:`.doc`: the document model (:class:`~.doc.Document` of ordered :class:`~.doc.TextSeg`
  and :class:`~.doc.ImageSeg`) and its stored interleaved WebDataset form (``to_wds`` /
  ``from_wds``); :mod:`.shards` writes and reads shards of them.
- :mod:`.readers` (MINT-1T WebDataset and Parquet, OBELICS) and :mod:`.mmc4`: readers of the
  published formats, yielding documents or quarantine records; :mod:`.fixtures` writes small
  inputs in each format.
- :mod:`.ingest`: input files -> per-shard manifests -> validated document shards, counted.
- :mod:`.hashes`, :mod:`.repeated`: image and document hashes; images repeated across
  documents (logos, icons), duplicate documents, and the policies removing them.
- :mod:`.quality`, :mod:`.embed`: text-segment flags and perplexity; image vectors.
- ``tokens`` / ``budget`` (engineer D): image-token schemes and token-budgeted mixtures.
"""
