"""The shape of a JSON input file, detected by streaming, and its records read one at a time.

Shapes (``JsonShape.kind``):

- ``array``: ``[{...}, {...}]`` — records are the items;
- ``jsonl``: one JSON value per line (blank lines skipped);
- ``object``: one record, on one line or pretty-printed;
- ``dict``: ``{"id1": {...}, "id2": {...}}`` — records keyed by id; the key becomes the record's
  ``id`` when the record has none;
- ``wrapper``: ``{"version": ..., "data": [{...}, ...]}`` — the one field whose value is a list
  of objects holds the records (``JsonShape.field``); other fields are listed in
  ``JsonShape.other_fields`` (not records, not ingested);
- ``empty``: no JSON value at all (0 bytes or whitespace).

Anything else (a top-level number or string, an object with several lists of objects, an object
mixing object- and scalar-valued fields without any record field) raises :class:`ShapeError`
naming what was found. A UTF-8 byte-order mark is skipped in every shape (and at the start of any
JSONL line: concatenated files); CRLF line ends are plain JSON whitespace.

Memory: detection walks parse events (yajl2 via ijson) without building values, so it is
O(number of top-level fields) for ``dict``/``wrapper`` files and stops after the first value for
``array``/``jsonl``; reading yields one record at a time. Cost: a ``dict`` or ``wrapper`` file is
parsed twice (detection, then reading).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import IO, Any

import ijson

BOM = b"\xef\xbb\xbf"
_SCAN = 1 << 16
_RECORD_KEYS = {"conversations", "messages"}
_RECORD_HINTS = {"text", "instruction", "output", "question_id", "image", "images", "video",
                 "caption", "prompt"}
_VALUE_EVENTS = {"null", "boolean", "integer", "double", "number", "string"}


class ShapeError(ValueError):
    """A JSON input whose shape is none of the supported ones (message names what was found)."""


@dataclass(slots=True)
class JsonShape:
    """What a JSON input holds.

    Attributes:
        kind: ``array`` | ``jsonl`` | ``object`` | ``dict`` | ``wrapper`` | ``empty``.
        offset: bytes to skip before the JSON text (3 after a UTF-8 BOM, else 0).
        field: for ``wrapper``, the field holding the records.
        other_fields: for ``wrapper``, the top-level fields that are not records (not ingested).
        bom: the file starts with a UTF-8 BOM.
    """

    kind: str
    offset: int = 0
    field: str | None = None
    other_fields: list[str] = dc_field(default_factory=list)
    bom: bool = False

    def describe(self) -> str:
        """Short human-readable name, e.g. ``wrapper object (records in 'data')``."""
        names = {"array": "JSON array", "jsonl": "JSONL", "object": "single object",
                 "dict": "object of records keyed by id", "empty": "empty"}
        if self.kind == "wrapper":
            return f"wrapper object (records in {self.field!r})"
        return names[self.kind] + (" (UTF-8 BOM)" if self.bom else "")


@dataclass(slots=True)
class _Members:
    """Top-level fields of an object, by the kind of their value (bounded lists)."""

    n: int = 0
    maps: int = 0
    lists_of_maps: list[str] = dc_field(default_factory=list)
    others: list[str] = dc_field(default_factory=list)
    keys: set[str] = dc_field(default_factory=set)


def _start(f: IO[bytes]) -> tuple[int, bytes]:
    """Offset after an optional BOM and the first non-whitespace byte (``b""`` when none)."""
    f.seek(0)
    head = f.read(3)
    offset = 3 if head == BOM else 0
    f.seek(offset)
    while chunk := f.read(_SCAN):
        rest = chunk.lstrip()
        if rest:
            f.seek(offset)
            return offset, rest[:1]
    f.seek(offset)
    return offset, b""


def _scan_object(events: Iterator[tuple[str, Any]]) -> tuple[_Members, bool, str | None]:
    """Walk the first top-level object's events. Returns its members, whether another
    top-level value follows it (JSONL), and the parse error met inside it (or ``None``)."""
    m, depth, key, pending = _Members(), 0, None, False
    try:
        for ev, val in events:
            if depth == 1 and ev == "map_key":
                key, m.n = val, m.n + 1
                if len(m.keys) < 64 or val in _RECORD_KEYS | _RECORD_HINTS:
                    m.keys.add(val)
            elif pending:  # first event inside a top-level list value
                pending = False
                if ev == "start_map":
                    m.lists_of_maps.append(key)
                elif len(m.others) < 16:
                    m.others.append(key)
            elif depth == 1 and ev in _VALUE_EVENTS and len(m.others) < 16:
                m.others.append(key)
            elif depth == 1 and ev == "start_map":
                m.maps += 1
            elif depth == 1 and ev == "start_array":
                pending = True
            if ev in ("start_map", "start_array"):
                depth += 1
            elif ev in ("end_map", "end_array"):
                depth -= 1
                if depth == 0:
                    break
    except ijson.JSONError as e:
        return m, False, str(e).splitlines()[0]
    try:
        return m, next(events, None) is not None, None
    except ijson.JSONError:
        return m, True, None  # a broken second value: JSONL with a bad line


def _jsonl_after_broken_first_line(f: IO[bytes], offset: int) -> bool:
    """A broken first value: JSONL when the next non-blank line is a JSON object of its own."""
    f.seek(offset)
    f.readline(1 << 24)
    for _ in range(8):
        line = f.readline(1 << 24).strip()
        if not line:
            continue
        try:
            return isinstance(json.loads(line.removeprefix(BOM)), dict)
        except ValueError:
            return False
    return False


def _classify(m: _Members, broken: str | None, offset: int, bom: bool) -> JsonShape:
    if m.keys & _RECORD_KEYS:
        return JsonShape("object", offset, bom=bom)
    if m.n and m.maps == m.n:
        return JsonShape("dict", offset, bom=bom)
    if m.keys & _RECORD_HINTS and not m.lists_of_maps:
        return JsonShape("object", offset, bom=bom)
    if len(m.lists_of_maps) == 1:
        others = [k for k in sorted(m.keys) if k != m.lists_of_maps[0]]
        return JsonShape("wrapper", offset, m.lists_of_maps[0], others, bom)
    if len(m.lists_of_maps) > 1:
        raise ShapeError(f"an object with {len(m.lists_of_maps)} lists of records (fields "
                         f"{m.lists_of_maps[:5]}): expected one list per file")
    if broken is not None or m.keys & _RECORD_HINTS or not m.maps:
        return JsonShape("object", offset, bom=bom)  # one record (bad_json if broken)
    raise ShapeError(f"an object with {m.n} fields ({m.maps} object-valued; keys "
                     f"{sorted(m.keys)[:8]}) that is neither a record, records keyed by id, "
                     f"nor a wrapper with one list of records")


def _scalar_start(f: IO[bytes], offset: int, name: str) -> JsonShape:
    """A stream that does not start with ``[`` or ``{``: JSONL of scalars or broken lines, or
    an unsupported top-level scalar."""
    if name.endswith(".jsonl"):
        return JsonShape("jsonl", offset, bom=offset == 3)
    events = ijson.basic_parse(f, multiple_values=True)
    try:
        ev, _ = next(events)
        more = next(events, None) is not None
    except ijson.JSONError:
        more = _jsonl_after_broken_first_line(f, offset)
        if not more:
            f.seek(offset)
            raise ShapeError(f"not JSON: starts with {f.read(40)!r}") from None
    if more:
        return JsonShape("jsonl", offset, bom=offset == 3)
    raise ShapeError(f"a top-level {ev}, not an array or object")


def detect_shape(f: IO[bytes], name: str = "") -> JsonShape:
    """Detect the shape of a JSON/JSONL stream (see the module doc); rewinds ``f``.

    Args:
        f: seekable binary stream.
        name: file name; a ``.jsonl`` name makes lines that do not start an object or array
            JSONL lines (each a record or a ``bad_json`` error) rather than a shape error.

    Raises:
        ShapeError: the shape is not supported (message names it).
    """
    offset, first = _start(f)
    bom = offset == 3
    if not first:
        return JsonShape("empty", offset, bom=bom)
    if first == b"[":
        return JsonShape("array", offset, bom=bom)
    if first != b"{":
        shape = _scalar_start(f, offset, name)
        f.seek(offset)
        return shape
    members, more, broken = _scan_object(ijson.basic_parse(f, multiple_values=True))
    f.seek(offset)
    if more or (broken is not None and _jsonl_after_broken_first_line(f, offset)):
        shape = JsonShape("jsonl", offset, bom=bom)
    else:
        shape = _classify(members, broken, offset, bom)
    f.seek(offset)
    return shape


def _stream(values: Iterator[Any], what: str) -> Iterator[tuple[int, Any, str | None]]:
    i = -1
    try:
        for i, value in enumerate(values):
            yield i, value, None
    except (ijson.JSONError, UnicodeDecodeError) as e:
        msg = " ".join(str(e).split())[:300]
        yield i + 1, None, f"bad_json: {what} broken after record {i + 1}: {msg}"


def _jsonl(f: IO[bytes]) -> Iterator[tuple[int, Any, str | None]]:
    for i, raw in enumerate(f):
        line = raw.strip().removeprefix(BOM).strip()
        if not line:
            continue
        try:
            yield i, json.loads(line.decode("utf-8")), None
        except UnicodeDecodeError as e:
            yield i, None, f"bad_encoding: {e}"
        except json.JSONDecodeError as e:
            yield i, None, f"bad_json: {e}"


def _keyed(items: Iterator[tuple[str, Any]]) -> Iterator[Any]:
    for key, value in items:
        if isinstance(value, dict) and value.get("id") in (None, ""):
            value = {**value, "id": key}
        yield value


def iter_records(f: IO[bytes], shape: JsonShape) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(index, value, error)`` per record of a stream of the given shape.

    A JSONL line that is not valid JSON (or not UTF-8) yields ``(index, None, "bad_json: ...")``
    and reading goes on; an array, wrapper or dict that breaks mid-way yields one error for the
    rest; a broken single object yields one error.
    """
    f.seek(shape.offset)
    if shape.kind == "jsonl":
        yield from _jsonl(f)
    elif shape.kind == "array":
        yield from _stream(ijson.items(f, "item", use_float=True), "array")
    elif shape.kind == "wrapper":
        yield from _stream(ijson.items(f, f"{shape.field}.item", use_float=True),
                           f"list {shape.field!r}")
    elif shape.kind == "dict":
        yield from _stream(_keyed(ijson.kvitems(f, "", use_float=True)), "object")
    elif shape.kind == "object":
        yield from _stream(ijson.items(f, "", use_float=True), "object")


def iter_json_values(f: IO[bytes], name: str = "") -> Iterator[tuple[int, Any, str | None]]:
    """Detect the shape of ``f`` and yield its records (:func:`detect_shape`,
    :func:`iter_records`).

    Raises:
        ShapeError: an unsupported shape.
    """
    yield from iter_records(f, detect_shape(f, name))
