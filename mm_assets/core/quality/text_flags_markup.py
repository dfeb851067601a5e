"""Formatting checks of one turn's text for :mod:`mm_assets.core.quality.text_flags`:
leaked template tokens, control characters, code fences, LaTeX, brackets, HTML/markdown debris,
mojibake. Each check returns a :class:`Flag` (turn 0; the caller sets the turn) or None.

Cost: compiled regular expressions, about 10-30 µs per turn; ftfy only on non-ASCII text.
"""

from __future__ import annotations

import re
from collections import Counter

from mm_assets.core.quality.text_flags_config import Flag

TEMPLATE = re.compile(
    r"<\|(?:im_start|im_end|eot_id|end_of_text|endoftext|begin_of_text|start_header_id|"
    r"end_header_id|eom_id|system|user|assistant|end|pad)\|>|\[/?INST\]|<</?SYS>>|</?s>|"
    r"<(?:start|end)_of_turn>|<\|?(?:bos|eos|pad|unk)\|?>|<\uff5c[^>]{1,40}\uff5c>")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_CODE_BLOCK = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
_HTML_TAG = re.compile(r"</?(?:div|span|p|br|hr|img|a|table|tr|td|th|ul|ol|li|h[1-6]|b|i|em|"
                       r"strong|font|center|script|style|iframe|sup|sub)\b[^<>]{0,200}/?>", re.IGNORECASE)
_HTML_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|#\d{2,5}|#x[0-9a-fA-F]{2,4});")
_MD_DEBRIS = re.compile(r"\[\]\([^)]*\)|^\s*[#*]{2,}\s*$", re.MULTILINE)
_DOLLAR_PAIR = re.compile(r"\$\$.*?\$\$", re.DOTALL)
_CURRENCY = re.compile(r"(?<![\\$])\$(?=\s?[\d.,]*\d)|(?<=\d)\s?\$|(?<=[A-Z]{2})\$")
_LIST_MARK = re.compile(r"^\s*(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})\)", re.MULTILINE)
_EMOTICON = re.compile(r"[:;=]-?[()\[\]]")


def prose(text: str) -> str:
    """Text with code blocks and inline code replaced by spaces (spans keep their offsets)."""
    if "`" not in text:
        return text
    return _CODE_BLOCK.sub(lambda m: " " * len(m.group(0)), text)


def latex_flag(text: str) -> Flag | None:
    if "$" not in text and "\\" not in text:
        return None
    t = prose(text).replace("\\$", "  ")
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


def brackets_flag(text: str) -> Flag | None:
    if all(text.count(a) == text.count(b) for a, b in ("()", "[]", "{}")) and "$" not in text:
        return None  # equal counts: only a mis-nesting could be left, too rare to pay for
    t = _CURRENCY.sub(" ", _ANSI.sub(" ", prose(text)))
    t = re.sub(r"\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", lambda m: " " * len(m.group(0)), t, flags=re.DOTALL)
    t = re.sub(r"([\"'])[\[\](){}]\1", "   ", t)  # a quoted bracket character
    t = re.sub(r"\\[()\[\]{}]", "  ", t)  # LaTeX delimiters and escaped braces: latex_flag's
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


def html_flag(text: str) -> Flag | None:
    if "<" not in text and "&" not in text and "*" not in text and "[" not in text \
            and "#" not in text:
        return None
    t = prose(text)
    m = _HTML_TAG.search(t) or _HTML_ENTITY.search(t) or _MD_DEBRIS.search(t)
    if m:
        return Flag("html_markdown", 0, 1.0, m.start(), m.end())
    bold = [b.start() for b in re.finditer(r"(?<!\*)\*\*(?!\*)", t)]
    if len(bold) % 2:
        return Flag("html_markdown", 0, float(len(bold)), bold[-1], bold[-1] + 2)
    return None


def is_mojibake(text: str) -> bool:
    if text.isascii():  # mojibake needs non-ASCII characters: skip ftfy's regex
        return False
    import ftfy

    return ftfy.is_bad(text)
