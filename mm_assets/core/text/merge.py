"""Merging samples that share one image list into multi-turn samples.

Rules (DESIGN.md "merged"):
- samples whose ordered image list is identical (same pixel hashes, see :mod:`.dedup`) form a
  group, the caller decides which; the first member's image bytes are kept; text-only samples
  are never merged with each other;
- conversations are concatenated in key order; the image token appears once per image, in the
  first human turn of the merged sample, at the position it had in the first member (start or
  end of the turn); it is removed from later members' turns;
- identical (question, answer) pairs are kept once; different answers to one question are all
  kept, in order;
- at most ``max_turns`` turns per merged sample: beyond, the group is split into several merged
  samples (each with the image token), none lost;
- ``metadata["merged_from"]`` lists every source key of the group (on each part), and
  ``pair_sources`` the source key of each kept (question, answer) pair.

:func:`image_token_problem` states the output rule; the merged asset checks every sample it
writes against it (a blocking asset check).
"""

from __future__ import annotations

from dataclasses import dataclass

from mm_assets.core.records import HUMAN, IMAGE_TOKEN, Sample


@dataclass(frozen=True, slots=True)
class MergeConfig:
    """Attributes:
    max_turns: turns per merged sample at most (even, ≥ 2).
    """

    max_turns: int = 64

    def __post_init__(self) -> None:
        if self.max_turns < 2:
            raise ValueError(f"max_turns must be >= 2, got {self.max_turns}")


def image_token_problem(s: Sample) -> str | None:
    """Why ``s`` breaks the merged rule "one image token per image, all in the first human
    turn, none elsewhere", or ``None`` when it keeps it."""
    first = next((i for i, t in enumerate(s.conversations) if t["from"] == HUMAN), None)
    for i, t in enumerate(s.conversations):
        n = t["value"].count(IMAGE_TOKEN)
        if n and i != first:
            return f"{n} {IMAGE_TOKEN} token(s) in turn {i} ({t['from']}), not the first human turn"
    n_first = s.conversations[first]["value"].count(IMAGE_TOKEN) if first is not None else 0
    if n_first != len(s.images):
        return f"{n_first} {IMAGE_TOKEN} token(s) for {len(s.images)} image(s)"
    return None


def _strip_token(text: str) -> tuple[str, str]:
    """Text without image tokens and where the first token stood (``start``/``end``/``none``)."""
    if IMAGE_TOKEN not in text:
        return text, "none"
    pos = "end" if text.rstrip().endswith(IMAGE_TOKEN) and not text.lstrip().startswith(
        IMAGE_TOKEN) else "start"
    return text.replace(IMAGE_TOKEN, "").strip(), pos


def _pairs(s: Sample) -> list[tuple[dict, dict | None]]:
    """(human, answer) pairs; system turns are dropped into the preceding pair's context."""
    out, q = [], None
    for t in s.conversations:
        if t["from"] == HUMAN:
            if q is not None:
                out.append((q, None))
            q = t
        elif t["from"] != "system":
            out.append((q or {"from": HUMAN, "value": ""}, t))
            q = None
    if q is not None:
        out.append((q, None))
    return out


def merge_group(members: list[Sample], cfg: MergeConfig) -> list[Sample]:
    """Merge samples sharing one image list; returns ≥ 1 merged samples.

    Raises:
        ValueError: members have different numbers of images or are text-only.
    """
    members = sorted(members, key=lambda s: s.key)
    first = members[0]
    if not first.images or any(len(m.images) != len(first.images) for m in members):
        raise ValueError("merge_group needs members with one non-empty image list")
    n_img = len(first.images)
    _, pos = _strip_token(next((t["value"] for t in first.conversations if t["from"] == HUMAN),
                               ""))
    seen, turns, origin = set(), [], []
    for m in members:
        for q, a in _pairs(m):
            qtext, _ = _strip_token(q["value"])
            pair = (qtext, a["value"] if a else None)
            if pair in seen:
                continue
            seen.add(pair)
            turns.append([{**q, "value": qtext}] + ([dict(a)] if a else []))
            origin.append(m.key)
    per = max(1, cfg.max_turns // 2)
    out = []
    for part, start in enumerate(range(0, len(turns), per)):
        chunk = turns[start:start + per]
        conv = [dict(t) for pair in chunk for t in pair]
        tokens = IMAGE_TOKEN * n_img
        conv[0]["value"] = (f"{conv[0]['value']}\n{tokens}" if pos == "end"
                            else f"{tokens}\n{conv[0]['value']}")
        key = first.key if part == 0 else f"{first.key}-part{part}"
        meta = {**first.metadata, "merged_from": [m.key for m in members], "n_merged": len(members),
                "pair_sources": origin[start:start + per], "part": part,
                "image_token_position": pos}
        out.append(Sample(key, conv, list(first.images), list(first.image_exts), first.source,
                          meta))
    return out
