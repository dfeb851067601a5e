"""Build one gallery: select → locate → decisions → fetch → thumbnails → HTML (+ Parquet).

Used by ``mm-assets sample`` and by the assets that write galleries when they materialize.
The output folder holds ``index.html``, ``thumbs/*.jpg`` (relative links, so it opens offline
from any copy of the folder) and, when asked, ``samples.parquet`` with the same rows.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from dataclasses import dataclass

import polars as pl

from mm_assets.browse import _layout as layout
from mm_assets.browse.enrich import DECISION_SCHEMA, decisions
from mm_assets.browse.fetch import tar_keys, tar_samples, thumbnail
from mm_assets.browse.flags import SPAN_FIELDS, card_flags, flag_rates
from mm_assets.browse.known import NoMatchError, explain_empty
from mm_assets.browse.overlay import overlay
from mm_assets.browse.render import render_flag_rates, render_html
from mm_assets.browse.select import SampleSpec, select
from mm_assets.browse.tables import key_tables, rows_for_keys
from mm_assets.core.records import Sample
from mm_assets.core.storage import Store


@dataclass(slots=True)
class GalleryResult:
    """What a gallery build wrote.

    Attributes:
        index: URL of ``index.html``; parquet: URL of ``samples.parquet`` (None unless asked).
        cards: samples shown; sections: sections shown; shards_read: raw shards opened.
        candidates: candidates per section (before sampling).
    """

    index: str
    parquet: str | None
    cards: int
    sections: int
    shards_read: int
    candidates: dict[str, int]


def locate(store: Store, rows: pl.DataFrame, shards: tuple[str, ...] | None = None
           ) -> pl.DataFrame:
    """Fill the ``shard`` column (raw shard holding each key) from the per-shard key tables,
    falling back to tar headers for shards without any table. Unfound keys keep null."""
    missing = rows.filter(pl.col("shard").is_null())["key"].unique()
    if missing.len() == 0:
        return rows
    tables = key_tables(store, shards)
    found = rows_for_keys(store, tables, missing, ["key"])
    found = found.select("key", "shard") if found.height else pl.DataFrame(
        schema={"key": pl.Utf8, "shard": pl.Utf8})
    listed = {s for s, _ in tables}
    rest = set(missing.to_list()) - set(found["key"].to_list())
    extra = []
    for shard in [s for s in (shards or layout.raw_shard_ids(store)) if s not in listed]:
        if not rest:
            break
        hit = rest & set(tar_keys(store, shard))
        extra += [(k, shard) for k in hit]
        rest -= hit
    if extra:
        found = pl.concat([found, pl.DataFrame(extra, schema=found.schema, orient="row")])
    found = found.unique("key", keep="first").rename({"shard": "_shard"})
    return rows.join(found, on="key", how="left").with_columns(
        pl.coalesce("shard", "_shard").alias("shard")).drop("_shard")


def fetch_all(store: Store, located: pl.DataFrame) -> dict[str, Sample]:
    """Samples of every located key, one pass per raw shard that holds any."""
    by_shard: dict[str, set[str]] = defaultdict(set)
    for key, shard in located.select("key", "shard").drop_nulls().iter_rows():
        by_shard[shard].add(key)
    out: dict[str, Sample] = {}
    for shard in sorted(by_shard):
        out.update(tar_samples(store, shard, by_shard[shard]))
    return out


def _thumbs(out: Store, samples: dict[str, Sample]) -> dict[str, list[dict]]:
    """Write ``thumbs/{key}_{i}.jpg``; per key a list of ``{src, width, height}`` (src None
    when the image does not decode). A synthetic sample gets a second thumbnail
    ``thumbs/{key}_0_answer.jpg`` with its answer overlaid (``overlay: True``,
    :mod:`mm_assets.browse.overlay`)."""
    res: dict[str, list[dict]] = {}
    for key, s in samples.items():
        res[key] = []
        for i, data in enumerate(s.images):
            t = thumbnail(data)
            src = None
            if t is not None:
                src = f"thumbs/{key}_{i}.jpg"
                out.write_bytes(src, t[0])
            res[key].append({"src": src, "width": t[1] if t else None,
                             "height": t[2] if t else None})
        ov = overlay(s)  # synthetic samples: the answer drawn on a second thumbnail
        t = thumbnail(ov) if ov else None
        if t is not None:
            src = f"thumbs/{key}_0_answer.jpg"
            out.write_bytes(src, t[0])
            res[key].append({"src": src, "width": t[1], "height": t[2], "overlay": True})
    return res


def build_gallery(store: Store, spec: SampleSpec, out: Store, title: str = "",
                  parquet: bool = False, allow_empty: bool = True) -> GalleryResult:
    """Select, fetch and write the gallery of ``spec`` into ``out``.

    Memory: the selection (``n × sections`` rows), the shown samples with their images (and
    their SemDeDup partners), one table batch. Reads the decision tables once each and only
    the raw shards holding shown samples.

    Args:
        allow_empty: write an empty gallery when nothing is selected; False raises
            :class:`~mm_assets.browse.known.NoMatchError` instead, before writing anything.

    Raises:
        FileNotFoundError: the view's table is not materialized (names the asset to run).
        NoMatchError: nothing selected and not ``allow_empty`` (a ``ValueError`` whose one-line
            message lists the known values of the filters that match nothing).
    """
    sel = select(store, spec)
    if sel.rows.height == 0 and not allow_empty:
        raise NoMatchError(explain_empty(store, spec))
    rows = sel.rows.select("key", "section", "section_rank", "shard")
    dec = decisions(store, rows["key"])
    rows = rows.join(dec, on="key", how="left")
    partners = rows.filter(pl.col("sem_duplicate").fill_null(False))["sem_partner"].drop_nulls()
    extra = pl.DataFrame({"key": partners.unique(), "shard": None},
                         schema={"key": pl.Utf8, "shard": pl.Utf8})
    rows = locate(store, rows, spec.shards)
    extra = locate(store, extra, None)
    samples = fetch_all(store, pl.concat([rows.select("key", "shard"), extra]))
    thumbs = _thumbs(out, samples)
    flags = card_flags(store, rows)
    cards = [_card(r, samples.get(r["key"]), thumbs, store, flags)
             for r in rows.iter_rows(named=True)]
    rates = (render_flag_rates(flag_rates(store, spec.shards), spec.flag)
             if spec.view == "flagged" else "")
    html = render_html(cards, title or f"mm-assets sample · {spec.describe()}", spec.describe(),
                       sel.counts, sel.sections_left_out, store.root, rates)
    out.write_bytes("index.html", html.encode())
    pq_url = None
    if parquet:
        out.write_bytes("samples.parquet", _parquet(cards))
        pq_url = out.url("samples.parquet")
    return GalleryResult(out.url("index.html"), pq_url, len(cards),
                         rows["section"].n_unique() if rows.height else 0,
                         len({c["shard"] for c in cards if c["shard"]}), sel.counts)


def _card(row: dict, s: Sample | None, thumbs: dict, store: Store,
          flags: dict[str, list[dict]] | None = None) -> dict:
    shard = row["shard"]
    card = dict(row)
    card["in_shard"] = s is not None
    card["location"] = (f"{store.url(layout.shard_rel(shard))} :: {row['key']}.json"
                        if shard else row.get("q_location") or "")
    card["input_location"] = (s.metadata.get("location", "") if s else "") or ""
    card["source"] = s.source if s else ""
    card["conversations"] = s.conversations if s else []
    card["images"] = thumbs.get(row["key"], [])
    card["text_flags"] = (flags or {}).get(row["key"], [])
    partner = row.get("sem_partner")
    card["partner_images"] = thumbs.get(partner, []) if partner else []
    return card


PARQUET_SCHEMA = {"section": pl.Utf8, "key": pl.Utf8, "shard": pl.Utf8, "location": pl.Utf8,
                  "input_location": pl.Utf8, "source": pl.Utf8, "n_images": pl.Int64,
                  "thumbs": pl.List(pl.Utf8), "conversations": pl.Utf8, "text": pl.Utf8,
                  "text_flags": pl.List(pl.Struct(SPAN_FIELDS)),
                  **DECISION_SCHEMA}


def _parquet(cards: list[dict]) -> bytes:
    rows = [{**{k: c.get(k) for k in DECISION_SCHEMA}, "section": c["section"], "key": c["key"],
             "shard": c["shard"], "location": c["location"],
             "input_location": c["input_location"], "source": c["source"],
             "n_images": sum(not i.get("overlay") for i in c["images"]),
             "thumbs": [i["src"] for i in c["images"]],
             "conversations": json.dumps(c["conversations"], ensure_ascii=False),
             "text": "\n".join(t.get("value", "") for t in c["conversations"]),
             "text_flags": c.get("text_flags", [])} for c in cards]
    buf = io.BytesIO()
    pl.DataFrame(rows, schema=PARQUET_SCHEMA).write_parquet(buf, compression="zstd",
                                                            statistics=False)
    return buf.getvalue()


#: views the report asset writes at every materialization: (view, samples per section)
REPORT_VIEWS = (("unique", 24), ("removed", 6), ("cluster", 6), ("flagged", 6))


def report_galleries(store: Store, seed: int = 0) -> dict[str, str]:
    """Write the :data:`REPORT_VIEWS` galleries under ``reports/galleries/{view}/``.

    Returns:
        view -> URL of its ``index.html``; a view whose tables are not materialized (or that
        selects nothing) is left out.
    """
    from mm_assets.core.layout import report_gallery

    out: dict[str, str] = {}
    for view, n in REPORT_VIEWS:
        try:
            res = build_gallery(store, SampleSpec(view=view, n=n, seed=seed, max_sections=24),
                                store.sub(report_gallery(view)))
        except (FileNotFoundError, ValueError):
            continue
        if res.cards:
            out[view] = res.index
    return out
