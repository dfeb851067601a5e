"""Perplexity under a KenLM n-gram model (ARPA or KenLM binary), CCNet style, on CPU.

Text is normalised with the core of CCNet's normaliser before scoring (lower case, accents
removed, digits mapped to ``0``, whitespace collapsed; CCNet's punctuation mapping and
SentencePiece step are not applied) and split into word and punctuation tokens (``\\w+`` or one
non-space symbol), which matches word-level models such as KenLM's own ``test.arpa``. Each
line is one sentence scored with ``<s>`` / ``</s>``; a text's perplexity is
``10 ** (-sum(log10 p) / sum(tokens + 1))`` over its lines (the ``+1`` is ``</s>``), which is
what ``kenlm.Model.perplexity`` gives for a single line. The table has the same columns as
:func:`mm_assets.core.quality.ppl.score_samples`, with ``nll`` in nats/token, so deciles and filters
work unchanged. An n-gram model has no context limit: nothing is truncated. Assistant turns are
scored on their own (an n-gram model does not condition on the earlier turns).

Source: CCNet (Wenzek et al. 2020), ``cc_net/perplexity.py`` and ``cc_net/text_normalizer.py``.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mm_assets.core.quality.ppl import PPL_SCHEMA
from mm_assets.core.records import ASSISTANT, Sample

_TOKEN = re.compile(r"\w+|[^\w\s]")
_DIGIT = re.compile(r"\d")
_IMAGE = re.compile(r"<image>")
_LN10 = math.log(10.0)


def normalize(text: str) -> str:
    """CCNet normalisation: lower case, strip accents, digits to ``0``, collapse spaces."""
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return " ".join(_DIGIT.sub("0", text).split())


def tokenize(line: str) -> list[str]:
    """Normalised word and punctuation tokens of one line."""
    return _TOKEN.findall(normalize(line))


@dataclass(slots=True)
class KenLMModel:
    """A loaded KenLM model.

    Attributes:
        path: the model file (ARPA or KenLM binary).
        model: the ``kenlm.Model``.
    """

    path: str
    model: object

    @property
    def order(self) -> int:
        return int(self.model.order)

    def log10_score(self, text: str) -> tuple[float, int]:
        """Sum of log10 probabilities and scored-token count (tokens + ``</s>``) over the
        non-empty lines of ``text``; ``(0.0, 0)`` when there is no token."""
        total, n = 0.0, 0
        for line in text.splitlines():
            toks = tokenize(_IMAGE.sub(" ", line))
            if toks:
                total += self.model.score(" ".join(toks), bos=True, eos=True)
                n += len(toks) + 1
        return total, n

    def nll(self, text: str) -> tuple[float | None, int]:
        """Mean negative log-likelihood (nats/token) and scored-token count; ``None`` when
        the text has no token."""
        total, n = self.log10_score(text)
        return (-total * _LN10 / n if n else None), n


@functools.lru_cache(maxsize=4)
def load_kenlm(path: str) -> KenLMModel:
    """Load a KenLM ARPA or binary model (cached per process).

    Args:
        path: local file path.

    Raises:
        ImportError: the ``kenlm`` package is missing (``pip install 'mm-assets[kenlm]'``).
        FileNotFoundError: ``path`` does not exist (message names it).
        ValueError: ``path`` is not a readable ARPA / KenLM binary model (message names it).
    """
    try:
        import kenlm
    except ImportError as e:
        raise ImportError("KenLM perplexity needs the kenlm package: "
                          "pip install 'mm-assets[kenlm]'") from e
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"KenLM model file not found: {path}")
    try:
        model = kenlm.Model(str(p))
    except (OSError, RuntimeError) as e:
        detail = str(e).splitlines()[0][-200:]
        raise ValueError(f"KenLM model file {path} is not a valid ARPA or KenLM binary model: "
                         f"{detail}") from e
    return KenLMModel(str(p), model)


def score_samples_kenlm(samples: list[Sample], lm: KenLMModel) -> pl.DataFrame:
    """Perplexity table for ``samples`` under a KenLM model.

    Args:
        samples: samples to score (image tokens are ignored).
        lm: a loaded model.

    Returns:
        DataFrame with :data:`~mm_assets.core.quality.ppl.PPL_SCHEMA` columns: ``nll``/``ppl`` over the
        assistant turns, ``text_nll``/``text_ppl`` over all turns, token counts including one
        ``</s>`` per line, ``truncated`` always false; ``reason`` is ``no_assistant_text`` when
        no assistant token exists (then ``nll``/``ppl`` are null).
    """
    rows = []
    for s in samples:
        asst = "\n".join(t["value"] for t in s.conversations if t["from"] == ASSISTANT)
        nll, n_asst = lm.nll(asst)
        text_nll, n_text = lm.nll("\n".join(t["value"] for t in s.conversations))
        rows.append({
            "key": s.key, "n_tokens": n_text, "n_assistant_tokens": n_asst,
            "nll": nll, "ppl": math.exp(nll) if nll is not None else None,
            "text_nll": text_nll,
            "text_ppl": math.exp(text_nll) if text_nll is not None else None,
            "truncated": False, "reason": None if nll is not None else "no_assistant_text",
            "source": s.source})
    return pl.DataFrame(rows, schema=PPL_SCHEMA)
