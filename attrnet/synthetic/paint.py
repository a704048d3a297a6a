"""Paint and soft-edged shapes: numpy drawing into channel-first float32 RGB pictures.

Shapes (ellipses, trapezoids, capsules, rings) are blended inside their bounding windows only,
so one 128x64 crop costs about a millisecond; a camera's softness widens every edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Paint:
    """How a surface is coloured: one colour, or a pattern of several (``multicolor``)."""

    colours: np.ndarray
    pattern: str = "solid"
    period: float = 4.0

    def fill(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Colours (3, h, w) at offsets ``ys`` (h, 1) and ``xs`` (1, w) from the anchor."""
        if self.pattern == "solid":
            return self.colours[0][:, None, None]
        rows, cols = np.broadcast_arrays(np.floor(ys / self.period), np.floor(xs / self.period))
        if self.pattern == "hstripes":
            index = rows
        elif self.pattern == "vstripes":
            index = cols
        elif self.pattern == "blocks":
            index = (cols >= 0) + 2 * (rows >= 3)
        else:
            index = rows + cols
        return self.colours.T[:, index.astype(np.int64) % len(self.colours)]


@dataclass(frozen=True)
class Banded:
    """Paints in bands along a limb: ``paints[i]`` up to ``stops[i]`` of its length.

    One limb capsule then shows sleeve and skin, or trouser leg, skin and shoe.
    """

    stops: tuple[float, ...]
    paints: tuple[Paint, ...]

    def fill(self, ys: np.ndarray, xs: np.ndarray, along: np.ndarray) -> np.ndarray:
        """Colours (3, h, w) at offsets ``ys``, ``xs`` and fraction ``along`` the limb."""
        colour = self.paints[-1].fill(ys, xs)
        for stop, paint in zip(self.stops[::-1], self.paints[-2::-1], strict=True):
            colour = np.where(along < stop, paint.fill(ys, xs), colour)
        return colour


def solid(colour: RGB | np.ndarray) -> Paint:
    """A one-colour ``Paint``."""
    return Paint(np.asarray(colour, dtype=np.float32).reshape(1, 3))



def pick_tone(rng: np.random.Generator, tones: tuple[RGB, ...]) -> np.ndarray:
    """One of ``tones`` as float32 RGB."""
    return np.asarray(tones[int(rng.integers(len(tones)))], dtype=np.float32)


def shade_of(rng: np.random.Generator, colour: RGB | np.ndarray) -> np.ndarray:
    """An identity's own shade of a palette colour: brightness and per-channel jitter."""
    base = np.asarray(colour, dtype=np.float32)
    jittered = base * rng.uniform(0.9, 1.08) + rng.normal(0.0, 7.0, 3)
    return np.clip(jittered, 0.0, 255.0).astype(np.float32)



@dataclass(frozen=True)
class Canvas:
    """A picture being drawn: channel-first float32 pixels and the edge softness in pixels.

    A camera's softness widens every shape's anti-aliased edge, which blurs people the way
    Market-1501's upscaled crops are blurred, at no extra cost.
    """

    pixels: np.ndarray
    soft: float = 1.0


#: Pixel-centre coordinates, sliced by ``_window`` instead of being rebuilt for every shape.
_CENTRES = np.arange(4096, dtype=np.float32) + 0.5


def _unit(values: np.ndarray) -> np.ndarray:
    """Clamp to [0, 1] in place (cheaper than ``np.clip`` on the small windows drawn here)."""
    return np.minimum(np.maximum(values, 0.0, out=values), 1.0, out=values)


def _window(
    canvas: Canvas, x0: float, x1: float, y0: float, y1: float
) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray] | None:
    """Pixel window covering the box, with pixel-centre coordinates (h, 1) and (1, w)."""
    height, width = canvas.pixels.shape[1:]
    i0, i1 = max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 1, height)
    j0, j1 = max(int(np.floor(x0)) - 1, 0), min(int(np.ceil(x1)) + 1, width)
    if i0 >= i1 or j0 >= j1:
        return None
    return (slice(None), slice(i0, i1), slice(j0, j1)), _CENTRES[i0:i1, None], _CENTRES[None, j0:j1]


def _edge_shading(offset: np.ndarray, half: np.ndarray | float, shade: float) -> np.ndarray | None:
    """Brightness 1 on a shape's axis falling to ``1 - shade`` at its edge (a rounded look)."""
    if not shade:
        return None
    ratio = np.minimum(offset / half, 1.0)
    ratio *= ratio
    ratio *= -shade
    ratio += 1.0
    return ratio


def _blend(
    canvas: Canvas, region: tuple[slice, slice, slice], alpha: np.ndarray, colour: np.ndarray,
    shade: np.ndarray | None,
) -> None:
    """Alpha-blend ``colour`` (optionally darkened towards the edges by ``shade``) in place."""
    if shade is not None:
        colour = colour * shade
    target = canvas.pixels[region]
    change = colour - target
    change *= alpha
    target += change


def ellipse(
    canvas: Canvas, cx: float, cy: float, rx: float, ry: float, paint: Paint,
    shade: float = 0.0,
) -> None:
    """Filled, anti-aliased ellipse."""
    found = _window(canvas, cx - rx, cx + rx, cy - ry, cy + ry)
    if found is None:
        return
    region, ys, xs = found
    radius = np.hypot((xs - cx) * (1.0 / rx), (ys - cy) * (1.0 / ry))
    alpha = _unit((1.0 - radius) * (min(rx, ry) / canvas.soft) + 0.5)
    _blend(canvas, region, alpha, paint.fill(ys - cy, xs - cx), _edge_shading(radius, 1.0, shade))


def trapezoid(
    canvas: Canvas, top: float, bottom: float, centre: tuple[float, float],
    half: tuple[float, float], paint: Paint, shade: float = 0.0,
) -> None:
    """Filled quadrilateral with horizontal top and bottom edges.

    ``centre`` and ``half`` give the x centre and half-width at the top and at the bottom.
    The paint is anchored at the top centre, so patterns move with the body.
    """
    reach = max(half) + max(abs(centre[0] - centre[1]), 0.0)
    mid = 0.5 * (centre[0] + centre[1])
    found = _window(canvas, mid - reach, mid + reach, top, bottom)
    if found is None:
        return
    region, ys, xs = found
    t = _unit((ys - top) / max(bottom - top, 1e-3))
    axis = centre[0] + t * (centre[1] - centre[0])
    width = half[0] + t * (half[1] - half[0])
    offset = np.abs(xs - axis)
    outside = np.maximum(np.maximum(offset - width, top - ys), ys - bottom)
    alpha = _unit(0.5 - outside / canvas.soft)
    _blend(canvas, region, alpha, paint.fill(ys - top, xs - centre[0]),
           _edge_shading(offset, width, shade))


def capsule(
    canvas: Canvas, start: tuple[float, float], end: tuple[float, float],
    radius: tuple[float, float], paint: Paint | Banded, shade: float = 0.0,
) -> None:
    """Tapered capsule (limb, strap) from ``start`` to ``end`` (x, y) with end radii."""
    (x0, y0), (x1, y1) = start, end
    reach = max(radius)
    found = _window(
        canvas, min(x0, x1) - reach, max(x0, x1) + reach, min(y0, y1) - reach, max(y0, y1) + reach
    )
    if found is None:
        return
    region, ys, xs = found
    dx, dy = x1 - x0, y1 - y0
    scale = 1.0 / max(dx * dx + dy * dy, 1e-6)
    px, py = xs - x0, ys - y0
    t = _unit(px * (dx * scale) + py * (dy * scale))
    distance = np.hypot(px - t * dx, py - t * dy)
    local = t * (radius[1] - radius[0]) + radius[0]
    alpha = local - distance
    alpha *= 1.0 / canvas.soft
    alpha += 0.5
    colour = paint.fill(py, px, t) if isinstance(paint, Banded) else paint.fill(py, px)
    _blend(canvas, region, _unit(alpha), colour, _edge_shading(distance, local, shade))


def ring(
    canvas: Canvas, cx: float, cy: float, radius: float, thickness: float, paint: Paint
) -> None:
    """Circle outline (bicycle wheel)."""
    found = _window(canvas, cx - radius - thickness, cx + radius + thickness,
                    cy - radius - thickness, cy + radius + thickness)
    if found is None:
        return
    region, ys, xs = found
    distance = np.abs(np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) - radius)
    alpha = _unit((0.5 * thickness - distance) / canvas.soft + 0.5)
    _blend(canvas, region, alpha, paint.fill(ys - cy, xs - cx), None)
