"""Text-segment quality of interleaved documents: formatting flags and perplexity.

Both reuse the conversation stages unchanged by presenting each document's text segments as
assistant turns of a :class:`~mm_assets.core.records.Sample` (no images, no human turn):

- flags (:func:`flag_docs`): :func:`mm_assets.core.quality.text_flags.flag_sample` per
  document, one :data:`~mm_assets.core.schemas.TEXT_QUALITY` row per flag with ``turn`` =
  the flagged text segment's position in the document (question/answer checks such as
  ``answer_repeats_question`` never fire: there is no question);
- perplexity (:func:`ppl_docs`): one sample per text segment scored by any
  :class:`~mm_assets.core.quality.ppl.PplScorer` (causal LM or KenLM), one
  :data:`~mm_assets.core.schemas.DOC_PPL` row per text segment; ``n_tokens`` counts the
  scored tokens, ``reason`` says why a segment has no score (e.g. no token).

Memory: the shard's text segments (as samples) at once.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from mm_assets.core import schemas
from mm_assets.core.interleaved.doc import Document, TextSeg
from mm_assets.core.quality.text_flags import TextQualityConfig, flag_sample
from mm_assets.core.records import ASSISTANT, Sample


def _positions(doc: Document) -> list[int]:
    return [i for i, s in enumerate(doc.segments) if isinstance(s, TextSeg)]


def as_sample(doc: Document) -> Sample:
    """The document's text segments, in order, as assistant turns of one sample."""
    return Sample(doc.key, [{"from": ASSISTANT, "value": t} for t in doc.texts],
                  source=doc.source)


def flag_docs(docs: Iterable[Document], cfg: TextQualityConfig) -> pl.DataFrame:
    """Flag rows of every text segment of ``docs`` (``turn``: segment position; -1 for a
    document-level flag)."""
    rows = []
    for doc in docs:
        pos = _positions(doc)
        for f in flag_sample(as_sample(doc), cfg):
            rows.append({"key": doc.key, "source": doc.source, "flag": f.flag,
                         "turn": pos[f.turn] if 0 <= f.turn < len(pos) else -1,
                         "score": f.score, "start": f.start, "end": f.end})
    return pl.DataFrame(rows, schema=schemas.TEXT_QUALITY)


def ppl_docs(docs: Iterable[Document], score) -> pl.DataFrame:
    """Perplexity per text segment.

    Args:
        docs: documents.
        score: ``list[Sample] -> DataFrame`` with :data:`~mm_assets.core.schemas.PPL_SCORES`
            columns (``PplScorer.score``).
    """
    samples, index = [], []
    for doc in docs:
        for p in _positions(doc):
            samples.append(Sample(f"{doc.key}#{p}", [{"from": ASSISTANT,
                                                       "value": doc.segments[p].text}],
                                  source=doc.source))
            index.append((doc.key, p))
    if not samples:
        return pl.DataFrame(schema=schemas.DOC_PPL)
    table = score(samples)
    by_key = {r["key"]: r for r in table.iter_rows(named=True)}
    rows = []
    for s, (key, p) in zip(samples, index, strict=True):
        r = by_key[s.key]
        rows.append({"key": key, "pos": p, "n_tokens": r["n_assistant_tokens"],
                     "nll": r["nll"], "ppl": r["ppl"], "reason": r["reason"]})
    return pl.DataFrame(rows, schema=schemas.DOC_PPL)
