"""Typed records handed between stages.

One record per hand-off (see STYLE.md): a :class:`Sample` travels from ingest to mixtures,
a :class:`Quarantined` row records a sample that could not be processed, and
:class:`StageCounts` carries the accounting invariant ``in = out + removed + quarantined``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

HUMAN = "human"
ASSISTANT = "gpt"
IMAGE_TOKEN = "<image>"


@dataclass(slots=True)
class Sample:
    """One instruction sample in canonical (LLaVA) form.

    Attributes:
        key: unique, stable WebDataset key (``[A-Za-z0-9_-]``, no dots).
        conversations: turns ``[{"from": "human"|"gpt"|"system", "value": str}, ...]``.
        images: encoded image bytes, in prompt order (0..n; empty for text-only samples).
        image_exts: file extension per image (``"jpg"``, ``"png"``, ...), same length as images.
        source: name of the input the sample came from (file stem or shard URL).
        metadata: free-form JSON-serialisable metadata (source id, provenance, ...).
    """

    key: str
    conversations: list[dict[str, str]]
    images: list[bytes] = field(default_factory=list)
    image_exts: list[str] = field(default_factory=list)
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_text_only(self) -> bool:
        return not self.images

    def text(self) -> str:
        """All turns joined by newlines (image tokens included)."""
        return "\n".join(t["value"] for t in self.conversations)


@dataclass(slots=True)
class Quarantined:
    """A sample a stage could not process, kept with its reason.

    Attributes:
        key: the sample key (or a synthetic ``<source>:<line>`` key when none could be made).
        stage: the asset that quarantined it (``raw_shards``, ``embeddings``, ...).
        reason: a short machine-readable reason (``missing_image``, ``bad_json``, ...).
        error: the human-readable error message.
        location: where the input came from (file and line, tar member).
    """

    key: str
    stage: str
    reason: str
    error: str = ""
    location: str = ""

    def as_row(self) -> dict[str, str]:
        return {
            "key": self.key,
            "stage": self.stage,
            "reason": self.reason,
            "error": self.error[:2000],
            "location": self.location,
        }


QUARANTINE_SCHEMA = {"key": str, "stage": str, "reason": str, "error": str, "location": str}


@dataclass(slots=True)
class StageCounts:
    """Accounting of one stage over one partition: ``n_in = n_out + removed + quarantined``.

    Attributes:
        n_in: samples read.
        n_out: samples written.
        removed: removed samples per reason (e.g. ``{"semdedup": 3}``).
        quarantined: quarantined samples per reason (e.g. ``{"missing_image": 2}``).
    """

    n_in: int = 0
    n_out: int = 0
    removed: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)

    @property
    def n_removed(self) -> int:
        return sum(self.removed.values())

    @property
    def n_quarantined(self) -> int:
        return sum(self.quarantined.values())

    def reconciles(self) -> bool:
        return self.n_in == self.n_out + self.n_removed + self.n_quarantined

    def as_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_removed": self.n_removed,
            "n_quarantined": self.n_quarantined,
            "reconciles": self.reconciles(),
        }
        for reason, n in sorted(self.removed.items()):
            meta[f"removed_{reason}"] = n
        for reason, n in sorted(self.quarantined.items()):
            meta[f"quarantined_{reason}"] = n
        return meta
