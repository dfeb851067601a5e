"""The sample browser: static HTML galleries (and Parquet) of any stage's samples.

Dagster-free. ``select`` picks the sample keys of a view from the decision tables (streamed,
bounded memory), ``enrich`` joins every decision known about those keys, ``fetch`` reads only
the needed tar members, ``render`` writes the HTML, and ``gallery`` ties them together (used by
``mm-assets sample`` and by the assets that write a gallery when they materialize).
"""
