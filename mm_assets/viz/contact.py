"""Contact sheets: small PNG grids of thumbnails for exploring clusters and duplicate pairs."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS, ImageError, decode, to_rgb


def contact_sheet(rows: list[tuple[str, list[bytes]]], thumb: int = 72, label_width: int = 110,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """A PNG with one row per ``(label, [encoded images])``.

    Args:
        rows: labels (``\n`` starts a new line; each line clipped to the label column) and
            encoded images (undecodable images become grey tiles).
        thumb: tile side in pixels.
        label_width: width of the label column in pixels.
        max_pixels: decode cap per image.

    Returns:
        PNG bytes of size ``(label_width + thumb × max row length) × (thumb × len(rows))``.
    """
    cols = max((len(imgs) for _, imgs in rows), default=1) or 1
    sheet = Image.new("RGB", (label_width + cols * thumb, max(1, len(rows)) * thumb), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for r, (label, imgs) in enumerate(rows):
        lines = label.split("\n")
        top = r * thumb + max(2, thumb // 2 - 8 * len(lines))
        for i, line in enumerate(lines):
            while line and draw.textlength(line, font=font) > label_width - 8:
                line = line[:-1]
            draw.text((4, top + 16 * i), line, fill="black", font=font)
        for c, data in enumerate(imgs):
            try:
                im = to_rgb(decode(data, max_pixels))
                im.thumbnail((thumb - 2, thumb - 2))
            except ImageError:
                im = Image.new("RGB", (thumb - 2, thumb - 2), (128, 128, 128))
            sheet.paste(im, (label_width + c * thumb + 1, r * thumb + 1))
    buf = io.BytesIO()
    sheet.save(buf, "PNG")
    return buf.getvalue()
