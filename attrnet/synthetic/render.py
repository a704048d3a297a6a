"""Drawing of synthetic pedestrians for the embedded synthetic Market-1501 dataset.

Everything is drawn with numpy into channel-first float32 RGB arrays (3, H, W; channel-first
keeps numpy's inner loops long): soft-edged primitives (ellipses, trapezoids, capsules, rings)
are blended inside their bounding windows only, so one 128x64 crop costs about a millisecond.
Three records drive a picture:

- ``Look``: one identity. Its attributes become visible parts (garment colours, sleeve and leg
  length, dress, long hair, hat, backpack / shoulder bag / handbag, build for gender and age)
  and identity-only details (exact shades, build, a logo or stripe, skin, hair, shoes) make
  identities distinct beyond their attributes.
- ``Camera``: one of the six cameras: its background scene, colour cast, blur, noise,
  framing, and how often people are seen from the front, back or side or partly occluded.
- ``Shot``: one image: view (front, back or side), mirroring, scale, position, walking phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from io import BytesIO

import numpy as np
from PIL import Image

RGB = tuple[int, int, int]

#: Garment palettes for the annotated colours; identities jitter the shade around them.
UPPER_PALETTE: dict[str, RGB] = {
    "upblack": (32, 32, 36),
    "upwhite": (236, 236, 230),
    "upred": (205, 30, 40),
    "uppurple": (120, 48, 160),
    "upyellow": (238, 206, 36),
    "upgray": (128, 128, 130),
    "upblue": (38, 78, 190),
    "upgreen": (40, 145, 62),
}
LOWER_PALETTE: dict[str, RGB] = {
    "downblack": (30, 30, 34),
    "downwhite": (232, 232, 226),
    "downpink": (240, 128, 175),
    "downpurple": (112, 46, 150),
    "downyellow": (228, 200, 44),
    "downgray": (124, 124, 128),
    "downblue": (46, 72, 158),
    "downgreen": (46, 125, 60),
    "downbrown": (122, 80, 44),
}
SKIN_TONES: tuple[RGB, ...] = ((236, 196, 166), (222, 178, 146), (204, 158, 124), (176, 128, 96))
HAIR_TONES: tuple[RGB, ...] = ((22, 20, 20), (40, 32, 28), (66, 48, 34), (96, 70, 46))
GREY_HAIR: tuple[RGB, ...] = ((168, 168, 166), (200, 200, 198), (140, 140, 140))
SHOE_TONES: tuple[RGB, ...] = ((30, 30, 30), (225, 225, 225), (90, 90, 92), (96, 64, 40))
ACCESSORY_TONES: tuple[RGB, ...] = (
    (28, 28, 32), (48, 52, 90), (150, 30, 36), (96, 96, 100),
    (120, 82, 48), (205, 205, 200), (60, 90, 60), (210, 110, 150),
)
HAT_TONES: tuple[RGB, ...] = (
    (236, 236, 230), (205, 40, 40), (232, 200, 50), (50, 80, 175), (205, 175, 125),
    (232, 130, 170), (60, 140, 80),
)
SCENE_TONES: tuple[RGB, ...] = ((86, 124, 70), (150, 150, 146), (64, 64, 70), (178, 168, 148))
GROUND_TONES: tuple[RGB, ...] = ((150, 146, 140), (124, 122, 120), (168, 160, 150))
UPPER_MARKS = ("plain", "plain", "pinstripe", "logo", "logo", "band")
MARK_TONES: tuple[RGB, ...] = ACCESSORY_TONES + ((236, 236, 230), (240, 200, 40))
MULTICOLOR_PATTERNS = ("hstripes", "hstripes", "checks", "blocks", "vstripes")
NOISE_MARGIN = 16
VIEWS = ("front", "back", "side")
SIDE_GIRTH = 0.7


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


@dataclass(frozen=True)
class Look:
    """One identity's appearance; lengths are fractions of the body height.

    ``carry`` is none, backpack, bag or handbag; ``detail`` the identity's mark on its top
    (plain, logo, band); ``side`` (+1/-1) which side bags hang on.
    """

    dress: bool
    short_lower: bool
    short_sleeves: bool
    long_hair: bool
    hat: bool
    carry: str
    stature: float
    shoulder: float
    hip: float
    head: float
    hip_level: float
    hair_length: float
    skin: Paint
    hair: Paint
    shoes: Paint
    hat_paint: Paint
    carry_paint: Paint
    upper: Paint
    lower: Paint
    detail: str
    detail_paint: Paint
    side: int


@dataclass(frozen=True)
class Occluder:
    """Something between camera and person: another passer-by, a bicycle or a pole."""

    kind: str
    x: float
    paint: Paint


@dataclass(frozen=True)
class Camera:
    """One camera: background scene (three crops wide) and imaging conditions.

    ``soft`` is the edge width of drawn shapes in pixels (the camera's blur); ``noise`` a
    sensor-noise field a little larger than a crop, sampled at a random offset per image
    (cheaper than drawing fresh noise).
    """

    background: np.ndarray
    gain: np.ndarray
    haze: np.ndarray
    soft: float
    noise: np.ndarray
    scale: float
    view_rates: np.ndarray
    occlusion_rate: float


@dataclass(frozen=True)
class Shot:
    """One image of a person: view, framing, walking phase and light.

    ``view`` is one of ``VIEWS``; ``mirror`` flips left and right (side view: the facing);
    ``gait`` in [-1, 1] is the walking phase that spreads legs and swings arms.
    """

    view: str
    mirror: int
    scale: float
    cx: float
    feet: float
    gait: float
    bg_offset: int
    light: float
    occluder: Occluder | None


# ----------------------------------------------------------------------------- primitives


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


# ----------------------------------------------------------------------------- identities


def _pick(rng: np.random.Generator, tones: tuple[RGB, ...]) -> np.ndarray:
    """One of ``tones`` as float32 RGB."""
    return np.asarray(tones[int(rng.integers(len(tones)))], dtype=np.float32)


def _shade_of(rng: np.random.Generator, colour: RGB | np.ndarray) -> np.ndarray:
    """An identity's own shade of a palette colour: brightness and per-channel jitter."""
    base = np.asarray(colour, dtype=np.float32)
    jittered = base * rng.uniform(0.9, 1.08) + rng.normal(0.0, 7.0, 3)
    return np.clip(jittered, 0.0, 255.0).astype(np.float32)


def _garment(
    rng: np.random.Generator, palette: Mapping[str, RGB], colour: str | None, unit_period: float
) -> Paint:
    """Paint of a garment: the identity's shade of ``colour``, or several colours if None."""
    if colour is None:
        names = list(palette)
        chosen = rng.choice(len(names), size=int(rng.integers(2, 4)), replace=False)
        colours = np.stack([_shade_of(rng, palette[names[i]]) for i in chosen])
        pattern = MULTICOLOR_PATTERNS[int(rng.integers(len(MULTICOLOR_PATTERNS)))]
        return Paint(colours, pattern, unit_period * rng.uniform(0.03, 0.05))
    return solid(_shade_of(rng, palette[colour]))


def _marked_colour(fields: Mapping[str, int], palette: Mapping[str, RGB]) -> str | None:
    """The colour marked 2 in ``fields`` among the palette's names, or None (multicolor)."""
    marked = [name for name in palette if int(fields[name]) == 2]
    return marked[0] if marked else None


def _upper_detail(rng: np.random.Generator, upper: Paint) -> tuple[Paint, str, Paint]:
    """Identity-only mark of a one-colour top: faint pinstripes, a chest logo or a thin band.

    Returns the (possibly pinstriped) top, the mark drawn on it (plain, logo, band) and the
    mark's colour. Multicolour tops get no mark.
    """
    mark = UPPER_MARKS[int(rng.integers(len(UPPER_MARKS)))]
    contrast = solid(_pick(rng, MARK_TONES))
    if upper.pattern != "solid":
        return upper, "plain", contrast
    if mark == "pinstripe":
        main = upper.colours[0]
        stripes = np.stack([main, np.clip(main * 0.88 + 8.0, 0.0, 255.0)]).astype(np.float32)
        return Paint(stripes, "vstripes", 1.5), "plain", contrast
    return upper, mark, contrast


def _build(female: bool, age: int, rng: np.random.Generator) -> dict[str, float]:
    """Body proportions (in body heights) that show gender and age.

    Children are small with big heads and short legs; women have narrower shoulders and wider
    hips; adults and the old are bulkier (broad shoulders, wide waist) than teenagers.
    """
    if age == 1:
        stature, shoulder, hip, head, hip_level = 0.8, 0.1, 0.09, 0.082, 0.54
    else:
        stature, shoulder, hip = (0.96, 0.097, 0.104) if female else (1.0, 0.118, 0.092)
        head, hip_level = 0.064, 0.5
    if age >= 3:
        shoulder, hip, head = shoulder + 0.025, hip + 0.04, head * 1.06
    if age == 4:
        stature *= 0.97
    return {
        "stature": stature * rng.uniform(0.97, 1.03),
        "shoulder": shoulder + rng.normal(0.0, 0.005),
        "hip": hip + rng.normal(0.0, 0.004),
        "head": head * rng.uniform(0.95, 1.05),
        "hip_level": hip_level + rng.normal(0.0, 0.006),
    }


def _hair_tone(age: int, rng: np.random.Generator) -> np.ndarray:
    """Hair colour: grey for the old, dark with some grey for adults, dark otherwise."""
    if age == 4:
        return _shade_of(rng, _pick(rng, GREY_HAIR))
    tone = _shade_of(rng, _pick(rng, HAIR_TONES))
    if age == 3:
        tone = tone + rng.uniform(0.15, 0.35) * (np.float32(150.0) - tone)
    return tone.astype(np.float32)


def _contrasting(rng: np.random.Generator, tones: tuple[RGB, ...], avoid: np.ndarray) -> Paint:
    """The identity's shade of a tone that stands out against colour ``avoid``."""
    distinct = tuple(t for t in tones if np.abs(np.asarray(t) - avoid).sum() > 120) or tones
    return solid(_shade_of(rng, _pick(rng, distinct)))


def make_look(fields: Mapping[str, int], rng: np.random.Generator, height: int) -> Look:
    """Turn one identity's annotated fields (1/2 coding) into a drawable appearance."""
    female, age = int(fields["gender"]) == 2, int(fields["age"])
    unit = height * 0.9
    upper = _garment(rng, UPPER_PALETTE, _marked_colour(fields, UPPER_PALETTE), unit)
    upper, detail, detail_paint = _upper_detail(rng, upper)
    lower = _garment(rng, LOWER_PALETTE, _marked_colour(fields, LOWER_PALETTE), unit)
    carry = next((n for n in ("backpack", "bag", "handbag") if int(fields[n]) == 2), "none")
    hair = _hair_tone(age, rng)
    return Look(
        dress=int(fields["clothes"]) == 1,
        short_lower=int(fields["down"]) == 2,
        short_sleeves=int(fields["up"]) == 2,
        long_hair=int(fields["hair"]) == 2,
        hat=int(fields["hat"]) == 2,
        carry=carry,
        **_build(female, age, rng),
        hair_length=rng.uniform(0.28, 0.36),
        skin=solid(_shade_of(rng, _pick(rng, SKIN_TONES))),
        hair=solid(hair),
        shoes=solid(_shade_of(rng, _pick(rng, SHOE_TONES))),
        hat_paint=_contrasting(rng, HAT_TONES, hair),
        carry_paint=_contrasting(rng, ACCESSORY_TONES, (lower if carry == "handbag" else upper)
                                 .colours[0]),
        upper=upper,
        lower=lower,
        detail=detail, detail_paint=detail_paint,
        side=1 if rng.random() < 0.5 else -1,
    )


# ----------------------------------------------------------------------------- cameras


def _soft_texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth random brightness field (1, h, w) from bilinear upsampling of coarse noise."""
    coarse = rng.normal(0.0, 1.0, (height // cell + 2, width // cell + 2)).astype(np.float32)
    smooth = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
    return np.asarray(smooth, dtype=np.float32)[None]


def _bicycle(canvas: Canvas, x: float, ground: float, size: float, paint: Paint) -> None:
    """A parked bicycle: two wheels and a frame."""
    radius = size * 0.5
    for offset in (-radius * 1.2, radius * 1.2):
        ring(canvas, x + offset, ground - radius, radius, max(size * 0.08, 1.2), paint)
    capsule(canvas, (x - radius * 1.2, ground - radius), (x, ground - radius * 1.9),
            (size * 0.04, size * 0.04), paint)
    capsule(canvas, (x, ground - radius * 1.9), (x + radius * 1.2, ground - radius),
            (size * 0.04, size * 0.04), paint)


def _clutter(canvas: Canvas, rng: np.random.Generator, horizon: float) -> None:
    """Scatter background objects: poles, bushes, windows and parked bicycles."""
    height, width = canvas.pixels.shape[1:]
    px = height / 128.0
    for _ in range(int(rng.integers(4, 9))):
        x = rng.uniform(0, width)
        kind = int(rng.integers(4))
        if kind == 0:
            tone = solid(_pick(rng, ((70, 70, 74), (150, 150, 150), (40, 44, 40))))
            half = rng.uniform(1.0, 2.5) * px
            trapezoid(canvas, rng.uniform(0, horizon), horizon + rng.uniform(0, height * 0.3),
                      (x, x), (half, half), tone, shade=0.3)
        elif kind == 1:
            green = solid(_shade_of(rng, (70, 120, 60)))
            ellipse(canvas, x, horizon, rng.uniform(8, 20) * px, rng.uniform(6, 14) * px, green,
                    shade=0.4)
        elif kind == 2:
            dark = solid(_shade_of(rng, (50, 56, 66)))
            top = rng.uniform(0, max(horizon - 20 * px, 1))
            trapezoid(canvas, top, top + rng.uniform(10, 24) * px, (x, x),
                      (rng.uniform(5, 12) * px,) * 2, dark)
        else:
            tone = solid(_pick(rng, ((30, 30, 30), (60, 60, 70), (140, 30, 30), (40, 60, 120))))
            _bicycle(canvas, x, horizon + rng.uniform(4, height * 0.35), height * 0.22, tone)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A camera's scene: wall, trees or building above a paved ground, with clutter."""
    horizon = rng.uniform(0.25, 0.55) * height
    rows = np.arange(height, dtype=np.float32)[None, :, None]
    upper = _shade_of(rng, _pick(rng, SCENE_TONES))[:, None, None]
    ground = _shade_of(rng, _pick(rng, GROUND_TONES))[:, None, None]
    image = np.where(rows < horizon, upper, ground * (0.9 + 0.2 * rows / height))
    image = image * np.ones((1, 1, width), dtype=np.float32)
    image += 14.0 * _soft_texture(rng, height, width, max(height // 20, 2))
    tiles = max(int(rng.uniform(8, 16) * height / 128), 3)
    image[:, (np.arange(height) % tiles == 0) & (np.arange(height) > horizon)] *= 0.88
    _clutter(Canvas(image), rng, horizon)
    return image


def make_camera(rng: np.random.Generator, height: int, width: int) -> Camera:
    """One camera: scene and imaging conditions (light, colour cast, blur, noise, framing)."""
    return Camera(
        background=_background(rng, height, 3 * width),
        gain=(rng.uniform(0.82, 1.12) * rng.uniform(0.93, 1.07, (3, 1, 1))).astype(np.float32),
        haze=rng.uniform(-4.0, 8.0, (3, 1, 1)).astype(np.float32),
        soft=float(rng.uniform(1.0, 2.4)),
        noise=rng.normal(0.0, rng.uniform(1.5, 5.0),
                         (3, height + NOISE_MARGIN, width + NOISE_MARGIN)).astype(np.float32),
        scale=float(rng.uniform(0.84, 0.93)),
        view_rates=rng.dirichlet((3.0, 3.0, 3.0)),
        occlusion_rate=float(rng.uniform(0.05, 0.25)),
    )


# ----------------------------------------------------------------------------- shots


def _occluder(rng: np.random.Generator, width: int) -> Occluder:
    """A passer-by at the crop's edge, a bicycle in front of the legs or a pole."""
    kind = ("person", "bicycle", "pole")[int(rng.integers(3))]
    edge = rng.uniform(-0.1, 0.08) * width
    x = edge if rng.random() < 0.5 else width - edge
    if kind == "bicycle":
        x = rng.uniform(0.2, 0.8) * width
    tones = tuple(UPPER_PALETTE.values()) + ((60, 60, 64),)
    return Occluder(kind, float(x), solid(_shade_of(rng, _pick(rng, tones))))


def make_tracklet(
    camera: Camera, rng: np.random.Generator, count: int, height: int, width: int
) -> list[Shot]:
    """``count`` consecutive shots of one person passing one camera."""
    base = Shot(
        view=VIEWS[int(rng.choice(len(VIEWS), p=camera.view_rates))],
        mirror=1 if rng.random() < 0.5 else -1,
        scale=float(camera.scale + rng.normal(0.0, 0.025)),
        cx=float(width * (0.5 + rng.normal(0.0, 0.04))),
        feet=float(height * (0.985 + rng.normal(0.0, 0.01))),
        gait=0.0,
        bg_offset=int(rng.integers(0, 2 * width + 1)),
        light=1.0,
        occluder=_occluder(rng, width) if rng.random() < camera.occlusion_rate else None,
    )
    phase, pace = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0)
    shots = []
    for _ in range(count):
        phase += rng.uniform(0.8, 2.2)
        shots.append(replace(
            base,
            scale=base.scale * float(rng.uniform(0.985, 1.015)),
            cx=base.cx + float(rng.normal(0.0, 0.02 * width)),
            gait=float(pace * np.sin(phase)),
            bg_offset=int(np.clip(base.bg_offset + rng.integers(-3, 4), 0, 2 * width)),
            light=float(rng.uniform(0.96, 1.04)),
        ))
    return shots


# ----------------------------------------------------------------------------- the figure


@dataclass(frozen=True)
class _Frame:
    """Maps body coordinates (fractions of body height; x signed by mirroring) to pixels.

    In the side view ``x`` offsets point forward (the way the person faces) and bodies are
    ``girth`` times as wide as seen from the front.
    """

    top: float
    unit: float
    cx: float
    mirror: int
    girth: float

    def y(self, level: float) -> float:
        """Pixel row of a body level."""
        return self.top + level * self.unit

    def x(self, offset: float) -> float:
        """Pixel column of a signed body offset (mirrored for left/right items)."""
        return self.cx + offset * self.unit * self.mirror

    def size(self, length: float) -> float:
        """Pixel length of a body length."""
        return length * self.unit


def _frame_of(look: Look, shot: Shot, height: int) -> _Frame:
    """Placement of a person in a crop of ``height`` pixels."""
    unit = height * shot.scale * look.stature
    girth = SIDE_GIRTH if shot.view == "side" else 1.0
    return _Frame(shot.feet - unit, unit, shot.cx, shot.mirror, girth)


def _shoulder_level(look: Look) -> float:
    """Body level of the shoulders: just below the head."""
    return 2.0 * look.head + 0.03


def _legs(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """Legs with shoes: trousers to the ankle, shorts to the knee, bare under a dress.

    Seen from the side the legs stride forward and back; from front or back they stand apart.
    """
    if look.dress:
        paint = Banded((0.93,), (look.skin, look.shoes))
    elif look.short_lower:
        paint = Banded((0.42, 0.93), (look.lower, look.skin, look.shoes))
    else:
        paint = Banded((0.93,), (look.lower, look.shoes))
    radius = (frame.size(0.043), frame.size(0.03))
    hip, ankle = frame.y(look.hip_level), frame.y(0.972)
    for side in (-1, 1):
        if shot.view == "side":
            start, end = frame.x(0.0), frame.x(side * 0.11 * shot.gait)
        else:
            start, end = frame.x(side * 0.045), frame.x(side * (0.05 + 0.012 * shot.gait))
        capsule(canvas, (start, hip), (end, ankle), radius, paint, shade=0.3)


def _lower_garment(canvas: Canvas, look: Look, frame: _Frame) -> None:
    """Hips of the trousers, or the skirt of a dress (short: to the knee, long: to the shin)."""
    waist, girth = look.hip_level - 0.05, frame.girth
    if look.dress:
        hem = 0.68 if look.short_lower else 0.9
        flare = 0.085 if look.short_lower else 0.11
        half = (frame.size(look.hip * 0.95 * girth), frame.size((look.hip + flare) * girth))
        trapezoid(canvas, frame.y(waist), frame.y(hem), (frame.cx, frame.cx), half, look.lower,
                  shade=0.3)
    else:
        half = (frame.size(look.hip * girth), frame.size(look.hip * 0.92 * girth))
        trapezoid(canvas, frame.y(waist), frame.y(look.hip_level + 0.06), (frame.cx, frame.cx),
                  half, look.lower, shade=0.3)


def _torso(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """Upper garment with rounded shoulders, plus the identity's logo (front) or band."""
    top, bottom = frame.y(_shoulder_level(look)), frame.y(look.hip_level + 0.02)
    upper_half = frame.size(look.shoulder * frame.girth)
    lower_half = frame.size(look.hip * 1.02 * frame.girth)
    ellipse(canvas, frame.cx, top + frame.size(0.025), upper_half, frame.size(0.03), look.upper)
    trapezoid(canvas, top + frame.size(0.01), bottom, (frame.cx, frame.cx),
              (upper_half, lower_half), look.upper, shade=0.25)
    if look.detail == "band":
        t0, t1 = 0.4, 0.46
        trapezoid(canvas, top + t0 * (bottom - top), top + t1 * (bottom - top),
                  (frame.cx, frame.cx),
                  (upper_half + t0 * (lower_half - upper_half),
                   upper_half + t1 * (lower_half - upper_half)), look.detail_paint, shade=0.25)
    elif look.detail == "logo" and shot.view == "front":
        ellipse(canvas, frame.x(0.035), top + frame.size(0.075), frame.size(0.024),
                frame.size(0.02), look.detail_paint)


def _wrist(look: Look, shot: Shot, frame: _Frame, side: int) -> tuple[float, float]:
    """Wrist (pixels) of the arm on ``side`` (side view: +1 swings forward with the gait)."""
    if shot.view == "side":
        return frame.x(side * 0.08 * shot.gait), frame.y(look.hip_level - 0.02)
    return (frame.x(side * (look.shoulder + 0.012 + 0.01 * shot.gait)),
            frame.y(look.hip_level - 0.015 - 0.01 * abs(shot.gait)))


def _arm(canvas: Canvas, look: Look, shot: Shot, frame: _Frame, side: int) -> None:
    """One arm: sleeve to the elbow (short sleeves) or to the wrist, then skin and hand."""
    level = _shoulder_level(look) + 0.025
    offset = 0.0 if shot.view == "side" else side * (look.shoulder - 0.02)
    paint = Banded((0.38 if look.short_sleeves else 0.9,), (look.upper, look.skin))
    capsule(canvas, (frame.x(offset), frame.y(level)), _wrist(look, shot, frame, side),
            (frame.size(0.037), frame.size(0.025)), paint, shade=0.3)


def _long_hair_mass(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """Hair from the head to below the shoulders: behind the head, or down the back."""
    rx = 0.8 * look.head
    if shot.view == "side":
        centre = (frame.x(-0.4 * rx), frame.x(-0.045))
        half = (frame.size(rx * 0.7), frame.size(0.03))
    else:
        centre = (frame.cx, frame.cx)
        half = (frame.size(rx * 1.05), frame.size(rx * 1.35))
    trapezoid(canvas, frame.y(look.head), frame.y(look.hair_length), centre, half, look.hair,
              shade=0.3)


def _face(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """Head: hair cap over a face (front), a face turned sideways (side), or all hair (back)."""
    ry, rx = look.head, 0.8 * look.head
    cy = frame.y(ry)
    if shot.view == "back":
        ellipse(canvas, frame.cx, cy, frame.size(rx * 1.05), frame.size(ry), look.hair, shade=0.3)
        return
    sideways = shot.view == "side"
    ellipse(canvas, frame.x(-0.12 * rx if sideways else 0.0), cy - frame.size(0.12 * ry),
            frame.size(rx * 1.06), frame.size(ry * 0.96), look.hair, shade=0.3)
    ellipse(canvas, frame.x(0.3 * rx if sideways else 0.0), cy + frame.size(0.14 * ry),
            frame.size(rx * (0.72 if sideways else 0.9)), frame.size(ry * 0.86), look.skin,
            shade=0.2)


def _head(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """Neck, head, long hair over the shoulders or back, and the hat with its brim."""
    ry, rx = look.head, 0.8 * look.head
    cy = frame.y(ry)
    trapezoid(canvas, frame.y(1.6 * ry), frame.y(_shoulder_level(look) + 0.01),
              (frame.cx, frame.cx), (frame.size(0.024),) * 2, look.skin)
    _face(canvas, look, shot, frame)
    if look.long_hair and shot.view != "front":
        _long_hair_mass(canvas, look, shot, frame)
    elif look.long_hair:
        for side in (-1, 1):
            capsule(canvas, (frame.x(side * rx * 0.85), cy),
                    (frame.x(side * rx * 1.1), frame.y(look.hair_length)),
                    (frame.size(rx * 0.32), frame.size(rx * 0.28)), look.hair, shade=0.3)
    if look.hat:
        ellipse(canvas, frame.cx, cy - frame.size(0.5 * ry), frame.size(rx * 1.15),
                frame.size(ry * 0.8), look.hat_paint, shade=0.3)
        brim = {"front": (0.0, 1.55), "back": (0.0, 1.3), "side": (0.6, 1.05)}[shot.view]
        centre = frame.x(brim[0] * rx)
        trapezoid(canvas, cy - frame.size(0.32 * ry), cy - frame.size(0.1 * ry),
                  (centre, centre), (frame.size(brim[1] * rx),) * 2, look.hat_paint)


def _backpack_behind(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """Backpack behind the body: around the shoulders (front) or behind the back (side)."""
    level = _shoulder_level(look)
    if shot.view == "side":
        centre = frame.x(-(look.shoulder * frame.girth + 0.035))
        trapezoid(canvas, frame.y(level - 0.01), frame.y(look.hip_level - 0.05),
                  (centre, centre), (frame.size(0.045), frame.size(0.05)), look.carry_paint,
                  shade=0.35)
        return
    trapezoid(canvas, frame.y(level - 0.045), frame.y(look.hip_level - 0.08),
              (frame.cx, frame.cx),
              (frame.size(look.shoulder + 0.01), frame.size(look.shoulder + 0.03)),
              look.carry_paint, shade=0.35)


def _backpack_front(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """What shows of a backpack over the body: the pack (back view) or its straps."""
    level = _shoulder_level(look)
    if shot.view == "back":
        trapezoid(canvas, frame.y(level + 0.005), frame.y(look.hip_level - 0.03),
                  (frame.cx, frame.cx), (frame.size(look.shoulder * 0.88),
                                         frame.size(look.shoulder * 0.95)),
                  look.carry_paint, shade=0.35)
        trapezoid(canvas, frame.y(level + 0.17), frame.y(look.hip_level - 0.05),
                  (frame.cx, frame.cx), (frame.size(0.05), frame.size(0.055)),
                  solid(look.carry_paint.colours[0] * 0.75), shade=0.2)
        return
    if shot.view == "side":
        straps = [(-0.5 * look.shoulder * frame.girth, 0.3 * look.shoulder * frame.girth)]
    else:
        straps = [(side * 0.55 * look.shoulder, side * 0.62 * look.shoulder) for side in (-1, 1)]
    for x0, x1 in straps:
        capsule(canvas, (frame.x(x0), frame.y(level)), (frame.x(x1), frame.y(level + 0.2)),
                (frame.size(0.019), frame.size(0.016)), look.carry_paint)


def _bags(canvas: Canvas, look: Look, shot: Shot, frame: _Frame) -> None:
    """Shoulder bag (strap across the body, bag at the hip) or handbag hanging from a hand."""
    level = _shoulder_level(look)
    if look.carry == "bag":
        side = 1 if shot.view == "side" else look.side
        across = 0.0 if shot.view == "side" else -side * (look.hip + 0.05)
        strap_end = frame.x(0.0 if shot.view == "side" else -side * look.hip)
        capsule(canvas, (frame.x(side * look.shoulder * 0.6 * frame.girth), frame.y(level)),
                (strap_end, frame.y(look.hip_level - 0.03)),
                (frame.size(0.012), frame.size(0.012)), look.carry_paint)
        centre = frame.x(across)
        trapezoid(canvas, frame.y(look.hip_level - 0.075), frame.y(look.hip_level + 0.07),
                  (centre, centre), (frame.size(0.058), frame.size(0.064)), look.carry_paint,
                  shade=0.3)
    elif look.carry == "handbag":
        side = 1 if shot.view == "side" else look.side
        x, y = _wrist(look, shot, frame, side)
        x, top = x + frame.size(0.015) * side * frame.mirror, y + frame.size(0.065)
        for handle in (-0.03, 0.03):
            capsule(canvas, (x + frame.size(handle), top), (x, y), (frame.size(0.007),) * 2,
                    look.carry_paint)
        trapezoid(canvas, top, top + frame.size(0.1), (x, x),
                  (frame.size(0.05), frame.size(0.058)), look.carry_paint, shade=0.3)


def draw_person(canvas: Canvas, look: Look, shot: Shot) -> None:
    """Draw one person onto ``canvas`` (in place), from the farthest part to the nearest."""
    frame = _frame_of(look, shot, canvas.pixels.shape[1])
    side_view = shot.view == "side"
    if side_view:
        _arm(canvas, look, shot, frame, -1)
    if look.carry == "backpack" and shot.view != "back":
        _backpack_behind(canvas, look, shot, frame)
    if look.long_hair and shot.view == "front":
        _long_hair_mass(canvas, look, shot, frame)
    _legs(canvas, look, shot, frame)
    _lower_garment(canvas, look, frame)
    _torso(canvas, look, shot, frame)
    for side in (1,) if side_view else (-1, 1):
        _arm(canvas, look, shot, frame, side)
    if look.carry == "backpack":
        _backpack_front(canvas, look, shot, frame)
    _bags(canvas, look, shot, frame)
    _head(canvas, look, shot, frame)


def _draw_occluder(canvas: Canvas, occluder: Occluder) -> None:
    """Draw a passer-by at the edge, a bicycle over the legs or a pole."""
    height = canvas.pixels.shape[1]
    if occluder.kind == "person":
        capsule(canvas, (occluder.x, height * 0.35), (occluder.x, height * 1.1),
                (height * 0.07, height * 0.07), occluder.paint, shade=0.3)
    elif occluder.kind == "bicycle":
        _bicycle(canvas, occluder.x, height * 1.02, height * 0.3, solid((34, 34, 36)))
    else:
        trapezoid(canvas, 0.0, float(height), (occluder.x, occluder.x), (height / 64,) * 2,
                  solid((80, 80, 84)), shade=0.3)


# ----------------------------------------------------------------------------- imaging


def _finish(
    image: np.ndarray, camera: Camera, light: float, rng: np.random.Generator
) -> np.ndarray:
    """Apply the camera to a drawn picture: colour cast and light, sensor noise; to uint8."""
    image *= camera.gain * np.float32(light)
    image += camera.haze + np.float32(0.5)
    height, width = image.shape[1:]
    dy, dx = rng.integers(0, NOISE_MARGIN + 1, size=2)
    image += camera.noise[:, dy:dy + height, dx:dx + width]
    np.clip(image, 0.0, 255.0, out=image)
    return image.transpose(1, 2, 0).astype(np.uint8, order="C")


def _backdrop(camera: Camera, offset: int, width: int) -> np.ndarray:
    """A crop-sized copy of the camera's scene at horizontal ``offset``."""
    return camera.background[:, :, offset:offset + width].copy()


def render_person(
    look: Look, shot: Shot, camera: Camera, rng: np.random.Generator, width: int
) -> np.ndarray:
    """One crop (uint8 H x W x 3; H of the camera's scene) of a person."""
    canvas = Canvas(_backdrop(camera, shot.bg_offset, width), camera.soft)
    draw_person(canvas, look, shot)
    if shot.occluder is not None:
        _draw_occluder(canvas, shot.occluder)
    return _finish(canvas.pixels, camera, shot.light, rng)


def render_fragment(
    look: Look, camera: Camera, rng: np.random.Generator, width: int, zoom: float
) -> np.ndarray:
    """A bad detection: scene with a person off-centre and ``zoom`` times too large.

    Junk (zoom near 1, mostly off the crop) and distractors (large zoom, body parts) of
    Market-1501 look like this.
    """
    height = camera.background.shape[1]
    shot = Shot(
        view=VIEWS[int(rng.integers(len(VIEWS)))], mirror=1 if rng.random() < 0.5 else -1,
        scale=camera.scale * zoom, cx=float(width * rng.uniform(-0.3, 1.3)),
        feet=float(height * rng.uniform(0.7, 1.0 + zoom)), gait=float(rng.uniform(-1.0, 1.0)),
        bg_offset=int(rng.integers(0, 2 * width + 1)), light=1.0, occluder=None,
    )
    return render_person(look, shot, camera, rng, width)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 RGB array: fixed quality and subsampling, no metadata."""
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=2,
                                optimize=False)
    return buffer.getvalue()
