"""Streaming readers for instruction-data input formats.

Supported (one record at a time; a 10M-record JSON array is never loaded whole):

- LLaVA / MAmmoTH-VL: ``{"id", "image": str | [str] | absent, "conversations": [{from, value}]}``
  as a JSON array or JSONL.
- ShareGPT / LLaMA-Factory: ``{"messages": [{role, content}], "images": [...]}``, where
  ``content`` may also be OpenAI-style parts ``[{"type": "text"|"image_url", "value"|...}]``.
- LLaVA eval style: ``{"id", "image", "instruction", "output"}``.

Each record becomes a :class:`SourceRecord`; a record that cannot be parsed becomes a
:class:`SourceRecord` with ``reason``/``error`` set, so it is counted and quarantined downstream
instead of being dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import ijson

from mm_assets.core.records import ASSISTANT, HUMAN, IMAGE_TOKEN

ROLE_MAP = {"human": HUMAN, "user": HUMAN, "gpt": ASSISTANT, "assistant": ASSISTANT,
            "system": "system", "model": ASSISTANT, "bot": ASSISTANT}
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(slots=True)
class SourceRecord:
    """A parsed input record, before its images are read.

    Attributes:
        key: unique WebDataset key.
        source: input name (slug of the file stem).
        location: ``file:record-index`` of the record in its input.
        conversations: turns with canonical roles, or ``None`` when the record had none.
        image_refs: image paths as written in the record (resolved against the image root later).
        metadata: source id and any other top-level fields that are small scalars.
        reason: set when the record is unusable (``bad_json``, ``unsupported_modality``, ...).
        error: human-readable message for ``reason``.
    """

    key: str
    source: str
    location: str
    conversations: list[dict[str, str]] | None = None
    image_refs: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @staticmethod
    def from_json(line: str) -> SourceRecord:
        return SourceRecord(**json.loads(line))


def safe_id(value: Any, limit: int = 48) -> str:
    """Source id made safe for a WebDataset key (no dots, slashes or spaces)."""
    return _SAFE.sub("_", str(value)).strip("_")[:limit]


def make_key(slug: str, index: int, source_id: Any) -> str:
    """Stable unique key ``{slug}-{index:07d}[-{id}]``: the record index makes repeats unique."""
    sid = safe_id(source_id) if source_id is not None else ""
    return f"{slug}-{index:07d}" + (f"-{sid}" if sid else "")


def _content_to_text(content: Any, images: list[str]) -> str:
    """OpenAI-style content parts to text with an image token where each image stood."""
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            parts.append(str(part.get("value", part.get("text", ""))))
        elif kind in ("image_url", "image"):
            val = part.get("value", part.get("image_url"))
            if isinstance(val, dict):
                val = val.get("url")
            images.append(str(val))
            parts.append(IMAGE_TOKEN)
    return "\n".join(parts)


def normalise(obj: Any, key: str, source: str, location: str) -> SourceRecord:
    """Turn one decoded JSON value into a :class:`SourceRecord` (never raises on bad data)."""
    rec = SourceRecord(key=key, source=source, location=location)
    if not isinstance(obj, dict):
        rec.reason, rec.error = "bad_record", f"expected an object, got {type(obj).__name__}"
        return rec
    rec.metadata = {k: v for k, v in obj.items() if isinstance(v, (str, int, float, bool))
                    and k not in ("image", "instruction", "output") and len(str(v)) < 512}
    if "video" in obj or "videos" in obj:
        rec.reason, rec.error = "unsupported_modality", "video samples are not supported"
        return rec
    images = obj.get("image", obj.get("images"))
    refs: list[str] = []
    if isinstance(images, str):
        refs = [images]
    elif isinstance(images, list):
        refs = [str(i) for i in images]
    turns: list[dict[str, str]] | None = None
    if isinstance(obj.get("conversations"), list):
        turns = [{"from": str(t.get("from", "")), "value": t.get("value")}
                 for t in obj["conversations"] if isinstance(t, dict)]
    elif isinstance(obj.get("messages"), list):
        turns = []
        for t in obj["messages"]:
            if isinstance(t, dict):
                turns.append({"from": str(t.get("role", "")),
                              "value": _content_to_text(t.get("content"), refs)})
    elif "instruction" in obj and "output" in obj:
        q = str(obj["instruction"])
        if refs and IMAGE_TOKEN not in q:
            q = f"{IMAGE_TOKEN}\n{q}"
        turns = [{"from": HUMAN, "value": q}, {"from": ASSISTANT, "value": str(obj["output"])}]
    if turns is None:
        rec.reason, rec.error = "missing_conversations", "no conversations/messages field"
        return rec
    for t in turns:
        role = ROLE_MAP.get(t["from"].lower())
        if role is None:
            rec.reason, rec.error = "unknown_role", f"unknown role {t['from']!r}"
            return rec
        t["from"] = role
        if not isinstance(t["value"], str):
            t["value"] = "" if t["value"] is None else str(t["value"])
    rec.conversations, rec.image_refs = turns, refs
    return rec


def iter_json_values(f: IO[bytes], name: str) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(index, value, error)`` from a JSON array or JSONL stream.

    A JSONL line that is not valid JSON (or not UTF-8) yields ``(index, None, message)`` and
    reading goes on. A JSON array that breaks mid-way yields one error for the rest.
    """
    head = f.read(4096)
    f.seek(0)
    first = head.lstrip()[:1]
    if first == b"[":
        i = 0
        try:
            for i, value in enumerate(ijson.items(f, "item", use_float=True)):
                yield i, value, None
        except (ijson.JSONError, UnicodeDecodeError) as e:
            yield i + 1, None, f"bad_json: array broken after record {i}: {e}"
        return
    for i, raw in enumerate(f):
        line = raw.strip()
        if not line:
            continue
        try:
            yield i, json.loads(line.decode("utf-8")), None
        except UnicodeDecodeError as e:
            yield i, None, f"bad_encoding: {e}"
        except json.JSONDecodeError as e:
            yield i, None, f"bad_json: {e}"
