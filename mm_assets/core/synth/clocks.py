"""Analog clocks with exact answers.

Parameters (``metadata.synthetic.params``): the time (``minute_of_12h`` uniform over 0..719,
``second`` uniform 0..59 when a second hand is drawn, else 0), the hand angles actually drawn
(degrees clockwise from 12), the face (round/square, colours, arabic/roman/no numerals, tick
style), hand style (line/taper/arrow), rotation of the whole clock, its placement, background
and clutter rectangles/discs (never over the face), the question (kind, phrasing, target
time or period), and with the ``perspective`` / ``occlusion`` options the view: a perspective
warp of the scene (``view``: tilt, axis, focal, fit, homography) and an opaque shape over part
of the face (``occluder``), see :mod:`.clocks_view`. Both are drawn after every other
parameter, so a spec without them renders the same bytes as before they existed.

Question kinds and answer formats:

- ``time``: "What time is it?" (and phrasings) -> ``3:25`` (12-hour, hour 1..12, no leading 0)
- ``time_hhmm``: "... as HH:MM (12-hour clock)" -> ``03:25``
- ``time24``: "It is morning/afternoon. ... 24-hour format" -> ``15:25`` / ``03:25``
- ``time_hms``: (second hand drawn) "... to the second" -> ``3:25:40``
- ``minutes_until``: (no second hand) "How many minutes until 4:10?" -> ``45``
- ``minutes_past``: "How many minutes past the hour is it?" -> ``25``

The checker (:mod:`.clocks_check`) reads the time back from the drawn hand angles (hour from the hour hand, minutes
and seconds from the minute/second hands, the hour hand's position within its hour must agree
with the minutes), re-derives the answer, re-derives the warp from the view parameters
(``warp_mismatch`` when the stored homography differs; ``face_outside_image`` when the warped
face leaves the image), checks the occluder (``occluder_covers_both_tips``,
``hand_hidden`` when a hand has no sample point clear of it), and checks the rendered pixels
through the warp: the image decodes at the spec size, the pixels at 35 % and 60 % of each
hand's length (those clear of the occluder and the second hand) have the hand's colour, the
background shows just outside the warped face outline (``face_not_where_view_says``), and the
occluder's centre has its colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mm_assets.core.synth import clocks_view as cv
from mm_assets.core.synth.draw import SS, font, rgb_from_hsv

ROMAN = ["XII", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI"]
KINDS = ("time", "time_hhmm", "time24", "time_hms", "minutes_until", "minutes_past")
PHRASES = {
    "time": ["What time is it?", "What time does the clock show?", "Read the clock.",
             "What time is shown on this clock?", "Tell me the time on the clock face."],
    "time_hhmm": ["What time is it? Answer as HH:MM (12-hour clock).",
                  "Give the time shown in HH:MM format, 12-hour clock."],
    "time24": ["It is {period}. What time is it in 24-hour format (HH:MM)?",
               "Assume it is {period}. Give the time in 24-hour format."],
    "time_hms": ["What time is it, to the second?",
                 "Read the clock including the second hand (H:MM:SS)."],
    "minutes_until": ["How many minutes until {target}?",
                      "How many minutes from the time shown until {target}?"],
    "minutes_past": ["How many minutes past the hour is it?",
                     "How many minutes after the full hour does the clock show?"],
}
PERIODS = {"am": "morning", "pm": "afternoon"}


@dataclass(frozen=True, slots=True)
class ClockOptions:
    """Options of the clocks generator (spec ``options``).

    Attributes:
        second_hand: probability of a second hand.
        max_rotation: the clock is rotated uniformly in [-max_rotation, max_rotation] degrees.
        clutter: probability of background clutter (up to 6 shapes, never over the face).
        square: probability of a square face (else round).
        perspective: probability of a perspective view of the scene.
        tilt: [min, max] degrees the clock plane is turned away from the camera.
        focal: [min, max] camera focal length in image sizes (smaller: stronger
            perspective).
        occlusion: probability of an opaque shape over part of the face.
        occluder_size: [min, max] circumradius of that shape in face radii.
    """

    second_hand: float = 0.3
    max_rotation: float = 20.0
    clutter: float = 0.5
    square: float = 0.25
    perspective: float = 0.0
    tilt: tuple = (10.0, 40.0)
    focal: tuple = (1.2, 3.0)
    occlusion: float = 0.0
    occluder_size: tuple = (0.15, 0.35)


def options(raw: dict) -> ClockOptions:
    from mm_assets.core.synth.spec import SpecError, check_known

    check_known(ClockOptions, raw, "clocks")
    limits = {"tilt": (0, 60), "focal": (0.5, 20), "occluder_size": (0.05, 0.6)}
    raw = dict(raw)
    for k, (lo, hi) in limits.items():
        v = raw.get(k, ClockOptions.__dataclass_fields__[k].default)
        if not (isinstance(v, (list, tuple)) and len(v) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                and lo <= v[0] <= v[1] <= hi):
            raise SpecError(f"options.{k}: [min, max] with {lo} <= min <= max <= {hi}, "
                            f"got {v!r}")
        raw[k] = (float(v[0]), float(v[1]))
    o = ClockOptions(**raw)
    for k in ("second_hand", "clutter", "square", "perspective", "occlusion"):
        if not 0 <= getattr(o, k) <= 1:
            raise SpecError(f"options.{k}: a probability in [0, 1], got {getattr(o, k)!r}")
    if not 0 <= o.max_rotation <= 180:
        raise SpecError(f"options.max_rotation: degrees in [0, 180], got {o.max_rotation!r}")
    return o


def hand_angles(minute_of_12h: int, second: int) -> dict[str, float]:
    """Angles (degrees clockwise from 12) of the hour, minute and second hands."""
    t = minute_of_12h * 60 + second  # seconds into the 12 hours
    return {"hour": round(t / 43200 * 360, 6), "minute": round((t % 3600) / 3600 * 360, 6),
            "second": round(second * 6.0, 6)}


def fmt12(minute_of_12h: int) -> str:
    h, m = divmod(minute_of_12h, 60)
    return f"{h or 12}:{m:02d}"


def sample_params(rng: np.random.Generator, size: int, o: ClockOptions) -> dict:
    minute = int(rng.integers(720))
    has_sec = bool(rng.random() < o.second_hand)
    second = int(rng.integers(60)) if has_sec else 0
    light_face = bool(rng.random() < 0.8)
    face = (rgb_from_hsv(rng, s_range=(0, 0.25), v_range=(0.85, 1.0)) if light_face
            else rgb_from_hsv(rng, s_range=(0, 0.6), v_range=(0.05, 0.3)))
    ink = (rgb_from_hsv(rng, s_range=(0, 0.7), v_range=(0.0, 0.3)) if light_face
           else rgb_from_hsv(rng, s_range=(0, 0.2), v_range=(0.85, 1.0)))
    bg = rgb_from_hsv(rng, s_range=(0, 0.5), v_range=(0.3, 0.95))
    radius = float(rng.uniform(0.30, 0.40)) * size
    margin = radius * 1.12
    cx, cy = (float(rng.uniform(margin, size - margin)) for _ in range(2))
    clutter = []
    if rng.random() < o.clutter:
        for _ in range(int(rng.integers(1, 7))):
            w, h = (float(rng.uniform(0.06, 0.25)) * size for _ in range(2))
            x0, y0 = float(rng.uniform(-w / 2, size - w / 2)), float(rng.uniform(-h / 2, size - h / 2))
            # keep the face (and its rotated square corners) free: bbox clear of 1.45 R
            nx, ny = min(max(cx, x0), x0 + w), min(max(cy, y0), y0 + h)
            if math.hypot(nx - cx, ny - cy) > radius * 1.45:
                clutter.append({"shape": str(rng.choice(["rect", "disc"])),
                                "bbox": [round(x0, 2), round(y0, 2), round(x0 + w, 2),
                                         round(y0 + h, 2)],
                                "rgb": rgb_from_hsv(rng, v_range=(0.2, 1.0))})
    kinds = [k for k in KINDS if k != ("minutes_until" if has_sec else "time_hms")]
    kind = str(rng.choice(kinds))
    q = {"kind": kind, "phrase": int(rng.integers(len(PHRASES[kind])))}
    if kind == "minutes_until":
        q["delta"] = int(rng.integers(1, 181))
    if kind == "time24":
        q["period"] = str(rng.choice(["am", "pm"]))
    second_rgb = [int(rng.integers(180, 240)), int(rng.integers(0, 50)), int(rng.integers(0, 60))]
    p = {
        "minute_of_12h": minute, "second": second, "second_hand": has_sec,
        "angles": hand_angles(minute, second),
        "face": {"shape": "square" if rng.random() < o.square else "round",
                 "rgb": face, "rim_rgb": ink if rng.random() < 0.5 else
                 rgb_from_hsv(rng, s_range=(0.2, 0.9), v_range=(0.2, 0.7)),
                 "rim": round(float(rng.uniform(0.02, 0.07)), 4),
                 "numerals": str(rng.choice(["arabic", "roman", "none"], p=[0.5, 0.3, 0.2])),
                 "font": str(rng.choice(["sans", "serif", "sans_bold", "serif_bold"])),
                 "ticks": str(rng.choice(["minutes", "hours", "none"], p=[0.5, 0.35, 0.15])),
                 "ink": ink},
        "hands": {"style": str(rng.choice(["line", "taper", "arrow"])), "rgb": ink,
                  "hour_len": round(float(rng.uniform(0.45, 0.58)), 4),
                  "minute_len": round(float(rng.uniform(0.75, 0.9)), 4),
                  "width": round(float(rng.uniform(0.035, 0.06)), 4),
                  "second_rgb": second_rgb},
        "rotation": round(float(rng.uniform(-o.max_rotation, o.max_rotation)), 3),
        "center": [round(cx, 2), round(cy, 2)], "radius": round(radius, 2),
        "background": bg, "clutter": clutter, "question": q,
    }
    if o.perspective > 0:  # drawn last: specs without a view keep their earlier bytes
        p["view"] = _sample_view(rng, p, size, o) if rng.random() < o.perspective else None
    if o.occlusion > 0:
        p["occluder"] = None
        if rng.random() < o.occlusion:
            inner = inner_radius(p)
            p["occluder"] = cv.sample_occluder(
                rng, p["center"], inner, p["radius"], o.occluder_size, hand_points(p),
                [p["face"]["rgb"], p["hands"]["rgb"], p["hands"]["second_rgb"]],
                hand_width(p) + 2)
    return p


def _sample_view(rng: np.random.Generator, p: dict, size: int, o: ClockOptions) -> dict:
    view = {"tilt": round(float(rng.uniform(*o.tilt)), 3),
            "axis": round(float(rng.uniform(0, 360)), 3),
            "focal": round(float(rng.uniform(*o.focal)) * size, 2)}
    h, fit = cv.view_homography(view, p["center"], face_outline(p), size)
    return {**view, "fit": fit, "homography": [round(float(v), 9) for v in h.ravel()]}


def inner_radius(p: dict) -> float:
    """Inner face radius (output pixels): the radius minus the rim drawn."""
    R = p["radius"]
    return R * (1 - max(2.0 / SS / R, p["face"]["rim"]))


def hand_width(p: dict) -> float:
    return max(3.0, p["hands"]["width"] * inner_radius(p))


def face_outline(p: dict) -> list[tuple[float, float]]:
    """The face's outer outline in scene pixels (72 points of the circle, or the rounded
    square's vertices)."""
    (cx, cy), R = p["center"], p["radius"]
    if p["face"]["shape"] == "round":
        return [(cx + R * math.cos(2 * math.pi * k / 72), cy + R * math.sin(2 * math.pi * k / 72))
                for k in range(72)]
    return _rounded_square(cx, cy, R, R * 0.12, p["rotation"])


def hand_points(p: dict) -> dict[str, list[tuple[float, float]]]:
    """Hour and minute hand: the checker's sample points (scene pixels, at
    :data:`~.clocks_view.CHECK_FRACTIONS` of the hand's length), then the tip."""
    inner, h = inner_radius(p), p["hands"]
    out = {}
    for hand in ("hour", "minute"):
        length = h[f"{hand}_len"] * inner
        ang = p["angles"][hand] + p["rotation"]
        out[hand] = [_pt(*p["center"], ang, f * length) for f in (*cv.CHECK_FRACTIONS, 1.0)]
    return out


def _pt(cx, cy, angle, d):
    a = math.radians(angle)
    return cx + d * math.sin(a), cy - d * math.cos(a)


def _hand(draw, cx, cy, angle, length, width, rgb, style):
    tip = _pt(cx, cy, angle, length)
    tail = _pt(cx, cy, angle + 180, length * 0.12)
    if style == "line":
        draw.line([tail, tip], fill=tuple(rgb), width=max(1, round(width)))
        return
    n1, n2 = _pt(*tail, angle + 90, width * 0.7), _pt(*tail, angle - 90, width * 0.7)
    if style == "taper":
        t1, t2 = _pt(*tip, angle + 90, width * 0.2), _pt(*tip, angle - 90, width * 0.2)
        draw.polygon([n1, t1, t2, n2], fill=tuple(rgb))
        return
    base = _pt(cx, cy, angle, length * 0.8)  # arrow: shaft + head
    draw.line([tail, base], fill=tuple(rgb), width=max(1, round(width)))
    h1, h2 = _pt(*base, angle + 90, width * 1.3), _pt(*base, angle - 90, width * 1.3)
    draw.polygon([h1, tip, h2], fill=tuple(rgb))


def _rounded_square(cx, cy, half, corner, rot, steps=6) -> list[tuple[float, float]]:
    """Outline of a square of half-side ``half`` with rounded corners, rotated ``rot`` deg."""
    pts = []
    for qx, qy, a0 in ((1, -1, -90), (1, 1, 0), (-1, 1, 90), (-1, -1, 180)):
        ox, oy = qx * (half - corner), qy * (half - corner)
        for k in range(steps + 1):
            a = math.radians(a0 + 90 * k / steps)
            pts.append((ox + corner * math.cos(a), oy + corner * math.sin(a)))
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _text(im, xy, label, fnt, ink, rot) -> None:
    """``label`` centred at ``xy``, rotated ``rot`` degrees clockwise (a small rotated tile)."""
    l, t, r, b = fnt.getbbox(label, anchor="mm")
    pad = 2
    tile = Image.new("L", (int(r - l) + 2 * pad, int(b - t) + 2 * pad), 0)
    ImageDraw.Draw(tile).text((pad - l, pad - t), label, fill=255, font=fnt, anchor="mm")
    if rot:
        tile = tile.rotate(-rot, resample=Image.Resampling.BILINEAR, expand=True)
    x, y = round(xy[0] - tile.width / 2), round(xy[1] - tile.height / 2)
    im.paste(Image.new("RGB", tile.size, ink), (x, y), tile)


def render(p: dict, size: int) -> Image.Image:
    """The clock drawn at ``SS`` x ``size`` and box-reduced. Rotation is applied to the
    geometry (angles and outlines) and to each numeral tile, never to the whole image; the
    occluder is drawn last, then the perspective warp (at ``SS`` x, before the reduction)."""
    S = size * SS
    im = Image.new("RGB", (S, S), tuple(p["background"]))
    d = ImageDraw.Draw(im)
    for c in p["clutter"]:
        box = [v * SS for v in c["bbox"]]
        (d.rectangle if c["shape"] == "rect" else d.ellipse)(box, fill=tuple(c["rgb"]))
    R, f, rot = p["radius"] * SS, p["face"], p["rotation"]
    cx, cy = (v * SS for v in p["center"])
    rim = max(2.0, f["rim"] * R)
    if f["shape"] == "round":
        d.ellipse([cx - R, cy - R, cx + R, cy + R], fill=tuple(f["rim_rgb"]))
        r_in = R - rim
        d.ellipse([cx - r_in, cy - r_in, cx + r_in, cy + r_in], fill=tuple(f["rgb"]))
    else:
        d.polygon(_rounded_square(cx, cy, R, R * 0.12, rot), fill=tuple(f["rim_rgb"]))
        d.polygon(_rounded_square(cx, cy, R - rim, R * 0.1, rot), fill=tuple(f["rgb"]))
    inner = R - rim
    ink = tuple(f["ink"])
    if f["ticks"] != "none":
        for k in range(60 if f["ticks"] == "minutes" else 12):
            major = f["ticks"] == "hours" or k % 5 == 0
            a = k * (6 if f["ticks"] == "minutes" else 30) + rot
            r0 = inner * (0.86 if major else 0.92)
            d.line([_pt(cx, cy, a, r0), _pt(cx, cy, a, inner * 0.97)], fill=ink,
                   width=max(1, round(inner * (0.025 if major else 0.01))))
    if f["numerals"] != "none":
        fnt = font(f["font"], inner * (0.2 if f["numerals"] == "arabic" else 0.15))
        rr = inner * (0.72 if f["ticks"] != "none" else 0.82)
        for k in range(12):
            label = str(k or 12) if f["numerals"] == "arabic" else ROMAN[k]
            _text(im, _pt(cx, cy, k * 30 + rot, rr), label, fnt, ink, rot)
    h = p["hands"]
    w = max(3.0 * SS, h["width"] * inner)  # at least 3 output pixels
    a = {k: v + rot for k, v in p["angles"].items()}
    _hand(d, cx, cy, a["hour"], h["hour_len"] * inner, w * 1.25, h["rgb"], h["style"])
    _hand(d, cx, cy, a["minute"], h["minute_len"] * inner, w, h["rgb"], h["style"])
    if p["second_hand"]:
        _hand(d, cx, cy, a["second"], 0.9 * inner, max(1.0 * SS, w * 0.3), h["second_rgb"],
              "line")
    hub = w * 0.9
    d.ellipse([cx - hub, cy - hub, cx + hub, cy + hub], fill=tuple(h["rgb"]))
    if p.get("occluder"):
        d.polygon([(x * SS, y * SS) for x, y in cv.occluder_outline(p["occluder"])],
                  fill=tuple(p["occluder"]["rgb"]))
    if p.get("view"):
        im = cv.warp(im, np.reshape(p["view"]["homography"], (3, 3)), SS, p["background"])
    return im.reduce(SS)


def qa(p: dict) -> tuple[str, str, dict]:
    """(question, answer, structured answer) from the time and question parameters."""
    q, t, s = p["question"], p["minute_of_12h"], p["second"]
    phrase = PHRASES[q["kind"]][q["phrase"]]
    h, m = divmod(t, 60)
    kind = q["kind"]
    if kind == "time":
        question, answer = phrase, fmt12(t)
    elif kind == "time_hhmm":
        question, answer = phrase, f"{h or 12:02d}:{m:02d}"
    elif kind == "time24":
        question = phrase.format(period=PERIODS[q["period"]])
        answer = f"{h + (12 if q['period'] == 'pm' else 0):02d}:{m:02d}"
    elif kind == "time_hms":
        question, answer = phrase, f"{fmt12(t)}:{s:02d}"
    elif kind == "minutes_until":
        question = phrase.format(target=fmt12((t + q["delta"]) % 720))
        answer = str(q["delta"])
    elif kind == "minutes_past":
        question, answer = phrase, str(m)
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    return question, answer, {"hour": h or 12, "minute": m, "second": s, "kind": kind}
