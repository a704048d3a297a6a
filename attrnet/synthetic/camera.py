"""The six cameras (scene, colour cast, blur, noise, view rates) and the shots of a tracklet."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from attrnet.synthetic.look import UPPER_PALETTE
from attrnet.synthetic.paint import (
    RGB,
    Canvas,
    Paint,
    capsule,
    ellipse,
    pick_tone,
    ring,
    shade_of,
    solid,
    trapezoid,
)

#: Scene and ground colours of the backgrounds; a margin of noise around each crop.
SCENE_TONES: tuple[RGB, ...] = ((86, 124, 70), (150, 150, 146), (64, 64, 70), (178, 168, 148))
GROUND_TONES: tuple[RGB, ...] = ((150, 146, 140), (124, 122, 120), (168, 160, 150))
NOISE_MARGIN = 16
#: The views a person is seen in (``Camera.view_rates`` gives their frequencies).
VIEWS = ("front", "back", "side")


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


def _soft_texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth random brightness field (1, h, w) from bilinear upsampling of coarse noise."""
    coarse = rng.normal(0.0, 1.0, (height // cell + 2, width // cell + 2)).astype(np.float32)
    smooth = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
    return np.asarray(smooth, dtype=np.float32)[None]


def draw_bicycle(canvas: Canvas, x: float, ground: float, size: float, paint: Paint) -> None:
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
            tone = solid(pick_tone(rng, ((70, 70, 74), (150, 150, 150), (40, 44, 40))))
            half = rng.uniform(1.0, 2.5) * px
            trapezoid(canvas, rng.uniform(0, horizon), horizon + rng.uniform(0, height * 0.3),
                      (x, x), (half, half), tone, shade=0.3)
        elif kind == 1:
            green = solid(shade_of(rng, (70, 120, 60)))
            ellipse(canvas, x, horizon, rng.uniform(8, 20) * px, rng.uniform(6, 14) * px, green,
                    shade=0.4)
        elif kind == 2:
            dark = solid(shade_of(rng, (50, 56, 66)))
            top = rng.uniform(0, max(horizon - 20 * px, 1))
            trapezoid(canvas, top, top + rng.uniform(10, 24) * px, (x, x),
                      (rng.uniform(5, 12) * px,) * 2, dark)
        else:
            tone = solid(pick_tone(rng, ((30, 30, 30), (60, 60, 70), (140, 30, 30), (40, 60, 120))))
            draw_bicycle(canvas, x, horizon + rng.uniform(4, height * 0.35), height * 0.22, tone)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A camera's scene: wall, trees or building above a paved ground, with clutter."""
    horizon = rng.uniform(0.25, 0.55) * height
    rows = np.arange(height, dtype=np.float32)[None, :, None]
    upper = shade_of(rng, pick_tone(rng, SCENE_TONES))[:, None, None]
    ground = shade_of(rng, pick_tone(rng, GROUND_TONES))[:, None, None]
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
    return Occluder(kind, float(x), solid(shade_of(rng, pick_tone(rng, tones))))


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
