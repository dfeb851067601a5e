"""Names, settings and the record of the text-quality flags (see
:mod:`mm_assets.core.quality.text_flags` for what each flag means and its source)."""

from __future__ import annotations

from dataclasses import dataclass, fields

FLAGS = ("template_tokens", "stray_image_token", "unbalanced_latex", "unbalanced_code",
         "unbalanced_brackets", "html_markdown", "mojibake", "control_chars", "repetition",
         "truncated", "empty_answer", "answer_repeats_question", "mc_no_option",
         "wrong_language", "length_ratio")
DEFAULT_FILTERS = ("template_tokens", "stray_image_token", "control_chars", "mojibake",
                   "repetition", "empty_answer", "answer_repeats_question")


@dataclass(frozen=True, slots=True)
class TextQualityConfig:
    """Thresholds of the text-quality flags (sources: :mod:`mm_assets.core.quality.text_flags`).

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
