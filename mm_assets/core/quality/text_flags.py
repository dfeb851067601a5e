"""Per-turn text-quality flags for instruction data (formatting defects of generated text).

Each check looks at one turn (or at a question/answer pair) and returns :class:`Flag` records
with a score and the character span that triggered it, so a gallery can highlight it. Nothing is
removed here: ``curated`` removes the flags its config selects, with reason ``text_<flag>``.

Flags (name: what; threshold and its source):

- ``template_tokens``: leaked chat-template / special tokens (``<|im_start|>``, ``<|eot_id|>``,
  ``[INST]``, ``<s>``, ``<start_of_turn>``, ...) in any turn.
- ``stray_image_token``: more ``<image>`` tokens than images, or one in an answer.
- ``unbalanced_latex``: odd count of unescaped ``$`` (after ``$$`` pairs and currency amounts),
  ``\\(``/``\\)``, ``\\[``/``\\]`` or ``\\begin{X}``/``\\end{X}`` counts that differ.
- ``unbalanced_code``: an odd number of code fences (three backticks).
- ``unbalanced_brackets``: ``()``, ``[]``, ``{}`` that do not nest, ignoring list markers
  (``1)``, ``a)``) and emoticons; only outside code and LaTeX.
- ``html_markdown``: HTML tags or entities (``<div>``, ``&nbsp;``, ``&#39;``) and markdown debris
  (an odd number of ``**``, empty links ``[](...)``, lines of only ``#``/``*``).
- ``mojibake``: ``ftfy.is_bad`` (ftfy, Speer 2019) — UTF-8 decoded as Latin-1/CP-1252.
- ``control_chars``: C0/C1 control characters (except tab/newline) or U+FFFD.
- ``repetition``: Gopher repetition filter (Rae et al. 2021, "Scaling Language Models: Methods,
  Analysis & Insights from Training Gopher", Table A1; as in datatrove
  ``GopherRepetitionFilter``): duplicate-line fraction > 0.30, characters in duplicate lines
  > 0.20, top 2/3/4-gram character share > 0.20/0.18/0.16, duplicated 5..10-gram character
  share > 0.15..0.10 — on turns of at least ``repetition_min_words`` words.
- ``truncated``: an answer of at least ``truncation_min_words`` words that ends without terminal
  punctuation, or ends in a dangling function word (``the``, ``and``, ``of``, ...) or a
  hyphen/comma — the shape of a generation cut at ``max_new_tokens``.
- ``empty_answer``: an answer with no letter or digit.
- ``answer_repeats_question``: the answer equals the question (image tokens and case ignored) or
  shares ≥ ``echo_jaccard`` of its word 3-grams with it (≥ 5 words).
- ``mc_no_option``: the question lists ≥ 2 lettered options (``A. ...``, ``(B) ...``) and the
  answer names no option letter and contains no option's text.
- ``wrong_language``: Compact Language Detector 2 (Chromium's CLD2 through pycld2; its model is
  compiled into the package) reliably gives ≥ ``lang_min_percent`` % of an answer of
  ≥ ``lang_min_chars`` letters to one language not in ``languages`` (answers only: a prompt
  may quote other languages on purpose, e.g. a translation task).
- ``length_ratio``: answer characters / question characters > ``max_length_ratio`` (answers of
  ≥ 2,000 characters only) — runaway generations.

Cost: pure Python with compiled regular expressions, about 10-30 µs per turn plus ~80 µs per turn
for language ID; memory is one sample at a time.

Modules: the flag names, :class:`TextQualityConfig` and :class:`Flag` are in ``text_flags_config``;
the formatting checks of a turn's text in ``text_flags_markup``; the answer checks (repetition,
options, echo, truncation, language) in ``text_flags_answer``; this module runs them per sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from mm_assets.core import schemas
from mm_assets.core.quality.text_flags_answer import (
    echo_score,
    language_flag,
    mc_no_option,
    mc_options,
    repetition_score,
    truncated_flag,
)
from mm_assets.core.quality.text_flags_config import (
    DEFAULT_FILTERS,
    FLAGS,
    Flag,
    TextQualityConfig,
)
from mm_assets.core.quality.text_flags_markup import (
    CTRL,
    FENCE,
    TEMPLATE,
    brackets_flag,
    html_flag,
    is_mojibake,
    latex_flag,
)
from mm_assets.core.records import ASSISTANT, HUMAN, IMAGE_TOKEN, Sample

__all__ = ["DEFAULT_FILTERS", "FLAGS", "FLAG_SCHEMA", "Flag", "TextQualityConfig", "flag_rows",
           "flag_sample", "repetition_score"]


def _turn_flags(text: str, is_answer: bool, cfg: TextQualityConfig) -> Iterator[Flag]:
    for m in TEMPLATE.finditer(text):
        yield Flag("template_tokens", 0, 1.0, m.start(), m.end())
        break
    if is_answer and IMAGE_TOKEN in text:
        i = text.index(IMAGE_TOKEN)
        yield Flag("stray_image_token", 0, 1.0, i, i + len(IMAGE_TOKEN))
    m = CTRL.search(text)
    if m:
        yield Flag("control_chars", 0, float(len(CTRL.findall(text))), m.start(), m.end())
    if is_mojibake(text):
        yield Flag("mojibake", 0, 1.0, 0, len(text))
    if ("```" in text or "~~~" in text) and len(FENCE.findall(text)) % 2:
        pos = [f.start() for f in FENCE.finditer(text)][-1]
        yield Flag("unbalanced_code", 0, 1.0, pos, pos + 3)
    for check in (latex_flag, brackets_flag, html_flag):
        f = check(text)
        if f:
            yield f
    ratio, _ = repetition_score(text, cfg.repetition_min_words) if is_answer else (0.0, "")
    if ratio > 1.0:
        yield Flag("repetition", 0, round(ratio, 4), 0, len(text))
    f = language_flag(text, cfg) if is_answer else None
    if f:
        yield f


def flag_sample(sample: Sample, cfg: TextQualityConfig) -> list[Flag]:
    """Every flag of one sample, per turn (``Flag.turn`` indexes ``sample.conversations``).

    Question/answer checks pair each assistant turn with the human turn before it.
    """
    out: list[Flag] = []
    convs = sample.conversations
    n_tokens = sum(t["value"].count(IMAGE_TOKEN) for t in convs)
    if n_tokens > len(sample.images):
        out.append(Flag("stray_image_token", -1, float(n_tokens - len(sample.images))))
    question = ""
    for i, turn in enumerate(convs):
        text, role = turn.get("value", ""), turn.get("from")
        is_answer = role == ASSISTANT
        out.extend(Flag(f.flag, i, f.score, f.start, f.end)
                   for f in _turn_flags(text, is_answer, cfg))
        if role == HUMAN:
            question = text
        if not is_answer:
            continue
        if not re.search(r"\w", text):
            out.append(Flag("empty_answer", i, float(len(text.strip()))))
            continue
        echo = echo_score(question, text, cfg.echo_jaccard) if question else 0.0
        if echo:
            out.append(Flag("answer_repeats_question", i, round(echo, 4), 0, len(text)))
        if question and mc_no_option(question, text):
            out.append(Flag("mc_no_option", i, float(len(mc_options(question))), 0, len(text)))
        t = truncated_flag(text, cfg.truncation_min_words, cfg.truncation_max_chars)
        if t:
            out.append(Flag("truncated", i, t.score, t.start, t.end))
        q_chars = len(question.replace(IMAGE_TOKEN, "").strip())
        if q_chars and len(text) >= 3000 and len(text) / q_chars > cfg.max_length_ratio:
            out.append(Flag("length_ratio", i, round(len(text) / max(1, q_chars), 2)))
    return out


FLAG_SCHEMA = schemas.TEXT_QUALITY


def flag_rows(samples: Iterable[Sample], cfg: TextQualityConfig) -> Iterator[dict]:
    """One row per flag (:data:`FLAG_SCHEMA`) over ``samples``; unflagged samples give none."""
    for s in samples:
        for f in flag_sample(s, cfg):
            yield {"key": s.key, "source": s.source, "flag": f.flag, "turn": f.turn,
                   "score": f.score, "start": f.start, "end": f.end}
