"""Counting with pointing: N target objects (a shape in a colour) among distractors.

Parameters (``metadata.synthetic.params``): the target (shape, colour name), every object
drawn (shape, colour, centre, circumradius, rotation; pixels of the output image), the
background (solid, gradient or noise) and the question phrasing. The count N is uniform over
``[min_count, max_count]`` (default 1..30); distractors (0..``max_distractors``) differ from
the target in shape, colour or both. Objects never overlap.

Answer format: one point per target object, in reading order (top to bottom, then left to
right), coordinates normalised to the image (0 = left/top, 1 = right/bottom, 3 decimals),
then the count::

    <point x="0.412" y="0.655"> <point x="0.108" y="0.702">
    There are 2 red triangles.

The checker re-derives the targets from the objects, parses every point and requires: as many
points as targets and as the stated count, each point inside its own target's shape (distinct
targets), inside no distractor, and the rendered pixel under each point has the target colour.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw

from mm_assets.core.synth.draw import SS, checked_pixels, inside_polygon, polygon, rgb_from_hsv

SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
COLORS = {"red": (215, 35, 35), "blue": (35, 75, 215), "green": (25, 150, 55),
          "yellow": (240, 195, 15), "purple": (135, 55, 175), "orange": (245, 125, 15),
          "black": (25, 25, 25)}
PHRASES = [
    "How many {c} {s}s are there? Point to each one, then give the count.",
    "Count the {c} {s}s in the image. Mark each with a point before answering.",
    "Point to every {c} {s} and say how many there are.",
    "Find all {c} {s}s. Give a point for each, then the total.",
]
POINT = re.compile(r'<point x="([0-9.]+)" y="([0-9.]+)">')
COUNT = re.compile(r"There (?:is|are) (\d+) ")


@dataclass(frozen=True, slots=True)
class CountingOptions:
    """Options of the counting generator (spec ``options``).

    Attributes:
        min_count, max_count: the target count is uniform over this range (inclusive).
        max_distractors: distractors are uniform over 0..max_distractors.
    """

    min_count: int = 1
    max_count: int = 30
    max_distractors: int = 15


def options(raw: dict) -> CountingOptions:
    from mm_assets.core.synth.spec import SpecError, check_known

    check_known(CountingOptions, raw, "counting")
    o = CountingOptions(**raw)
    if not all(isinstance(getattr(o, f.name), int) for f in fields(o)):
        raise SpecError("options: min_count, max_count, max_distractors are integers")
    if not 1 <= o.min_count <= o.max_count <= 60 or not 0 <= o.max_distractors <= 40:
        raise SpecError(f"options: need 1 <= min_count <= max_count <= 60 and "
                        f"0 <= max_distractors <= 40, got {o}")
    return o


def _place(rng, n: int, size: int) -> tuple[list[tuple[float, float]], float]:
    """Centres of ``n`` non-overlapping objects and their base radius (shrinks until all fit)."""
    base = size * float(rng.uniform(0.03, 0.05))
    base = min(base, math.sqrt(0.30 * size * size / max(n, 1) / math.pi) / 1.2)
    while True:
        pts: list[tuple[float, float]] = []
        for _ in range(n):
            for _try in range(400):
                x, y = (float(rng.uniform(base * 1.3, size - base * 1.3)) for _ in range(2))
                if all(math.hypot(x - a, y - b) > base * 2.6 for a, b in pts):
                    pts.append((x, y))
                    break
            else:
                break
        if len(pts) == n:
            return pts, base
        base *= 0.9


def sample_params(rng: np.random.Generator, size: int, o: CountingOptions) -> dict:
    n = int(rng.integers(o.min_count, o.max_count + 1))
    n_dis = int(rng.integers(0, o.max_distractors + 1))
    shape, color = str(rng.choice(SHAPES)), str(rng.choice(list(COLORS)))
    kinds = [(shape, color)] * n
    for _ in range(n_dis):
        mode = int(rng.integers(3))  # 0: same shape other colour, 1: other shape, 2: both
        s = shape if mode == 0 else str(rng.choice([x for x in SHAPES if x != shape]))
        c = color if mode == 1 else str(rng.choice([x for x in COLORS if x != color]))
        kinds.append((s, c))
    order = rng.permutation(len(kinds))
    centres, base = _place(rng, len(kinds), size)
    objects = []
    for (x, y), k in zip(centres, order, strict=True):
        s, c = kinds[int(k)]
        objects.append({"shape": s, "color": c, "cx": round(x, 2), "cy": round(y, 2),
                        "r": round(base * float(rng.uniform(0.85, 1.25)), 2),
                        "rot": round(float(rng.uniform(0, 360)), 2)})
    bg_kind = str(rng.choice(["solid", "gradient", "noise"]))
    return {"target": {"shape": shape, "color": color}, "count": n, "objects": objects,
            "background": {"kind": bg_kind,
                           "rgb": rgb_from_hsv(rng, s_range=(0, 0.25), v_range=(0.8, 1.0)),
                           "rgb2": rgb_from_hsv(rng, s_range=(0, 0.25), v_range=(0.7, 1.0)),
                           "seed": int(rng.integers(2**31))},
            "outline": bool(rng.random() < 0.6),
            "question": {"phrase": int(rng.integers(len(PHRASES)))}}


def _background(b: dict, S: int) -> Image.Image:
    if b["kind"] == "solid":
        return Image.new("RGB", (S, S), tuple(b["rgb"]))
    c1, c2 = np.array(b["rgb"], np.float32), np.array(b["rgb2"], np.float32)
    t = np.linspace(0, 1, S, dtype=np.float32)[:, None, None]
    arr = np.broadcast_to(c1 * (1 - t) + c2 * t, (S, S, 3))
    if b["kind"] == "noise":  # blotchy texture: coarse noise, upsampled (compresses well)
        g = max(4, S // 24)
        n = np.random.default_rng(b["seed"]).normal(0, 12, (g, g)).astype(np.float32)
        n = np.asarray(Image.fromarray(n, mode="F").resize((S, S), Image.Resampling.BILINEAR))
        arr = arr + n[:, :, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _shape_pts(o: dict, scale: float = 1.0):
    return polygon(o["shape"], o["cx"] * scale, o["cy"] * scale, o["r"] * scale, o["rot"])


def render(p: dict, size: int) -> Image.Image:
    S = size * SS
    im = _background(p["background"], S)
    d = ImageDraw.Draw(im)
    for o in p["objects"]:
        rgb = COLORS[o["color"]]
        line = tuple(int(v * 0.55) for v in rgb) if p["outline"] else None
        width = max(1, round(o["r"] * SS * 0.08)) if line else 0
        if o["shape"] == "circle":
            cx, cy, r = o["cx"] * SS, o["cy"] * SS, o["r"] * SS * 0.85
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb, outline=line, width=width)
        else:
            d.polygon(_shape_pts(o, SS), fill=rgb, outline=line, width=width)
    return im.reduce(SS)


def _plural(s: str, n: int) -> str:
    return s if n == 1 else f"{s}s"


def targets(p: dict) -> list[dict]:
    t = p["target"]
    return [o for o in p["objects"] if (o["shape"], o["color"]) == (t["shape"], t["color"])]


def qa(p: dict, size: int) -> tuple[str, str, dict]:
    """(question, answer, structured answer) from the objects."""
    t, objs = p["target"], targets(p)
    n = len(objs)
    question = PHRASES[p["question"]["phrase"]].format(c=t["color"], s=t["shape"])
    pts = sorted(((round(o["cx"] / size, 3), round(o["cy"] / size, 3)) for o in objs),
                 key=lambda xy: (xy[1], xy[0]))
    points = " ".join(f'<point x="{x:.3f}" y="{y:.3f}">' for x, y in pts)
    verb = "is" if n == 1 else "are"
    answer = f"{points}\nThere {verb} {n} {t['color']} {_plural(t['shape'], n)}."
    return question, answer, {"count": n, "points": [list(xy) for xy in pts]}


def inside(o: dict, x: float, y: float) -> bool:
    """Pixel point ``(x, y)`` inside object ``o`` (circles are drawn at 0.85 r)."""
    if o["shape"] == "circle":
        return math.hypot(x - o["cx"], y - o["cy"]) < o["r"] * 0.85
    return inside_polygon(x, y, _shape_pts(o))


def _near(o: dict, x: float, y: float) -> bool:
    """Within the object's circumcircle (a cheap test before the exact one)."""
    return abs(x - o["cx"]) <= o["r"] and abs(y - o["cy"]) <= o["r"]


def check(p: dict, question: str, answer: str, image: bytes, size: int) -> str | None:
    """None when the sample is right, else the reason (see module doc)."""
    objs = targets(p)
    if len(objs) != p["count"]:
        return "count_mismatch"
    q, a, _ = qa(p, size)
    if (q, a) != (question, answer):
        return "answer_mismatch"
    pts = [(float(x) * size, float(y) * size) for x, y in POINT.findall(answer)]
    stated = COUNT.search(answer)
    if stated is None or int(stated.group(1)) != len(objs) or len(pts) != len(objs):
        return "count_mismatch"
    others = [o for o in p["objects"] if o not in objs]
    hit: set[int] = set()
    for x, y in pts:
        mine = [i for i, o in enumerate(objs) if _near(o, x, y) and inside(o, x, y)]
        if len(mine) != 1 or mine[0] in hit:
            return "point_outside_object"
        if any(_near(o, x, y) and inside(o, x, y) for o in others):
            return "point_on_distractor"
        hit.add(mine[0])
    px, bad = checked_pixels(image, size)
    if bad:
        return bad
    want = np.array(COLORS[p["target"]["color"]])
    for x, y in pts:
        if np.abs(px[min(int(y), size - 1), min(int(x), size - 1)] - want).max() > 12:
            return "point_pixel_not_target_colour"
    return None
