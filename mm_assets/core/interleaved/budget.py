"""Interleaved documents in token-budgeted mixtures: per-document tokens, the per-document cap
(split at segment boundaries or drop, with the reason counted), and the recipe source kind
``{interleaved: ...}`` read by :mod:`mm_assets.core.mix.build`.

A recipe source ``{name: web_docs, interleaved: docs_curated}`` reads the interleaved document
shards of this root (``docs`` = as ingested, ``docs_curated`` = after the repeated-image and
duplicate-document policies), or any folder / fsspec prefix of ``*.tar`` shards in the stored
interleaved form (:mod:`.doc`). Each document (or part of one) is one unit of the draw with
modality ``interleaved``: ``ratio`` keys count units (samples), not tokens, exactly as for
conversations; with ``total_tokens`` the draw is the smallest whose tokens reach the target,
so the realised total exceeds it by less than one unit (one document part, at most
``max_doc_tokens``).

Tokens of a document = text tokens (``count_tokens`` on each text segment, summed) + image
tokens of its images under the recipe's ``token_scheme``
(:func:`~.tokens.sample_image_tokens`: AnyRes uses its multi-image rule when a document or
part holds ≥ 2 images). Image sizes come from the segment's ``width``/``height`` or the image
header (no full decode).

Per document, in this order (each outcome counted in the stage's ``removed`` /
``quarantined`` reasons; the manifest's ``per_source`` repeats them):

- URL-only image segments (no bytes: nothing to train on) are removed from the document and
  counted (``url_only_images``); a document left with no segment is removed
  (``empty_document``).
- An image whose header cannot be read quarantines the document (``unreadable_image``); a
  document the stored form rejects is quarantined with :class:`~.doc.DocumentError`'s reason.
- ``max_doc_tokens``: a document over the cap is split greedily into consecutive parts of
  whole segments, each within the cap (keys ``{key}-p{i}``; removed reason
  ``split_into_parts`` counts the split documents, and each extra part adds one unit to the
  stage's ``in``, so in = out + removed + quarantined holds in units), or with
  ``doc_overflow: drop`` removed (``over_max_doc_tokens``). A single segment over the cap
  cannot be split at a boundary: the document is removed (``segment_over_max_doc_tokens``).

Memory: one document at a time (its image bytes); the caller keeps only candidates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import fsspec
import xxhash

from mm_assets.core import layout
from mm_assets.core.interleaved.doc import (
    Document,
    DocumentError,
    ImageSeg,
    TextSeg,
    from_wds,
    to_wds,
)
from mm_assets.core.interleaved.tokens import sample_image_tokens
from mm_assets.core.mix.draw import Candidate, image_size
from mm_assets.core.records import Quarantined
from mm_assets.core.shards import iter_tar_groups

ASSET_FOLDERS = {"docs": layout.DOCS, "docs_curated": layout.DOCS_CURATED}
ASSET_ASSETS = {"docs": "interleaved_docs", "docs_curated": "docs_curated"}
MODALITY = "interleaved"
#: document-level removal reasons (stage ``removed``); URL-only images and split documents
#: are image- and part-level facts reported per source
REMOVALS = ("empty_document", "over_max_doc_tokens", "segment_over_max_doc_tokens")


def committed_docs(store, where: str) -> list[str]:
    """Doc shards of ``docs`` / ``docs_curated`` to read: those with a commit record, which
    must be every doc shard interleaved_docs committed (a docs_curated shard whose commit was
    withdrawn because doc_repeats changed is stale, not skipped).

    Raises:
        UncommittedError: a committed doc shard lacks ``where``'s commit (``run --missing``).
    """
    from mm_assets.core.commits import UncommittedError, read_commits

    asset = ASSET_ASSETS[where]
    want, have = read_commits(store, ASSET_ASSETS["docs"]), read_commits(store, asset)
    missing = sorted(set(want) - set(have))
    if missing:
        raise UncommittedError(
            f"{asset} is not committed for doc shard(s) {', '.join(missing[:5])}"
            f"{' …' if len(missing) > 5 else ''} (never built, failed, or stale after "
            f"doc_repeats changed): `mm-assets run --missing` builds them")
    return sorted(have)


def iter_documents(store, where: str, quarantine: list[Quarantined], name: str
                   ) -> Iterator[Document]:
    """Documents of ``docs`` / ``docs_curated`` of this root (committed shards only, see
    :func:`committed_docs`), or of every ``*.tar`` under a folder or fsspec prefix (sorted); a
    sample the stored form rejects is quarantined (stage ``mixtures``, the
    :class:`DocumentError` reason) and skipped.

    Raises:
        FileNotFoundError: the folder or prefix holds no ``.tar`` shard.
        UncommittedError: see :func:`committed_docs`.
    """
    if where in ASSET_FOLDERS:
        opens = [(layout.shard_tar(ASSET_FOLDERS[where], s), store.open_read)
                 for s in committed_docs(store, where)]
    else:
        fs, base = fsspec.core.url_to_fs(where)
        opens = [(p, lambda p, fs=fs: fs.open(p, "rb"))
                 for p in sorted(p for p in fs.find(base) if p.endswith(".tar"))]
    if not opens:
        raise FileNotFoundError(f"source {name!r}: no interleaved .tar shards in {where!r}")
    for rel, opener in opens:
        with opener(rel) as f:
            for key, parts in iter_tar_groups(f):
                try:
                    yield from_wds({"__key__": key, **parts})
                except DocumentError as e:
                    quarantine.append(Quarantined(key, "mixtures", e.reason, str(e), name))


def _size(seg: ImageSeg, key: str) -> tuple[int, int]:
    if seg.width and seg.height:
        return int(seg.width), int(seg.height)
    w, h = image_size(seg.data)
    if not (w and h):
        raise DocumentError("unreadable_image", f"{key}: an image header cannot be read")
    return w, h


def _part(sz: list, tt: list[int], a: int, b: int, scheme: str) -> tuple[int, int]:
    """``(text, image)`` tokens of segments ``a:b`` (``sz``: image size or None per segment,
    ``tt``: text tokens per segment, 0 for images). Not additive under AnyRes: the whole
    part's images decide between its single- and multi-image rules."""
    return sum(tt[a:b]), sample_image_tokens([z for z in sz[a:b] if z], scheme)


def split_document(doc: Document, scheme: str, count_tokens: Callable[[str], int],
                   max_tokens: int | None) -> list[tuple[Document, int, int, list]]:
    """``[(part, text_tokens, image_tokens, image_sizes), ...]``: the document whole when
    ``max_tokens`` is None or it fits, else consecutive parts of whole segments, each within
    ``max_tokens`` (greedy: a part grows while it fits). Parts keep the segment order and the
    document's metadata plus ``part``/``parts``/``doc_key``.

    Raises:
        DocumentError: ``unreadable_image``; ``segment_over_max_doc_tokens`` when one segment
            alone exceeds ``max_tokens``.
    """
    segs = doc.segments
    tt = [count_tokens(s.text) if isinstance(s, TextSeg) else 0 for s in segs]
    sz = [_size(s, doc.key) if isinstance(s, ImageSeg) else None for s in segs]
    text, image = _part(sz, tt, 0, len(segs), scheme)
    if max_tokens is None or text + image <= max_tokens:
        return [(doc, text, image, [z for z in sz if z])]
    bounds, start = [], 0
    while start < len(segs):
        end = start + 1
        if sum(_part(sz, tt, start, end, scheme)) > max_tokens:
            raise DocumentError("segment_over_max_doc_tokens",
                                f"{doc.key}: segment {start} alone exceeds {max_tokens} tokens")
        while end < len(segs) and sum(_part(sz, tt, start, end + 1, scheme)) <= max_tokens:
            end += 1
        bounds.append((start, end))
        start = end
    out = []
    for i, (a, b) in enumerate(bounds):
        sizes = [z for z in sz[a:b] if z]
        t, im = _part(sz, tt, a, b, scheme)
        part = Document(f"{doc.key}-p{i}", doc.source, segs[a:b],
                        {**doc.meta, "doc_key": doc.key, "part": i, "parts": len(bounds)})
        out.append((part, t, im, sizes))
    return out


def budget_units(doc: Document, recipe, count_tokens, removed: Counter
                 ) -> list[tuple[Document, int, int, list]]:
    """The units one document contributes to the draw (module doc: URL-only images dropped
    and counted, the cap applied); ``[]`` when it is removed (reason counted in ``removed``).

    Raises:
        DocumentError: ``unreadable_image`` (the caller quarantines the document).
    """
    url_only = doc.n_url_only
    if url_only:
        removed["url_only_images"] += url_only
        doc = Document(doc.key, doc.source, [s for s in doc.segments if not (
            isinstance(s, ImageSeg) and s.data is None)], {**doc.meta, "url_only_dropped":
                                                          url_only})
    if not doc.segments:
        removed["empty_document"] += 1
        return []
    cap, drop = recipe.max_doc_tokens, recipe.doc_overflow == "drop"
    try:  # one tokenization per document; a document over the cap splits into >= 2 parts
        units = split_document(doc, recipe.token_scheme, count_tokens, None if drop else cap)
    except DocumentError as e:
        if e.reason != "segment_over_max_doc_tokens":
            raise
        removed[e.reason] += 1
        return []
    if drop and cap is not None and units[0][1] + units[0][2] > cap:
        removed["over_max_doc_tokens"] += 1
        return []
    removed["split_into_parts"] += len(units) > 1
    return units


def doc_digest(h: xxhash.xxh3_128, doc: Document) -> None:
    """Fold one source document (key, texts, image bytes or URLs) into a content digest."""
    h.update(doc.key.encode())
    for s in doc.segments:
        h.update(s.text.encode() if isinstance(s, TextSeg) else (s.data or
                                                                (s.url or "").encode()))


def iter_units(store, recipe, spec, count_tokens, quarantine: list[Quarantined],
               facts: Counter, digest: xxhash.xxh3_128, only: set[str] | None = None
               ) -> Iterator[tuple]:
    """``(unit_key, part, text_tokens, image_tokens, sizes, doc_key)`` for every unit of an
    interleaved source, in a fixed order (unit keys get the ``{name}-`` prefix when the recipe
    has several sources). ``facts`` counts ``documents`` read and the outcomes of
    :func:`budget_units`; with ``only``, other documents are digested but not tokenized."""
    prefix = f"{spec.name}-" if len(recipe.sources) > 1 else ""
    for doc in iter_documents(store, spec.interleaved, quarantine, spec.name):
        facts["documents"] += 1
        doc_digest(digest, doc)
        if only is not None and doc.key not in only:
            continue
        try:
            units = budget_units(doc, recipe, count_tokens, facts)
        except DocumentError as e:
            quarantine.append(Quarantined(doc.key, "mixtures", e.reason, str(e), spec.name))
            continue
        for part, t, im, sizes in units:
            yield prefix + part.key, part, t, im, sizes, doc.key


def collect_documents(store, recipe, spec, count_tokens, out) -> None:
    """Pass 1 for an interleaved source: one :class:`Candidate` per unit into ``out.cands``
    (modality ``interleaved``, cluster ``none``, decile -1, ``source_key`` = the unit key in
    the source); the stage's ``in`` grows by units + removed documents (quarantined ones are
    added by the caller with every quarantine row), ``removed`` by :data:`REMOVALS`;
    ``out.sources[spec.name]`` gets documents, units, split documents, URL-only images."""
    digest, q0, facts, units = xxhash.xxh3_128(), len(out.quarantine), Counter(), 0
    for key, part, t, im, sizes, doc_key in iter_units(store, recipe, spec, count_tokens,
                                                       out.quarantine, facts, digest):
        units += 1
        out.unit_docs[key] = doc_key
        if key in out.cands:
            out.quarantine.append(Quarantined(key, "mixtures", "duplicate_key",
                                              f"key {key!r} appears twice", spec.name))
            continue
        out.cands[key] = Candidate(key, part.source, MODALITY, "none", -1, im, t, spec.name,
                                   part.key, tuple(sizes))
    gone = {k: facts[k] for k in REMOVALS if facts[k]}
    out.counts.n_in += units + sum(gone.values())
    for k, v in gone.items():
        out.counts.removed[k] += v
    out.sources[spec.name] = {
        "asset": None, "wds": None, "synthetic": None, "interleaved": spec.interleaved,
        "digest_xxh3": digest.hexdigest(), "samples": units + sum(gone.values()),
        "documents": facts["documents"], "units": units,
        "split_documents": facts["split_into_parts"],
        "url_only_images_dropped": facts["url_only_images"], "removed": gone,
        "quarantined": len(out.quarantine) - q0,
        "eligible": sum(1 for c in out.cands.values() if c.origin == spec.name)}


def spool_documents(store, recipe, spec, found, wanted: set[str], put) -> str:
    """Pass 2 for an interleaved source: ``put(key, part)`` for every wanted unit (only the
    documents holding one are split again, with ``found.count_tokens``); returns the source's
    content digest (compared with pass 1 by the caller)."""
    digest = xxhash.xxh3_128()
    docs = {found.unit_docs[k] for k in wanted if k in found.unit_docs}
    for key, part, *_ in iter_units(store, recipe, spec, found.count_tokens, [], Counter(),
                                    digest, docs):
        if key in wanted:
            put(key, part)
    return digest.hexdigest()


def document_wds(doc: Document, out_key: str, meta: dict) -> dict[str, bytes]:
    """The WebDataset sample dict (``__key__``, ``json``, ``{pos}.{ext}``) of a drawn unit under
    its output key, its metadata extended by ``meta`` (origin, source key, ...)."""
    members = to_wds(Document(out_key, doc.source, doc.segments, {**doc.meta, **meta}))
    n = len(out_key) + 1
    return {"__key__": out_key, **{name[n:]: v for name, v in members.items()}}
