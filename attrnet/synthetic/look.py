"""Identity looks: attributes become visible parts; identity-only details (exact shades, build,
a logo or stripe, skin, hair, shoes) make people distinct beyond their attributes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from attrnet.synthetic.paint import RGB, Paint, pick_tone, shade_of, solid

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
UPPER_MARKS = ("plain", "plain", "pinstripe", "logo", "logo", "band")
MARK_TONES: tuple[RGB, ...] = ACCESSORY_TONES + ((236, 236, 230), (240, 200, 40))
MULTICOLOR_PATTERNS = ("hstripes", "hstripes", "checks", "blocks", "vstripes")


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


def _garment(
    rng: np.random.Generator, palette: Mapping[str, RGB], colour: str | None, unit_period: float
) -> Paint:
    """Paint of a garment: the identity's shade of ``colour``, or several colours if None."""
    if colour is None:
        names = list(palette)
        chosen = rng.choice(len(names), size=int(rng.integers(2, 4)), replace=False)
        colours = np.stack([shade_of(rng, palette[names[i]]) for i in chosen])
        pattern = MULTICOLOR_PATTERNS[int(rng.integers(len(MULTICOLOR_PATTERNS)))]
        return Paint(colours, pattern, unit_period * rng.uniform(0.03, 0.05))
    return solid(shade_of(rng, palette[colour]))


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
    contrast = solid(pick_tone(rng, MARK_TONES))
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
        return shade_of(rng, pick_tone(rng, GREY_HAIR))
    tone = shade_of(rng, pick_tone(rng, HAIR_TONES))
    if age == 3:
        tone = tone + rng.uniform(0.15, 0.35) * (np.float32(150.0) - tone)
    return tone.astype(np.float32)


def _contrasting(rng: np.random.Generator, tones: tuple[RGB, ...], avoid: np.ndarray) -> Paint:
    """The identity's shade of a tone that stands out against colour ``avoid``."""
    distinct = tuple(t for t in tones if np.abs(np.asarray(t) - avoid).sum() > 120) or tones
    return solid(shade_of(rng, pick_tone(rng, distinct)))


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
        skin=solid(shade_of(rng, pick_tone(rng, SKIN_TONES))),
        hair=solid(hair),
        shoes=solid(shade_of(rng, pick_tone(rng, SHOE_TONES))),
        hat_paint=_contrasting(rng, HAT_TONES, hair),
        carry_paint=_contrasting(rng, ACCESSORY_TONES, (lower if carry == "handbag" else upper)
                                 .colours[0]),
        upper=upper,
        lower=lower,
        detail=detail, detail_paint=detail_paint,
        side=1 if rng.random() < 0.5 else -1,
    )
