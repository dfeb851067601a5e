"""Is a rewrite of an assistant turn faithful to the original? One reason per rejection.

Checks, in order (the first that fails names the reason):

- ``empty_rewrite``: nothing left after cleaning;
- ``fidelity_truncated``: generation stopped at the token limit (``finish_reason == "length"``
  from an endpoint, no end-of-sequence token within ``max_new_tokens`` locally), or the rewrite
  stops mid-sentence well short of an original that ends a sentence;
- ``fidelity_echo``: the rewrite repeats the rephrasing instruction (template phrases such as
  "Rewrite the answer", "Reply with the rewritten answer") that the original does not contain;
- ``fidelity_code`` / ``fidelity_latex``: a fenced code block or ``$...$`` span of the original
  is not in the rewrite verbatim;
- ``fidelity_numbers``: a number of the original is missing (multiset, thousands separators
  ignored); ``fidelity_options``: an option letter (``(B)``, ``B.``, "answer is B") is missing;
- ``fidelity_negation``: the original negates (not, no, never, n't, ...) and the rewrite has no
  negation, or two fewer; ``fidelity_hedge``: the original hedges (about, approximately,
  roughly, likely, may, ...) and the rewrite has no hedge at all;
- ``fidelity_repetition``: word-trigram repetition ratio ``1 - distinct/total`` of the rewrite
  above 0.3 and 0.15 above the original's (a sentence looped by the model);
- ``fidelity_length``: the rewrite is under 0.45× an original of 80+ characters, or over
  3× + 80 characters.

The thresholds were set on the labelled set of good and bad rewrites in
``tests/core/text/fidelity_cases.py`` (precision and recall asserted there). Cost: linear in the
text length.
"""

from __future__ import annotations

import re
from typing import Self

_NUM = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*")
_OPT = re.compile(r"(?:\(([A-H])\)|\b([A-H])[.)](?=\s)|\b(?:answer|option) is:?\s*\(?([A-H])\b)")
_LATEX = re.compile(r"\$[^$]+\$")
_CODE = re.compile(r"```.*?```", re.DOTALL)
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
NEGATIONS = {"not", "no", "never", "none", "nothing", "neither", "nor", "cannot", "without",
             "nobody", "nowhere", "false"}
HEDGES = {"about", "approximately", "approx", "around", "roughly", "nearly", "almost", "circa",
          "some", "estimated", "likely", "probably", "possibly", "perhaps", "maybe", "may",
          "might", "could", "appears", "seems", "apparently", "suggests", "uncertain",
          "unclear", "somewhat", "close", "~", "≈"}
ECHO = re.compile(r"\brewrite (?:the|this) (?:answer|text)\b|\brewritten (?:answer|text)\b|"
                  r"\breply with the\b|\bkeep every number\b|\boption letter, formula\b|"
                  r"^\s*answer:\s*$|\bstyle of a wikipedia article\b|\bwell written\. keep\b",
                  re.IGNORECASE | re.MULTILINE)


class Completion(str):
    """A generated text that knows whether generation stopped at the token limit.

    ``Completion("text", truncated=True)`` behaves as the string; backends return it (a plain
    ``str`` means "not known to be truncated").
    """

    truncated: bool

    def __new__(cls, text: str, truncated: bool = False) -> Self:
        obj = super().__new__(cls, text)
        obj.truncated = truncated
        return obj


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("~", " about ").replace("≈", " about "))


def negations(words: list[str]) -> int:
    """Negation words in a word list (``not``, ``no``, ..., and every ``n't`` contraction)."""
    return sum(w in NEGATIONS or w.endswith(("n't", "n’t")) for w in words)


def hedges(words: list[str]) -> int:
    return sum(w in HEDGES for w in words)


def repetition(text: str, n: int = 3) -> float:
    """Word n-gram repetition ratio ``1 - distinct/total`` (0 for fewer than 6 n-grams)."""
    w = _words(text)
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return 0.0 if len(grams) < 6 else 1 - len(set(grams)) / len(grams)


def _cut_short(original: str, rewrite: str) -> bool:
    o, r = original.rstrip(), rewrite.rstrip()
    return (len(r) < 0.7 * len(o) and o[-1:] in ".!?)\"'" and r[-1:].isalnum())


def _content_problem(original: str, rewrite: str) -> str | None:
    for reason, rx in (("fidelity_code", _CODE), ("fidelity_latex", _LATEX)):
        if any(m not in rewrite for m in rx.findall(original)):
            return reason
    nums = [n.replace(",", "") for n in _NUM.findall(_CODE.sub("", original))]
    got = [n.replace(",", "") for n in _NUM.findall(rewrite)]
    if any(nums.count(n) > got.count(n) for n in set(nums)):
        return "fidelity_numbers"
    opts = {"".join(m) for m in _OPT.findall(original)}
    if not opts <= {"".join(m) for m in _OPT.findall(rewrite)}:
        return "fidelity_options"
    wo, wr = _words(original), _words(rewrite)
    n_o, n_r = negations(wo), negations(wr)
    if n_o and (n_r == 0 or n_r < n_o - 1):
        return "fidelity_negation"
    if hedges(wo) and not hedges(wr):
        return "fidelity_hedge"
    return None


def fidelity_problem(original: str, rewrite: str, truncated: bool = False) -> str | None:
    """The reason ``rewrite`` is not a faithful rewrite of ``original``, or ``None``.

    Args:
        original: the assistant turn before rephrasing.
        rewrite: the cleaned model output.
        truncated: generation stopped at the token limit (see :class:`Completion`).

    Returns:
        One of the reasons in the module doc, or ``None`` when every check passes.
    """
    if not rewrite.strip():
        return "empty_rewrite"
    if truncated or getattr(rewrite, "truncated", False):
        return "fidelity_truncated"
    if len(ECHO.findall(rewrite)) > len(ECHO.findall(original)):
        return "fidelity_echo"
    problem = _content_problem(original, rewrite)
    if problem:
        return problem
    rep = repetition(rewrite)
    if rep > 0.3 and rep > repetition(original) + 0.15:
        return "fidelity_repetition"
    if _cut_short(original, rewrite):
        return "fidelity_truncated"
    if (len(original) >= 80 and len(rewrite) < 0.45 * len(original)) or \
            len(rewrite) > 3 * len(original) + 80:
        return "fidelity_length"
    return None
