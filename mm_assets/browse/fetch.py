"""Random access to the few samples a gallery shows, and their thumbnails.

A raw shard is an uncompressed tar (POSIX ustar/PAX, as ``core.shards`` writes it): only the
512-byte member headers are read, seeking over the data of members not wanted (ranged reads on
object stores), stopping once every wanted key is complete. Memory: the wanted samples.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from typing import IO

from PIL import Image, ImageOps

from mm_assets.browse import _layout as layout
from mm_assets.core.records import Sample
from mm_assets.core.storage import Store

THUMB_PX = 320


def _member_key(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext


def _octal(field: bytes) -> int:
    field = field.rstrip(b"\0 ").strip()
    if field and field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(field[1:], "big")
    return int(field or b"0", 8)


def _pax_path(data: bytes) -> str | None:
    for rec in data.decode("utf-8", "replace").split("\n"):
        _, _, kv = rec.partition(" ")
        if kv.startswith("path="):
            return kv[5:]
    return None


def iter_members(f: IO[bytes]) -> Iterator[tuple[str, int, int]]:
    """``(name, data offset, size)`` of each regular file of an uncompressed tar, reading
    only the 512-byte headers (and PAX / GNU long-name records) and seeking over the data.

    Raises:
        tarfile.ReadError: a header that is not a tar header (or a compressed tar).
    """
    offset, long_name = 0, None
    while True:
        f.seek(offset)
        head = f.read(512)
        if len(head) < 512 or head == b"\0" * 512:
            return
        if head[257:262] != b"ustar":
            raise tarfile.ReadError(f"not an uncompressed tar header at byte {offset}")
        size, kind = _octal(head[124:136]), head[156:157]
        data = offset + 512
        if kind in (b"x", b"L"):
            f.seek(data)
            body = f.read(size)
            long_name = _pax_path(body) if kind == b"x" else body.rstrip(b"\0").decode()
        elif kind in (b"0", b"\0", b"7"):
            name = head[0:100].rstrip(b"\0").decode("utf-8", "replace")
            prefix = head[345:500].rstrip(b"\0").decode("utf-8", "replace")
            name = long_name or (f"{prefix}/{name}" if prefix else name)
            long_name = None
            yield name, data, size
        else:
            long_name = None
        offset = data + -(-size // 512) * 512


def tar_samples(store: Store, shard: str, keys: Iterable[str]) -> dict[str, Sample]:
    """The samples of ``keys`` found in raw shard ``shard`` (an id; or a synthetic shard by
    path, :func:`mm_assets.browse._layout.shard_rel`) (keys not there are absent);
    stops reading once every wanted key's members have been passed.

    Raises:
        FileNotFoundError: the raw shard does not exist.
    """
    wanted, parts, done, current = set(keys), {}, set(), None
    with store.open_read(layout.shard_rel(shard)) as f:
        for name, data, size in iter_members(f):
            key, ext = _member_key(name)
            if current in wanted and key != current:
                done.add(current)
                if len(done) == len(wanted):
                    break
            current = key
            if key in wanted:
                f.seek(data)
                parts.setdefault(key, {})[ext] = f.read(size)
    return {k: _sample(k, p) for k, p in parts.items() if "json" in p}


def tar_keys(store: Store, shard: str) -> list[str]:
    """Every key of a raw shard (or a synthetic shard, by path), from its member headers
    (the fallback key listing)."""
    with store.open_read(layout.shard_rel(shard)) as f:
        return [k for k, ext in (_member_key(n) for n, _, _ in iter_members(f)) if ext == "json"]


def _sample(key: str, parts: dict[str, bytes]) -> Sample:
    meta = json.loads(parts["json"])
    names = meta.get("images", [])
    return Sample(key=meta.get("key", key), conversations=meta["conversations"],
                  images=[parts[n] for n in names if n in parts],
                  image_exts=[n.split(".", 1)[1] for n in names if n in parts],
                  source=meta.get("source", ""), metadata=meta.get("metadata", {}))


def thumbnail(data: bytes, px: int = THUMB_PX) -> tuple[bytes, int, int] | None:
    """A JPEG thumbnail (longest side ``px``) and the original size, or None when the bytes
    do not decode (raw shards hold only validated images, so this is rare)."""
    try:
        im = Image.open(io.BytesIO(data))
        size = im.size
        im.draft("RGB", (px * 2, px * 2))
        im = ImageOps.exif_transpose(im)
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGBA") if "A" in im.mode or "transparency" in im.info else im
            im = _flatten(im) if im.mode == "RGBA" else im.convert("RGB")
        im.thumbnail((px, px))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=82)
        return buf.getvalue(), size[0], size[1]
    except Exception:  # noqa: BLE001 - any decode failure shows as "not decodable"
        return None


def _flatten(im: Image.Image) -> Image.Image:
    bg = Image.new("RGB", im.size, (255, 255, 255))
    bg.paste(im, mask=im.getchannel("A"))
    return bg
