"""Answer checks for :mod:`mm_assets.core.quality.text_flags`: Gopher repetition,
multiple-choice answers naming no option, answers echoing the question, truncated generations
and the answer's language (CLD2 through pycld2).

Cost: pure Python, about 10-30 µs per answer plus ~80 µs for language ID.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from mm_assets.core.quality.text_flags_config import Flag, TextQualityConfig
from mm_assets.core.quality.text_flags_markup import FENCE, prose
from mm_assets.core.records import IMAGE_TOKEN

_OPTION = re.compile(r"(?:^|\n)\s*(?:\(([A-H])\)|([A-H])[.):])\s+(\S[^\n]*)")
_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-H])\)?(?![A-Za-z])")
_ARTICLE = re.compile(r"A\s+(?!(?:is|was|are|and|or|because|since|as|seems|fits|matches|would|"
                      r"should|must|can|could|best|only)\b)[a-z]")  # "A giraffe", not "A is"
_WORD = re.compile(r"\w+", re.UNICODE)
_TERMINAL = tuple('.!?。！？…"\'”’)]}*`>:;|$')
_DANGLING = frozenset(["the", "a", "an", "and", "or", "of", "to", "with", "for", "in", "on", "at", "by", "from", "that", "which", "as", "is", "are", "was", "were", "be", "this", "these", "its", "their"])
_GOPHER_TOP = ((2, 0.20), (3, 0.18), (4, 0.16))
_GOPHER_DUP = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def _ngram_shares(words: list[str]) -> Iterator[tuple[str, float, float]]:
    """(check, share, threshold) of the Gopher n-gram repetition checks over ``words``."""
    total = sum(len(w) for w in words) or 1
    for n, thr in _GOPHER_TOP:
        grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        if grams:
            gram, count = grams.most_common(1)[0]
            if count > 1:
                yield f"top_{n}gram", sum(len(w) for w in gram) * count / total, thr
    for n, thr in _GOPHER_DUP:
        seen: set[tuple[str, ...]] = set()
        dup = [False] * len(words)
        for i in range(len(words) - n + 1):
            g = tuple(words[i:i + n])
            if g in seen:
                dup[i:i + n] = [True] * n
            seen.add(g)
        yield f"dup_{n}gram", sum(len(w) for w, d in zip(words, dup, strict=True) if d) / total, thr


def repetition_score(text: str, min_words: int = 30) -> tuple[float, str]:
    """The largest Gopher repetition share over its threshold, and the check's name.

    Returns ``(ratio, check)`` where ``ratio = share / threshold`` (> 1 means flagged), or
    ``(0.0, "")`` for turns shorter than ``min_words`` words.
    """
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < min_words:
        return 0.0, ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    best = (0.0, "")
    if len(lines) > 1:
        counts = Counter(lines)
        dup_lines = sum(c for c in counts.values() if c > 1)
        dup_chars = sum(len(ln) * c for ln, c in counts.items() if c > 1)
        best = max(best, (dup_lines / len(lines) / 0.30, "dup_line_frac"),
                   (dup_chars / max(1, sum(len(ln) for ln in lines)) / 0.20, "dup_line_chars"))
    for name, share, thr in _ngram_shares(words):
        best = max(best, (share / thr, name))
    return best


def mc_options(question: str) -> dict[str, str]:
    return {(m.group(1) or m.group(2)): m.group(3).strip().rstrip(".").lower()
            for m in _OPTION.finditer(question)}


def mc_no_option(question: str, answer: str) -> bool:
    opts = mc_options(question)
    if len(opts) < 2:
        return False
    for m in _LETTER.finditer(answer):
        if m.group(1) in opts and not _ARTICLE.match(answer, m.start()):
            return False
    low = answer.lower()
    return not any(o and o in low for o in opts.values())


def _grams(text: str, n: int = 3) -> set[tuple[str, ...]]:
    w = [x.lower() for x in _WORD.findall(text.replace(IMAGE_TOKEN, " "))]
    return {tuple(w[i:i + n]) for i in range(max(0, len(w) - n + 1))}


def echo_score(question: str, answer: str, jaccard: float) -> float:
    if len(answer) < 0.5 * (len(question) - question.count(IMAGE_TOKEN) * len(IMAGE_TOKEN)):
        return 0.0  # far shorter than the question: neither equal nor 90% of its 3-grams
    q = " ".join(_WORD.findall(question.replace(IMAGE_TOKEN, " ").lower()))
    a = " ".join(_WORD.findall(answer.lower()))
    if not a:
        return 0.0
    if a == q:
        return 1.0
    if len(a.split()) < 5:
        return 0.0
    ga, gq = _grams(answer), _grams(question)
    score = len(ga & gq) / max(1, len(ga | gq))
    return score if score >= jaccard else 0.0


def truncated_flag(answer: str, min_words: int, max_chars: int) -> Flag | None:
    t = answer.rstrip()
    if not t or len(t) > max_chars or t.endswith(_TERMINAL):  # a cut answer has no final stop
        return None
    words = _WORD.findall(t)
    if len(words) < min_words:
        return None
    last = words[-1].lower()
    if t.endswith(("-", ",")) or (last in _DANGLING and t.endswith(words[-1])):
        return Flag("truncated", 0, 1.0, len(t) - len(words[-1]), len(t))
    if t.endswith(_TERMINAL) or t[-1].isdigit() or FENCE.search(t[-5:] or ""):
        return None
    tail = _WORD.findall(re.split(r"[.!?:;\n]", t)[-1])
    if len(tail) < 6:
        return None  # a heading, list item, label or short phrase ends without punctuation
    function = sum(w.lower() in _DANGLING for w in tail)
    capital = sum(w[0].isupper() for w in tail)
    glued = sum(bool(re.search(r"[a-z][A-Z]", w)) for w in tail)
    if function == 0 or capital > len(tail) / 2 or glued >= 2:
        return None  # not prose: a title, a list of names, category lines glued together
    return Flag("truncated", 0, 1.0, len(t) - len(words[-1]), len(t))


def language_flag(text: str, cfg: TextQualityConfig) -> Flag | None:
    if not cfg.languages:
        return None
    if len(text) < cfg.lang_min_chars:  # cheap gate first: letters <= characters
        return None
    letters = sum(c.isalpha() for c in prose(text))
    if letters < cfg.lang_min_chars:
        return None
    import pycld2

    try:
        reliable, _, ((_, lang, percent, _), *_) = pycld2.detect(text)
    except pycld2.error:  # invalid UTF-8 inside (lone surrogates): mojibake's business
        return None
    if not reliable or lang in cfg.languages or lang == "un" or percent < cfg.lang_min_percent:
        return None
    return Flag("wrong_language", 0, float(percent), 0, len(text))
