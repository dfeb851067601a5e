"""Streaming readers for instruction-data input formats.

Supported (one record at a time; a 10M-record JSON array is never loaded whole):

- LLaVA / MAmmoTH-VL: ``{"id", "image": str | [str] | absent, "conversations": [{from, value}]}``
  as a JSON array or JSONL.
- ShareGPT / LLaMA-Factory: ``{"messages": [{role, content}], "images": [...]}``, where
  ``content`` may also be OpenAI-style parts ``[{"type": "text"|"image_url", "value"|...}]``.
- LLaVA eval style: ``{"id", "image", "instruction", "output"}``.
- Plain text: ``{"text": ...}`` documents (text-only), or with ``image`` a caption.

The file shapes (array, JSONL, single object, records keyed by id, wrapper object) are detected
in :mod:`~mm_assets.core.ingest.json_shapes`. LLaVA eval question/answer files (``question_id``)
are recognised and refused with a reason naming the format.

Each record becomes a :class:`SourceRecord`; a record that cannot be parsed becomes a
:class:`SourceRecord` with ``reason``/``error`` set, so it is counted and quarantined downstream
instead of being dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from mm_assets.core.ingest.json_shapes import iter_json_values  # noqa: F401  (re-export)
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
        metadata: source id and every other top-level field not consumed as text or images
            (nested objects/lists kept as JSON values).
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
    """OpenAI-style content parts to text with an image token where each image stood (a
    video/audio part becomes a ``<video>``/``<audio>`` token, refused later as
    ``unsupported_modality``).

    Raises:
        ValueError: a part that is not an object or of an unknown type (never skipped).
    """
    if isinstance(content, str) or content is None:
        return content or ""
    parts = []
    for part in content if isinstance(content, list) else [content]:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(str(part.get("value", part.get("text", ""))))
        elif kind in ("image_url", "image"):
            val = part.get("value", part.get("image_url", part.get("image")))
            if isinstance(val, dict):
                val = val.get("url")
            images.append(str(val))
            parts.append(IMAGE_TOKEN)
        elif kind in ("video", "video_url", "audio", "input_audio", "audio_url"):
            parts.append("<video>" if kind.startswith("video") else "<audio>")
        else:
            raise ValueError(f"content part {part!r:.80} is not a text/image/video/audio part")
    return "\n".join(parts)


_CONSUMED = {"image", "images", "conversations", "messages", "instruction", "output"}
_TURN_KEYS = {"from", "value", "role", "content"}
EVAL_FORMATS = {
    "answer_id": ("llava_eval_answers", "a LLaVA eval answer file (question_id, prompt, text, "
                  + "answer_id, model_id): model outputs, not training conversations"),
    "question_id": ("llava_eval_questions", "a LLaVA eval question file (question_id, image, "
                    + "text): questions without answers, not training conversations"),
}


def _turns(raw: list, role_key: str, value_of) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Turns with ``from``/``value`` plus every extra per-turn key kept (``weight``, ``loss``);
    a turn that is not an object is an error, never skipped."""
    out = []
    for n, t in enumerate(raw):
        if not isinstance(t, dict):
            return None, f"turn {n} is a {type(t).__name__}, expected an object"
        extra = {k: v for k, v in t.items() if k not in _TURN_KEYS}
        try:
            value = value_of(t)
        except ValueError as e:
            return None, f"turn {n}: {e}"
        out.append({"from": str(t.get(role_key, "")), "value": value, **extra})
    return out, None


def _plain_text(obj: dict, refs: list[str]) -> list[dict[str, Any]] | None:
    """``{"text": ...}``: a text-only document (one assistant turn), or with images a caption
    (prompted like a WebDataset ``txt`` member)."""
    text = obj.get("text")
    if not isinstance(text, str):
        return None
    turns = [{"from": HUMAN, "value": "Describe the image."}] if refs else []
    return turns + [{"from": ASSISTANT, "value": text}]


def _record_turns(obj: dict, refs: list[str], meta: dict) -> tuple[list | None, str | None]:
    if isinstance(obj.get("conversations"), list):
        return _turns(obj["conversations"], "from", lambda t: t.get("value"))
    if isinstance(obj.get("messages"), list):
        return _turns(obj["messages"], "role", lambda t: _content_to_text(t.get("content"), refs))
    if "instruction" in obj and "output" in obj:
        q = str(obj["instruction"])
        if refs and IMAGE_TOKEN not in q:
            q = f"{IMAGE_TOKEN}\n{q}"
        return [{"from": HUMAN, "value": q}, {"from": ASSISTANT, "value": str(obj["output"])}], None
    turns = _plain_text(obj, refs)
    if turns is not None:
        meta["text_kind"] = "caption" if refs else "document"
        meta.pop("text", None)
    return turns, None


def normalise(obj: Any, key: str, source: str, location: str) -> SourceRecord:
    """Turn one decoded JSON value into a :class:`SourceRecord` (never raises on bad data).

    Every top-level field not consumed as text or images is kept in ``metadata`` (nested
    objects and lists as JSON values); per-turn extra keys stay on their turn. ``{"text": ...}``
    records are text-only documents; LLaVA eval question/answer records get a reason naming
    the format (``llava_eval_questions`` / ``llava_eval_answers``).
    """
    rec = SourceRecord(key=key, source=source, location=location)
    if not isinstance(obj, dict):
        rec.reason, rec.error = "bad_record", f"expected an object, got {type(obj).__name__}"
        return rec
    rec.metadata = {k: v for k, v in obj.items() if k not in _CONSUMED}
    if "video" in obj or "videos" in obj or "audio" in obj or "audios" in obj:
        rec.reason, rec.error = "unsupported_modality", "video/audio samples are not supported"
        return rec
    images = obj.get("image", obj.get("images"))
    refs: list[str] = []
    if isinstance(images, str):
        refs = [images]
    elif isinstance(images, list):
        refs = [str(i) for i in images]
    no_conv = not any(k in obj for k in ("conversations", "messages", "instruction"))
    for marker, (reason, what) in EVAL_FORMATS.items():
        if no_conv and marker in obj:
            rec.reason, rec.error = reason, f"record looks like {what}"
            return rec
    turns, bad = _record_turns(obj, refs, rec.metadata)
    if bad:
        rec.reason, rec.error = "bad_record", bad
        return rec
    if turns is None:
        rec.reason, rec.error = "missing_conversations", (
            f"no conversations/messages/instruction+output/text field (fields: "
            f"{sorted(obj)[:10]})")
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
