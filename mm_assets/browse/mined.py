"""The ``mined`` view of the sample browser: per corpus image cluster, the corpus contact sheet
beside the pool images a mining recipe took for it.

``mm-assets sample --asset mined --recipe R [--cluster C] [--n N] [--seed S] --out DIR``
writes ``DIR/index.html`` + ``DIR/thumbs/*.jpg`` (static, offline, relative links) and with
``--parquet`` ``DIR/samples.parquet`` (one row per shown image: cluster, side, key, caption).
Each section shows the cluster's manifest line (wanted, candidates, taken, rejected per reason,
shortfall), N corpus images of the cluster (seeded bottom-k of ``xxh3("{seed}:{key}")``) and N
of the mined images (same rule), each mined card with its caption and cosine to the centroid.

Reads: ``mined/{R}/manifest.json`` and ``selection.parquet``, ``clusters/assignments.parquet``
(image space), and only the raw and mined shards holding shown images (tar headers + wanted
members). Memory: the selection table and the shown images.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from html import escape

import numpy as np
import polars as pl

from mm_assets.browse.fetch import thumbnail
from mm_assets.browse.gallery import fetch_all, locate
from mm_assets.core import layout, schemas
from mm_assets.core.mine.select import priority
from mm_assets.core.shards import read_samples
from mm_assets.core.storage import Store

CSS = """body{margin:0;font:14px/1.4 system-ui,"Liberation Sans",sans-serif;background:#f3f4f6}
header{background:#111827;color:#f9fafb;padding:12px 24px}h1{font-size:18px;margin:0}
.spec{font:12px monospace;color:#9ca3af}main{padding:8px 24px 40px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:10px;margin:16px 0;padding:10px}
h2{font-size:16px;margin:0 0 4px}.note{color:#4b5563;font-size:12.5px;margin:0 0 8px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:16px}.side h3{font-size:13px;margin:0 0
6px;color:#374151}.sheet{display:flex;flex-wrap:wrap;gap:6px}.cell{width:132px;font-size:11px;
color:#374151}.cell img{width:128px;height:128px;object-fit:cover;border-radius:4px;
display:block;background:#111827}.cap{max-height:44px;overflow:hidden;word-break:break-word}
.corpus h3{color:#1e3a8a}.mined h3{color:#14532d}.empty{color:#9ca3af;font-size:12px}"""


@dataclass(slots=True)
class MinedGallery:
    """What :func:`build_mined_gallery` wrote: index URL, parquet URL (or None), sections,
    corpus and mined images shown."""

    index: str
    parquet: str | None
    sections: int
    corpus_shown: int
    mined_shown: int


def _bottom(keys: list[str], n: int, seed: int) -> list[str]:
    if not keys:
        return []
    order = np.argsort(priority(keys, seed), kind="stable")[:n]
    return [keys[i] for i in sorted(order)]


def _mined_images(store: Store, recipe: str, keys: set[str]) -> dict[str, tuple[bytes, str]]:
    """``{out_key: (image bytes, caption)}`` of the wanted mined samples."""
    out: dict[str, tuple[bytes, str]] = {}
    for name in store.ls(layout.mined_dir(recipe), layout.TAR):
        if len(out) == len(keys):
            break
        with store.open_read(layout.entry(layout.mined_dir(recipe), name)) as f:
            for s in read_samples(f):
                if s.key in keys:
                    out[s.key] = (s.images[0], s.conversations[-1]["value"])
    return out


def build_mined_gallery(store: Store, recipe: str, out: Store, cluster: int | None = None,
                        n: int = 12, seed: int = 0, parquet: bool = False) -> MinedGallery:
    """Write the mined view of ``recipe`` into ``out`` (see the module doc).

    Raises:
        FileNotFoundError: the recipe was not mined (names ``mined[recipe]`` to materialize).
        ValueError: ``cluster`` is not a cluster of the manifest (lists the known ones).
    """
    if not store.exists(layout.mined_manifest(recipe)):
        raise FileNotFoundError(f"mining recipe {recipe!r} has no output under "
                                f"{store.url(layout.MINED)}: materialize mined[{recipe}] first")
    man = store.read_json(layout.mined_manifest(recipe))
    tallies = {int(c): t for c, t in man["clusters"].items()}
    if cluster is not None and cluster not in tallies:
        raise ValueError(f"--cluster {cluster}: not a cluster of mining recipe {recipe!r}; "
                         f"known: {sorted(tallies)[:24]}")
    shown = [cluster] if cluster is not None else \
        [c for c, t in sorted(tallies.items()) if t["wanted"] or t["taken"]]
    sel = store.read_table(layout.mined_selection(recipe), schemas.MINED_SELECTION)
    a = store.read_table(layout.CLUSTER_ASSIGNMENTS,
                         schemas.subset(schemas.CLUSTER_ASSIGNMENTS, "key", "space", "cluster"))
    a = a.filter((pl.col("space") == "image") & pl.col("cluster").is_in(shown))
    corpus_keys = {c: _bottom(a.filter(pl.col("cluster") == c)["key"].to_list(), n, seed)
                   for c in shown}
    mined_rows = {c: sel.filter(pl.col("cluster") == c) for c in shown}
    mined_keys = {c: _bottom(r["out_key"].to_list(), n, seed) for c, r in mined_rows.items()}
    want = [k for ks in corpus_keys.values() for k in ks]
    located = locate(store, pl.DataFrame({"key": want, "shard": [None] * len(want)},
                                         schema={"key": pl.Utf8, "shard": pl.Utf8}))
    corpus = fetch_all(store, located)
    mined = _mined_images(store, recipe, {k for ks in mined_keys.values() for k in ks})
    sims = dict(zip(sel["out_key"], sel["sim"], strict=True))
    rows: list[dict] = []
    sections = []
    for c in shown:
        cells = {"corpus": [], "mined": []}
        for k in corpus_keys[c]:
            s = corpus.get(k)
            cells["corpus"].append(_cell(out, f"corpus_{k}", s.images[0] if s and s.images
                                         else None, k, None, None))
        for k in mined_keys[c]:
            data, cap = mined.get(k, (None, ""))
            cells["mined"].append(_cell(out, f"mined_{k}", data, k, cap, sims.get(k)))
        for side, cs in cells.items():
            rows += [{"cluster": c, "side": side, **{f: x[f] for f in ("key", "caption",
                                                                       "sim", "thumb")}}
                     for x in cs]
        sections.append(_section(c, tallies[c], cells, int((a["cluster"] == c).sum())))
    html = _page(recipe, man, sections, n, seed, cluster)
    out.write_bytes("index.html", html.encode())
    pq = None
    if parquet:
        buf = io.BytesIO()
        pl.DataFrame(rows, schema={"cluster": pl.Int32, "side": pl.Utf8, "key": pl.Utf8,
                                   "caption": pl.Utf8, "sim": pl.Float64, "thumb": pl.Utf8}
                     ).write_parquet(buf)
        out.write_bytes("samples.parquet", buf.getvalue())
        pq = out.url("samples.parquet")
    return MinedGallery(out.url("index.html"), pq, len(shown),
                        sum(r["side"] == "corpus" for r in rows),
                        sum(r["side"] == "mined" for r in rows))


def _cell(out: Store, name: str, data: bytes | None, key: str, caption: str | None,
          sim: float | None) -> dict:
    t = thumbnail(data) if data is not None else None
    src = None
    if t is not None:
        src = f"thumbs/{name}.jpg"
        out.write_bytes(src, t[0])
    return {"key": key, "caption": caption, "sim": sim, "thumb": src}


def _section(c: int, t: dict, cells: dict, size: int) -> str:
    rej = ", ".join(f"{k} {v}" for k, v in t["rejected"].items()) or "none"
    note = (f"corpus images {size} · wanted {t['wanted']} · candidates {t['candidates']} · "
            f"taken {t['taken']} · rejected: {rej} · not needed {t['not_needed']} · "
            f"shortfall {t['shortfall']}")
    sides = []
    for side, title in (("corpus", f"corpus ({len(cells['corpus'])} of {size})"),
                        ("mined", f"mined ({len(cells['mined'])} of {t['taken']})")):
        body = "".join(_html_cell(x) for x in cells[side]) or \
            '<span class="empty">none</span>'
        sides.append(f'<div class="side {side}"><h3>{escape(title)}</h3>'
                     f'<div class="sheet">{body}</div></div>')
    return (f'<section id="c{c}"><h2>cluster {c}</h2><p class="note">{escape(note)}</p>'
            f'<div class="sides">{"".join(sides)}</div></section>')


def _html_cell(x: dict) -> str:
    img = f'<img src="{escape(x["thumb"])}" alt="">' if x["thumb"] else \
        '<div class="empty">no image</div>'
    sim = f" · cos {x['sim']:.3f}" if x["sim"] is not None else ""
    cap = f'<div class="cap">{escape(x["caption"])}</div>' if x["caption"] else ""
    return (f'<div class="cell" title="{escape(x["key"])}">{img}'
            f'<div class="mono">{escape(x["key"][-24:])}{sim}</div>{cap}</div>')


def _page(recipe: str, man: dict, sections: list[str], n: int, seed: int,
          cluster: int | None) -> str:
    tot = man["totals"]
    spec = (f"mined · recipe {recipe} · pools {', '.join(man['pools'])} · mode {man['mode']} · "
            f"n {n} · seed {seed}" + (f" · cluster {cluster}" if cluster is not None else ""))
    head = (f"wanted {tot['wanted']} · taken {tot['taken']} · shortfall {tot['shortfall']} · "
            f"rejected {sum(tot['rejected'].values())}")
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>mm-assets sample · '
            f'{escape(spec)}</title><style>{CSS}</style></head><body><header><h1>Mined images '
            f'per cluster: {escape(recipe)}</h1><div class="spec">{escape(spec)}<br>'
            f'{escape(head)}</div></header><main>{"".join(sections)}</main></body></html>')


def cli_sample_mined(out: str, recipe: str | None, cluster: int | None, n: int | None,
                     seed: int, parquet: bool) -> None:
    """``mm-assets sample --asset mined --recipe R ...`` (the hook in :mod:`mm_assets.cli`).

    Raises:
        ValueError: no ``--recipe``, or a bad ``--cluster``.
        FileNotFoundError: the recipe was not mined.
    """
    from pathlib import Path

    from resources.storage import StorageResource

    if not recipe:
        raise ValueError("--recipe: the mining recipe to show (view mined)")
    dest = Store(out if "://" in out else str(Path(out).resolve()))
    res = build_mined_gallery(StorageResource().store(), recipe, dest, cluster, n or 12, seed,
                              parquet)
    print(f"{res.sections} cluster(s): {res.corpus_shown} corpus and {res.mined_shown} mined images "
          f"-> {res.index}" + (f" + {res.parquet}" if res.parquet else ""))
