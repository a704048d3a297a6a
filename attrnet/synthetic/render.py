"""Drawing of synthetic pedestrians for the embedded synthetic Market-1501 dataset.

Everything is drawn with numpy into channel-first float32 RGB arrays (3, H, W; channel-first
keeps numpy's inner loops long) from the soft-edged shapes of ``paint``. Three records drive a
picture:

- ``Look`` (``look``): one identity. Its attributes become visible parts (garment colours,
  sleeve and leg length, dress, long hair, hat, backpack / shoulder bag / handbag, build for
  gender and age) and identity-only details (exact shades, build, a logo or stripe, skin, hair,
  shoes) make identities distinct beyond their attributes.
- ``Camera`` (``camera``): one of the six cameras: its background scene, colour cast, blur,
  noise, framing, and how often people are seen from the front, back or side or partly
  occluded.
- ``Shot`` (``camera``): one image: view (front, back or side), mirroring, scale, position,
  walking phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image

from attrnet.synthetic.camera import NOISE_MARGIN, VIEWS, Camera, Occluder, Shot, draw_bicycle
from attrnet.synthetic.look import Look
from attrnet.synthetic.paint import Banded, Canvas, capsule, ellipse, solid, trapezoid

#: Body width in the side view, relative to the front view.
SIDE_GIRTH = 0.7


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
        draw_bicycle(canvas, occluder.x, height * 1.02, height * 0.3, solid((34, 34, 36)))
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
