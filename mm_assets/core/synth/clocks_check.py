"""Clocks: the checker (see :mod:`.clocks` for what it verifies and its reasons)."""

from __future__ import annotations

import math

import numpy as np

from mm_assets.core.synth import clocks_view as cv
from mm_assets.core.synth.clocks import face_outline, hand_points, hand_width, qa
from mm_assets.core.synth.draw import checked_pixels


def time_from_angles(angles: dict, has_second: bool) -> tuple[int, int] | None:
    """(minute_of_12h, second) read back from the hand angles, or None when the hour hand
    disagrees with the minute hand (by more than half a degree)."""
    sec = round(angles["second"] / 6) % 60 if has_second else 0
    minute_t = angles["minute"] / 6  # minutes past the hour, with fraction from seconds
    m = math.floor(minute_t + 1e-6) % 60
    h = math.floor(angles["hour"] / 30 + 1e-9) % 12
    expect_hour = (h * 60 + minute_t) / 720 * 360
    if abs(expect_hour - angles["hour"]) > 0.5:
        return None
    if has_second and abs((minute_t - math.floor(minute_t + 1e-6)) * 60 - sec) > 0.5:
        return None
    return h * 60 + m, sec


def _view_check(p: dict, size: int) -> tuple[np.ndarray, str | None]:
    """The scene -> image homography re-derived from the view parameters (identity without a
    view), or the reason the stored view disagrees."""
    view = p.get("view")
    if not view:
        return np.eye(3), None
    h, fit = cv.view_homography(view, p["center"], face_outline(p), size)
    if abs(fit - view["fit"]) > 1e-6 or \
            np.abs(h - np.reshape(view["homography"], (3, 3))).max() > 1e-6:
        return h, "warp_mismatch"
    face = cv.project(h, face_outline(p))
    if face.min() < 0 or face.max() > size:
        return h, "face_outside_image"
    return h, None


def _visible(p: dict) -> tuple[dict[str, list], str | None]:
    """Per hand the sample points clear of the occluder, or the reason the occluder breaks
    the rule (covers both tips, or hides every sample point of a hand)."""
    pts, o = hand_points(p), p.get("occluder")
    if not o:
        return {k: v[:-1] for k, v in pts.items()}, None
    margin = hand_width(p) + 2
    if all(cv.covers(o, *v[-1], margin) for v in pts.values()):
        return {}, "occluder_covers_both_tips"
    seen = {k: [xy for xy in v[:-1] if not cv.covers(o, *xy, margin)] for k, v in pts.items()}
    return seen, "hand_hidden" if not all(seen.values()) else None


def _near(px: np.ndarray, xy, target: np.ndarray) -> np.ndarray:
    """The pixel of the 3x3 neighbourhood of image point ``xy`` closest to ``target``."""
    x, y = int(xy[0]), int(xy[1])
    near = px[max(0, y - 1):y + 2, max(0, x - 1):x + 2].reshape(-1, 3)
    return near[np.abs(near - target).sum(axis=1).argmin()]


def _even(outline: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along the closed polygon ``outline``."""
    closed = np.vstack([outline, outline[:1]])
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    at = np.arange(n) * cum[-1] / n
    return np.column_stack([np.interp(at, cum, closed[:, 0]), np.interp(at, cum, closed[:, 1])])


def _silhouette(px: np.ndarray, p: dict, h: np.ndarray, size: int) -> bool:
    """Whether the background shows just outside the face where the view puts it: 24 points
    evenly spaced along the face outline, pushed out to 1.1 x about the centre, projected through ``h``, each
    with a 3x3 pixel within 24 (L1 over RGB) of the background colour (points under the
    occluder, off the image, or beyond 1.35 radii — clutter keeps 1.45 radii away — are
    skipped). A
    face drawn without its warp, or with another, fails on the foreshortened side."""
    c = np.asarray(p["center"], dtype=np.float64)
    ring = c + 1.1 * (_even(np.asarray(face_outline(p), dtype=np.float64), 24) - c)
    o, margin, radius = p.get("occluder"), hand_width(p) + 2, p["radius"]
    bg = np.array(p["background"])
    for (x, y), (u, v) in zip(ring, cv.project(h, ring), strict=True):
        if ((o and cv.covers(o, x, y, margin)) or np.hypot(x - c[0], y - c[1]) > 1.35 * radius
                or not (1 <= u < size - 2 and 1 <= v < size - 2)):
            continue
        if np.abs(_near(px, (u, v), bg) - bg).sum() > 24:
            return False
    return True


def check(p: dict, question: str, answer: str, image: bytes, size: int) -> str | None:
    """None when the sample is right, else the reason (see module doc)."""
    if not (0 <= p["minute_of_12h"] < 720 and 0 <= p["second"] < 60):
        return "param_out_of_range"
    t = time_from_angles(p["angles"], p["second_hand"])
    if t is None:
        return "hands_disagree"
    q, a, _ = qa({**p, "minute_of_12h": t[0], "second": t[1]})
    if (q, a) != (question, answer):
        return "answer_mismatch"
    h, bad = _view_check(p, size)
    seen, bad = (None, bad) if bad else _visible(p)
    if bad:
        return bad
    px, bad = checked_pixels(image, size)
    if bad:
        return bad
    face, ink = np.array(p["face"]["rgb"]), np.array(p["hands"]["rgb"])
    for hand, points in seen.items():
        ang = p["angles"][hand]
        if p["second_hand"] and abs((ang - p["angles"]["second"] + 180) % 360 - 180) < 12:
            continue  # the second hand may cover these spots
        for xy in cv.project(h, points):
            c = _near(px, xy, ink)  # the 3x3 pixel closest to ink
            if np.abs(c - ink).sum() > np.abs(c - face).sum():
                return f"{hand}_hand_not_drawn"
    if not _silhouette(px, p, h, size):
        return "face_not_where_view_says"
    o = p.get("occluder")
    if o:
        rgb = np.array(o["rgb"])
        if np.abs(_near(px, cv.project(h, [o["center"]])[0], rgb) - rgb).sum() > 24:
            return "occluder_not_drawn"
    return None
