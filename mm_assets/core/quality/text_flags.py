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
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

from mm_assets.core import schemas
from mm_assets.core.records import ASSISTANT, HUMAN, IMAGE_TOKEN, Sample

FLAGS = ("template_tokens", "stray_image_token", "unbalanced_latex", "unbalanced_code",
         "unbalanced_brackets", "html_markdown", "mojibake", "control_chars", "repetition",
         "truncated", "empty_answer", "answer_repeats_question", "mc_no_option",
         "wrong_language", "length_ratio")
DEFAULT_FILTERS = ("template_tokens", "stray_image_token", "control_chars", "mojibake",
                   "repetition", "empty_answer", "answer_repeats_question")


@dataclass(frozen=True, slots=True)
class TextQualityConfig:
    """Thresholds of the text-quality flags (see the module docstring for their sources).

    Attributes:
        languages: ISO 639-1 codes accepted by ``wrong_language`` (empty: check disabled).
        lang_min_chars: letters a turn needs before its language is judged.
        lang_min_percent: share of the turn's bytes (%) CLD2 must give one other language.
        repetition_min_words: words an answer needs before the Gopher repetition checks
            apply (Gopher's own minimum document length is 50 words).
        truncation_min_words: words an answer needs before ``truncated`` applies.
        truncation_max_chars: longer answers are documents, not generations cut at a token
            limit (4,096 tokens ≈ 16k characters at most; most limits are far lower).
        echo_jaccard: word 3-gram Jaccard above which an answer repeats the question.
        max_length_ratio: answer/question character ratio above which ``length_ratio`` fires.
    """

    languages: tuple[str, ...] = ("en",)
    lang_min_chars: int = 40
    lang_min_percent: int = 90
    repetition_min_words: int = 50
    truncation_min_words: int = 12
    truncation_max_chars: int = 8000
    echo_jaccard: float = 0.9
    max_length_ratio: float = 100.0

    def __post_init__(self) -> None:
        if self.lang_min_chars < 1 or self.repetition_min_words < 1:
            raise ValueError(f"lang_min_chars and repetition_min_words must be >= 1: {self}")
        if not 0 < self.echo_jaccard <= 1:
            raise ValueError(f"echo_jaccard must be in (0, 1], got {self.echo_jaccard}")
        if self.max_length_ratio <= 1:
            raise ValueError(f"max_length_ratio must be > 1, got {self.max_length_ratio}")

    def fingerprint(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


@dataclass(frozen=True, slots=True)
class Flag:
    """One defect found in one turn.

    Attributes:
        flag: one of :data:`FLAGS`.
        turn: index of the turn in ``conversations`` (-1: the whole sample).
        score: the measured value that crossed the threshold (a count, ratio or share).
        start, end: character span in the turn's text that triggered it (0, 0 when none).
    """

    flag: str
    turn: int
    score: float
    start: int = 0
    end: int = 0


_TEMPLATE = re.compile(
    r"<\|(?:im_start|im_end|eot_id|end_of_text|endoftext|begin_of_text|start_header_id|"
    r"end_header_id|eom_id|system|user|assistant|end|pad)\|>|\[/?INST\]|<</?SYS>>|</?s>|"
    r"<(?:start|end)_of_turn>|<\|?(?:bos|eos|pad|unk)\|?>|<\uff5c[^>]{1,40}\uff5c>")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_CODE_BLOCK = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_HTML_TAG = re.compile(r"</?(?:div|span|p|br|hr|img|a|table|tr|td|th|ul|ol|li|h[1-6]|b|i|em|"
                       r"strong|font|center|script|style|iframe|sup|sub)\b[^<>]{0,200}/?>", re.IGNORECASE)
_HTML_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|#\d{2,5}|#x[0-9a-fA-F]{2,4});")
_MD_DEBRIS = re.compile(r"\[\]\([^)]*\)|^\s*[#*]{2,}\s*$", re.MULTILINE)
_DOLLAR_PAIR = re.compile(r"\$\$.*?\$\$", re.DOTALL)
_CURRENCY = re.compile(r"(?<![\\$])\$(?=\s?[\d.,]*\d)|(?<=\d)\s?\$|(?<=[A-Z]{2})\$")
_LIST_MARK = re.compile(r"^\s*(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})\)", re.MULTILINE)
_EMOTICON = re.compile(r"[:;=]-?[()\[\]]")
_OPTION = re.compile(r"(?:^|\n)\s*(?:\(([A-H])\)|([A-H])[.):])\s+(\S[^\n]*)")
_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-H])\)?(?![A-Za-z])")
_ARTICLE = re.compile(r"A\s+(?!(?:is|was|are|and|or|because|since|as|seems|fits|matches|would|"
                      r"should|must|can|could|best|only)\b)[a-z]")  # "A giraffe", not "A is"
_WORD = re.compile(r"\w+", re.UNICODE)
_TERMINAL = tuple('.!?。！？…"\'”’)]}*`>:;|$')
_DANGLING = frozenset(["the", "a", "an", "and", "or", "of", "to", "with", "for", "in", "on", "at", "by", "from", "that", "which", "as", "is", "are", "was", "were", "be", "this", "these", "its", "their"])
_GOPHER_TOP = ((2, 0.20), (3, 0.18), (4, 0.16))
_GOPHER_DUP = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def _prose(text: str) -> str:
    """Text with code blocks and inline code replaced by spaces (spans keep their offsets)."""
    if "`" not in text:
        return text
    return _CODE_BLOCK.sub(lambda m: " " * len(m.group(0)), text)


def _latex(text: str) -> Flag | None:
    if "$" not in text and "\\" not in text:
        return None
    t = _prose(text).replace("\\$", "  ")
    t = _DOLLAR_PAIR.sub(lambda m: " " * len(m.group(0)), t)
    dollars = [m.start() for m in re.finditer(r"\$", t)]
    if len(dollars) % 2:  # odd: balanced only if currency amounts ("$5") explain it
        rest = [i for i in dollars if not _CURRENCY.match(t, i)]
        if len(rest) % 2:
            return Flag("unbalanced_latex", 0, float(len(rest)), rest[-1], rest[-1] + 1)
    for opener, closer in ((r"\(", r"\)"), (r"\[", r"\]")):
        a, b = t.count(opener), t.count(closer)
        if a != b:
            pos = max(t.rfind(opener), t.rfind(closer))
            return Flag("unbalanced_latex", 0, float(abs(a - b)), pos, pos + 2)
    begins = Counter(re.findall(r"\\begin\{(\w+\*?)\}", t))
    ends = Counter(re.findall(r"\\end\{(\w+\*?)\}", t))
    if begins != ends:
        pos = max(t.rfind("\\begin"), t.rfind("\\end"))
        return Flag("unbalanced_latex", 0, float(sum(((begins - ends) + (ends - begins)).values())),
                    pos, pos + 6)
    return None


def _brackets(text: str) -> Flag | None:
    if all(text.count(a) == text.count(b) for a, b in ("()", "[]", "{}")) and "$" not in text:
        return None  # equal counts: only a mis-nesting could be left, too rare to pay for
    t = _CURRENCY.sub(" ", _ANSI.sub(" ", _prose(text)))
    t = re.sub(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", lambda m: " " * len(m.group(0)), t, flags=re.DOTALL)
    t = re.sub(r"([\"'])[\[\](){}]\1", "   ", t)  # a quoted bracket character
    t = re.sub(r"\\[()\[\]{}]", "  ", t)  # LaTeX delimiters and escaped braces: _latex's
    t = _LIST_MARK.sub(lambda m: " " * len(m.group(0)), t)
    t = _EMOTICON.sub(lambda m: " " * len(m.group(0)), t)
    pairs, stack, bad = {")": "(", "]": "[", "}": "{"}, [], []
    for i, ch in enumerate(t):
        if ch in "([{":
            stack.append((ch, i))
        elif ch in pairs:
            if stack and stack[-1][0] == pairs[ch]:
                stack.pop()
            else:
                bad.append(i)
    bad += [i for _, i in stack]
    # long documents quote stray brackets now and then: one unmatched per 5,000 characters
    if bad and len(bad) >= max(1, len(t) // 5000):
        return Flag("unbalanced_brackets", 0, float(len(bad)), bad[0], bad[0] + 1)
    return None


def _html(text: str) -> Flag | None:
    if "<" not in text and "&" not in text and "*" not in text and "[" not in text \
            and "#" not in text:
        return None
    t = _prose(text)
    m = _HTML_TAG.search(t) or _HTML_ENTITY.search(t) or _MD_DEBRIS.search(t)
    if m:
        return Flag("html_markdown", 0, 1.0, m.start(), m.end())
    bold = [b.start() for b in re.finditer(r"(?<!\*)\*\*(?!\*)", t)]
    if len(bold) % 2:
        return Flag("html_markdown", 0, float(len(bold)), bold[-1], bold[-1] + 2)
    return None


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


def _options(question: str) -> dict[str, str]:
    return {(m.group(1) or m.group(2)): m.group(3).strip().rstrip(".").lower()
            for m in _OPTION.finditer(question)}


def _mc_no_option(question: str, answer: str) -> bool:
    opts = _options(question)
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


def _echo(question: str, answer: str, jaccard: float) -> float:
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


def _truncated(answer: str, min_words: int, max_chars: int) -> Flag | None:
    t = answer.rstrip()
    if not t or len(t) > max_chars or t.endswith(_TERMINAL):  # a cut answer has no final stop
        return None
    words = _WORD.findall(t)
    if len(words) < min_words:
        return None
    last = words[-1].lower()
    if t.endswith(("-", ",")) or (last in _DANGLING and t.endswith(words[-1])):
        return Flag("truncated", 0, 1.0, len(t) - len(words[-1]), len(t))
    if t.endswith(_TERMINAL) or t[-1].isdigit() or _FENCE.search(t[-5:] or ""):
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


def _language(text: str, cfg: TextQualityConfig) -> Flag | None:
    if not cfg.languages:
        return None
    if len(text) < cfg.lang_min_chars:  # cheap gate first: letters <= characters
        return None
    letters = sum(c.isalpha() for c in _prose(text))
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


def _turn_flags(text: str, is_answer: bool, cfg: TextQualityConfig) -> Iterator[Flag]:
    for m in _TEMPLATE.finditer(text):
        yield Flag("template_tokens", 0, 1.0, m.start(), m.end())
        break
    if is_answer and IMAGE_TOKEN in text:
        i = text.index(IMAGE_TOKEN)
        yield Flag("stray_image_token", 0, 1.0, i, i + len(IMAGE_TOKEN))
    m = _CTRL.search(text)
    if m:
        yield Flag("control_chars", 0, float(len(_CTRL.findall(text))), m.start(), m.end())
    if _mojibake(text):
        yield Flag("mojibake", 0, 1.0, 0, len(text))
    if ("```" in text or "~~~" in text) and len(_FENCE.findall(text)) % 2:
        pos = [f.start() for f in _FENCE.finditer(text)][-1]
        yield Flag("unbalanced_code", 0, 1.0, pos, pos + 3)
    for check in (_latex, _brackets, _html):
        f = check(text)
        if f:
            yield f
    ratio, _ = repetition_score(text, cfg.repetition_min_words) if is_answer else (0.0, "")
    if ratio > 1.0:
        yield Flag("repetition", 0, round(ratio, 4), 0, len(text))
    f = _language(text, cfg) if is_answer else None
    if f:
        yield f


def _mojibake(text: str) -> bool:
    if text.isascii():  # mojibake needs non-ASCII characters: skip ftfy's regex
        return False
    import ftfy

    return ftfy.is_bad(text)


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
        echo = _echo(question, text, cfg.echo_jaccard) if question else 0.0
        if echo:
            out.append(Flag("answer_repeats_question", i, round(echo, 4), 0, len(text)))
        if question and _mc_no_option(question, text):
            out.append(Flag("mc_no_option", i, float(len(_options(question))), 0, len(text)))
        t = _truncated(text, cfg.truncation_min_words, cfg.truncation_max_chars)
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
