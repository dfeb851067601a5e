"""The answer drawn on a synthetic sample's image (a second thumbnail beside the original), for
samples whose metadata has ``synthetic`` (:mod:`mm_assets.core.synth`):

- clocks: thin lines from the centre at the drawn hand angles (hour red, minute blue, second
  green; rotation included, and through the stored perspective ``homography`` when the
  clock is seen in perspective) and the time read from the answer, top left;
- counting: a magenta disc with a dark ring at every ``<point x=.. y=..>`` of the answer text
  (where the answer says, not where the parameters say: a wrong point shows as wrong);
- charts: the answer and its tolerance, in a box at the top.

Drawn at the image's own resolution, then thumbnailed like any image.
"""

from __future__ import annotations

import io
import math
import re

from PIL import Image, ImageDraw

from mm_assets.core.records import Sample

POINT = re.compile(r'<point x="([0-9.]+)" y="([0-9.]+)">')
MARKER = (255, 0, 255)  # counting points
HANDS = {"hour": (230, 20, 20), "minute": (20, 60, 235), "second": (20, 170, 40)}


def _font(px: int):
    from mm_assets.core.synth.draw import font

    return font("sans_bold", px)


def _label(im: Image.Image, text: str, top: bool = True) -> None:
    d = ImageDraw.Draw(im)
    fnt = _font(max(10, im.height // 18))
    l, t, r, b = d.multiline_textbbox((0, 0), text, font=fnt)
    pad = 3
    y = 2 if top else im.height - (b - t) - 2 * pad - 2
    d.rectangle([2, y, 2 + (r - l) + 2 * pad, y + (b - t) + 2 * pad], fill=(255, 255, 224),
                outline=(0, 0, 0))
    d.multiline_text((2 + pad - l, y + pad - t), text, fill=(0, 0, 0), font=fnt)


def _clock(im: Image.Image, m: dict, answer: str) -> None:
    p, a = m["params"], m["answer"]
    d = ImageDraw.Draw(im)
    cx, cy = p["center"]
    R = p["radius"]
    w = max(1, im.width // 160)
    hands = ["hour", "minute"] + (["second"] if p.get("second_hand") else [])
    view = p.get("view")
    for hand in hands:
        ang = math.radians(p["angles"][hand] + p["rotation"])
        length = R * {"hour": 0.6, "minute": 0.95, "second": 1.05}[hand]
        line = [(cx, cy), (cx + length * math.sin(ang), cy - length * math.cos(ang))]
        if view:  # through the scene -> image map the clock was rendered with
            from mm_assets.core.synth.clocks_view import project

            line = [tuple(q) for q in project([view["homography"][:3], view["homography"][3:6],
                                               view["homography"][6:]], line)]
        d.line(line, fill=HANDS[hand], width=w)
    t = f"{a['hour']}:{a['minute']:02d}" + (f":{a['second']:02d}" if p.get("second_hand")
                                             else "")
    _label(im, f"{t}  (answer: {answer.splitlines()[-1]})")


def points(answer: str) -> list[tuple[float, float]]:
    """The normalised ``(x, y)`` of every ``<point>`` in an answer."""
    return [(float(x), float(y)) for x, y in POINT.findall(answer)]


def marker_radius(size: tuple[int, int]) -> float:
    return max(3.0, min(size) / 64)


def _counting(im: Image.Image, answer: str) -> None:
    _label(im, answer.splitlines()[-1], top=False)  # first: markers stay on top
    d = ImageDraw.Draw(im)
    r = marker_radius(im.size)
    for x, y in points(answer):
        px, py = x * im.width, y * im.height
        d.ellipse([px - r - 1.5, py - r - 1.5, px + r + 1.5, py + r + 1.5], fill=(20, 20, 20))
        d.ellipse([px - r, py - r, px + r, py + r], fill=MARKER)


def _chart(im: Image.Image, m: dict, answer: str) -> None:
    a = m["answer"]
    tol = a.get("tolerance") or 0
    text = f"answer: {answer}" + (f"  (± {tol:g}{a.get('unit', '')})" if tol else "")
    _label(im, f"{text}\n{a['kind']} · {a['chart']}")


def overlay(s: Sample) -> bytes | None:
    """PNG of the sample's first image with its answer drawn on it, or None when the sample
    is not synthetic (or its image does not decode)."""
    m = s.metadata.get("synthetic") if s.metadata else None
    if not m or not s.images or len(s.conversations) < 2:
        return None
    answer = str(s.conversations[1].get("value", ""))
    try:
        im = Image.open(io.BytesIO(s.images[0])).convert("RGB")
    except Exception:  # noqa: BLE001 - no overlay for an undecodable image
        return None
    try:
        if m["generator"] == "clocks":
            _clock(im, m, answer)
        elif m["generator"] == "counting":
            _counting(im, answer)
        elif m["generator"] == "charts":
            _chart(im, m, answer)
        else:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
