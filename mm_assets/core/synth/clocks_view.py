"""Clocks: the view of the scene — a perspective warp and a partial occluder over the face.

Perspective (``params["view"]``): the rendered scene is a plane (a clock on a wall), turned
by ``tilt`` degrees about the in-plane axis through the clock centre at ``axis`` degrees from
the x axis, and photographed by a pinhole camera of focal length ``focal`` pixels looking at
the centre. A plane point ``(x, y)`` goes to ``X = R (x - cx, y - cy, 0) + (0, 0, f)``,
``u = cx + f X/Z``, ``v = cy + f Y/Z``: the plane-induced homography
``H = T(c) K [r1 r2 t] T(-c)`` (Hartley & Zisserman, *Multiple View Geometry*, 2nd ed.,
sec. 13.1), which keeps the centre fixed. When the warped face (its outline plus a 2 px
margin) would leave the image, ``H`` is scaled about the centre by ``fit`` < 1 until it fits.
The image is warped with Pillow's ``Image.transform(..., PERSPECTIVE)``, whose coefficients
are the inverse map (output pixel -> scene pixel) normalised so that ``h33 = 1``; the area
outside the scene is filled with the background colour. ``homography`` is stored row-major
(9 numbers, ``h33 = 1``, output-image pixels) so readers need not re-derive it.

Occluder (``params["occluder"]``): one opaque shape (disc, square, triangle or hexagon) lying
on the face, drawn after the hands and warped with the scene. It never covers both hand
tips, and each of the hour and minute hands keeps at least one of the checker's sample
points (:data:`CHECK_FRACTIONS` of its length) clear of it, so every answer stays verifiable.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from mm_assets.core.synth.draw import polygon

CHECK_FRACTIONS = (0.35, 0.6)  # points along a hand (of its length) the checker samples
MARGIN = 2.0  # pixels the warped face keeps from the image border
SHAPES = ("disc", "square", "triangle", "hexagon")


def rotation(tilt: float, axis: float) -> np.ndarray:
    """(3, 3) rotation by ``tilt`` degrees about the unit vector at ``axis`` degrees in the
    x-y plane (Rodrigues' formula)."""
    a, t = math.radians(axis), math.radians(tilt)
    k = np.array([math.cos(a), math.sin(a), 0.0])
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * (kx @ kx)


def homography(center: tuple[float, float], tilt: float, axis: float, focal: float,
               fit: float = 1.0) -> np.ndarray:
    """(3, 3) float64 plane -> image homography of the view (see module doc), ``h33 = 1``."""
    cx, cy = center
    r = rotation(tilt, axis)
    m = np.array([[focal, 0, 0], [0, focal, 0], [0, 0, 1.0]]) @ np.column_stack(
        [r[:, 0], r[:, 1], [0.0, 0.0, focal]])
    t_in = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    t_out = np.array([[fit, 0, cx], [0, fit, cy], [0, 0, 1.0]])
    h = t_out @ m @ t_in
    return h / h[2, 2]


def project(h: np.ndarray, pts) -> np.ndarray:
    """(N, 2) image points of the (N, 2) plane points ``pts`` under ``h``."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    q = np.column_stack([p, np.ones(len(p))]) @ np.asarray(h, dtype=np.float64).T
    return q[:, :2] / q[:, 2:3]


def fit_scale(h: np.ndarray, center: tuple[float, float], outline, size: int) -> float:
    """Largest ``s`` <= 1 such that the outline under ``h``, scaled by ``s`` about the centre,
    stays :data:`MARGIN` pixels inside a ``size`` x ``size`` image (6 decimals, rounded down)."""
    d = project(h, outline) - np.asarray(center)
    c = np.asarray(center)
    room = np.where(d > 0, size - MARGIN - c, c - MARGIN)
    with np.errstate(divide="ignore"):
        s = np.where(np.abs(d) > 1e-9, room / np.abs(d), np.inf)
    return min(1.0, math.floor(float(s.min()) * 1e6) / 1e6)


def view_homography(view: dict, center, outline, size: int) -> tuple[np.ndarray, float]:
    """The homography of ``view`` (tilt, axis, focal) and its fit to the image, re-derived
    from the face ``outline`` (scene pixels)."""
    h0 = homography(center, view["tilt"], view["axis"], view["focal"])
    fit = fit_scale(h0, center, outline, size)
    return homography(center, view["tilt"], view["axis"], view["focal"], fit), fit


def warp(im: Image.Image, h: np.ndarray, ss: int, fill) -> Image.Image:
    """``im`` (drawn at ``ss`` x the output size) seen through ``h`` (output-size pixels)."""
    s = np.diag([ss, ss, 1.0])
    inv = np.linalg.inv(s @ h @ np.linalg.inv(s))
    inv = inv / inv[2, 2]
    return im.transform(im.size, Image.Transform.PERSPECTIVE, tuple(inv.ravel()[:8]),
                        resample=Image.Resampling.BICUBIC, fillcolor=tuple(fill))


def occluder_outline(o: dict) -> list[tuple[float, float]]:
    """Vertices (plane pixels) of an occluder: a 48-gon for ``disc``, else the shape's."""
    cx, cy = o["center"]
    if o["shape"] == "disc":
        return [(cx + o["r"] * math.cos(2 * math.pi * k / 48),
                 cy + o["r"] * math.sin(2 * math.pi * k / 48)) for k in range(48)]
    return polygon(o["shape"], cx, cy, o["r"], o["rot"])


def covers(o: dict, x: float, y: float, margin: float) -> bool:
    """Whether ``(x, y)`` lies within ``margin`` pixels of the occluder (its circumcircle
    for polygons: conservative) — the checker skips such points."""
    return math.hypot(x - o["center"][0], y - o["center"][1]) <= o["r"] + margin


def sample_occluder(rng: np.random.Generator, center, inner: float, radius: float,
                    size_range, hand_pts: dict, colours, margin: float) -> dict | None:
    """An occluder on the face (centre at 0.2..0.85 of the inner radius from the clock
    centre, circumradius ``size_range`` x ``radius``) that leaves each hand in ``hand_pts``
    (name -> [check points..., tip]) a visible check point and covers at most one tip, in a
    colour far from ``colours``; None after 20 draws that all fail."""
    for _ in range(20):
        a, d = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.2, 0.85)) * inner
        o = {"shape": str(rng.choice(SHAPES)),
             "center": [round(center[0] + d * math.cos(a), 2),
                        round(center[1] + d * math.sin(a), 2)],
             "r": round(float(rng.uniform(*size_range)) * radius, 2),
             "rot": round(float(rng.uniform(0, 360)), 2),
             "rgb": [int(v) for v in rng.integers(0, 256, 3)]}
        tips = sum(covers(o, *pts[-1], margin) for pts in hand_pts.values())
        seen = all(any(not covers(o, x, y, margin) for x, y in pts[:-1])
                   for pts in hand_pts.values())
        far = all(sum(abs(a - b) for a, b in zip(o["rgb"], c, strict=True)) > 150
                  for c in colours)
        if tips <= 1 and seen and far:
            return o
    return None
