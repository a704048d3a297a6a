"""Batch augmentation on the training device: resize, flip, pad-crop, random erasing, normalize.

The fast input path caches uint8 images at their stored size and moves whole uint8 batches to
the device, where these functions reproduce the per-sample reference (``images.read_image``'s
bilinear resize, then ``transforms.train_transform`` / ``eval_transform``) as a few vectorised
tensor ops. Images stay uint8 until the normalisation (a quarter of the memory traffic), random
parameters are drawn per sample with torch on the batch's device and no value is read back to
the host, so a CUDA step never waits on a synchronisation. On the CPU, where reading them costs
nothing, flip + crop and erasing use per-sample slices instead (same pixels, far less work).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attrnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD

#: torchvision RandomErasing's defaults: erased area fraction and log-uniform aspect ratio range.
ERASING_SCALE = (0.02, 0.33)
ERASING_RATIO = (0.3, 3.3)
#: torchvision RandomErasing draws at most this many rectangles before giving up on an image.
ERASING_ATTEMPTS = 10


def resize_batch(images: torch.Tensor, size: tuple[int, int], pad: int = 0) -> torch.Tensor:
    """uint8 (B, 3, h, w) -> uint8 (B, 3, H, W), resized as PIL's BILINEAR (``read_image``);
    ``pad`` > 0 returns it inside a zero border of that width (the reference's ``Pad``).

    On the CPU, torch's uint8 antialiased kernel is PIL's algorithm (fastest on channels_last
    input; copying its output into the zero border restores the plain layout). CUDA has no
    uint8 kernel, so there :func:`resize_float` reproduces PIL's two rounded passes in float.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected a uint8 batch (B, 3, h, w), got {images.dtype} {images.shape}")
    height, width = size
    if tuple(images.shape[-2:]) == (height, width):
        resized = images
    elif images.device.type == "cpu":
        source = images.contiguous(memory_format=torch.channels_last)
        resized = F.interpolate(source, size=size, mode="bilinear", antialias=True)
    else:
        resized = resize_float(images, size)
    if pad == 0:
        return resized  # on the CPU in channels_last layout; normalize_batch converts it
    out = images.new_zeros((len(images), images.shape[1], height + 2 * pad, width + 2 * pad))
    out[:, :, pad : pad + height, pad : pad + width] = resized
    return out


def resize_float(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 -> uint8 resize in float: PIL's separable passes, each rounded to uint8.

    PIL's BILINEAR resize is antialiased and separable: a horizontal pass rounded to uint8, then
    a vertical one. Doing the same gives exactly the reference image for integer scale factors
    (Market's 128x64 -> 256x128) and within two grey levels (on a few % of values) otherwise,
    where PIL's filter windows differ slightly.
    """
    out = images.float()
    height, width = size
    if out.shape[-1] != width:
        out = _bilinear_pass(out, (out.shape[-2], width))
    if out.shape[-2] != height:
        out = _bilinear_pass(out, (height, width))
    return out.to(torch.uint8)


def _bilinear_pass(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One antialiased bilinear pass, rounded half up to the 0-255 grid like PIL."""
    out = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.add_(0.5).floor_().clamp_(0, 255)


def normalize_batch(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 -> ImageNet-normalised float32, as ``ToDtype(scale=True)`` + ``Normalize``
    (per channel with Python scalars: the fastest kernels, and no constant tensors to move)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = images.to(torch.float32, memory_format=layout, copy=True)
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)):
        out[:, channel].mul_(1.0 / (255.0 * std)).sub_(mean / std)
    return out


@dataclass
class FlipCropParams:
    """Per-sample flip flags (B,) and crop shifts (B,) in [-pad, pad] (the crop's offset from
    the centre of the padded image: ``RandomCrop``'s top/left minus ``pad``)."""

    flip: torch.Tensor
    shift_y: torch.Tensor
    shift_x: torch.Tensor
    pad: int


def draw_flip_crop(
    batch: int,
    flip: float,
    pad: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> FlipCropParams:
    """Flip with probability ``flip``; crop offsets uniform over the integers in [-pad, pad]."""
    flips = torch.rand(batch, device=device, generator=generator) < flip
    shifts = torch.randint(-pad, pad + 1, (2, batch), device=device, generator=generator)
    return FlipCropParams(flips, shifts[0], shifts[1], pad)


def flip_crop(padded: torch.Tensor, params: FlipCropParams) -> torch.Tensor:
    """Per-sample horizontal flip and crop of a batch zero-padded by ``params.pad`` (see
    :func:`resize_batch`) back to its unpadded size.

    Equals ``RandomHorizontalFlip`` then ``Pad(pad)`` then ``RandomCrop`` at top/left
    ``pad + shift`` on the uint8 image, as the reference does (flipping before padding mirrors
    the column index within the padded image). Whole rows are selected first (a row copy),
    then each row's columns are gathered.
    """
    batch, channels, padded_height, padded_width = padded.shape
    pad, device = params.pad, padded.device
    height, width = padded_height - 2 * pad, padded_width - 2 * pad
    planes = torch.arange(batch * channels, device=device).view(batch, channels, 1)
    tops = (params.shift_y + pad).view(batch, 1, 1)
    rows = planes * padded_height + tops + torch.arange(height, device=device)  # (B, C, H)
    out = padded.reshape(-1, padded_width).index_select(0, rows.view(-1))
    cols = torch.arange(width, device=device) + (params.shift_x + pad)[:, None]  # (B, W)
    cols = torch.where(params.flip[:, None], padded_width - 1 - cols, cols)
    out = out.view(batch, channels, height, padded_width)
    return out.gather(3, cols[:, None, None, :].expand(-1, channels, height, -1))


def shift_flip(images: torch.Tensor, params: FlipCropParams) -> torch.Tensor:
    """:func:`flip_crop` of an unpadded batch by slice copies: the CPU path.

    Output pixel (y, x) is pixel (y + shift_y, x + shift_x) of the (flipped) image, or 0 outside
    it: the crop of the zero-padded image. On the CPU two slice copies per sample are far faster
    than gathering every pixel by index, but they read the shifts on the host, so the device
    path keeps :func:`flip_crop`.
    """
    batch, channels, height, width = images.shape
    out = images.new_zeros((batch, channels, height, width))
    draws = zip(params.flip.tolist(), params.shift_y.tolist(), params.shift_x.tolist(), strict=True)
    for index, (flip, dy, dx) in enumerate(draws):
        rows = slice(max(0, dy), height + min(0, dy))
        first, stop = max(0, dx), width + min(0, dx)  # source columns of the flipped image
        if flip:
            source = images[index, :, rows, width - stop : width - first].flip(-1)
        else:
            source = images[index, :, rows, first:stop]
        out[index, :, max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)] = source
    return out


@dataclass
class ErasingParams:
    """Per-sample erasing flags (B,) and rectangles: top, left, height, width (B,) each."""

    apply: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor


def draw_erasing(
    batch: int,
    size: tuple[int, int],
    probability: float,
    device: torch.device,
    scale: tuple[float, float] = ERASING_SCALE,
    ratio: tuple[float, float] = ERASING_RATIO,
    generator: torch.Generator | None = None,
) -> ErasingParams:
    """torchvision ``RandomErasing`` parameters for every sample at once.

    Each sample erases with probability ``probability``; its rectangle is the first of
    ``ERASING_ATTEMPTS`` candidates (area fraction uniform in ``scale``, aspect ratio
    log-uniform in ``ratio``, rounded sides) that fits strictly inside the image, placed
    uniformly; a sample whose candidates all fail is not erased, as in torchvision.
    """
    height, width = size
    shape = (batch, ERASING_ATTEMPTS)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * _uniform(shape, device, generator))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * _uniform(shape, device, generator))
    heights = torch.sqrt(area * aspect).round()
    widths = torch.sqrt(area / aspect).round()
    fits = (heights < height) & (widths < width)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting candidate
    rect_h = heights.gather(1, first).squeeze(1).long()
    rect_w = widths.gather(1, first).squeeze(1).long()
    apply = (_uniform((batch,), device, generator) < probability) & fits.any(dim=1)
    top = _uniform_int(height - rect_h + 1, device, generator)
    left = _uniform_int(width - rect_w + 1, device, generator)
    return ErasingParams(apply, top, left, rect_h, rect_w)


def erased_map(
    params: ErasingParams, size: tuple[int, int], dtype: torch.dtype, complement: bool = False
) -> torch.Tensor:
    """The erased rectangles as a 0/1 map (B, 1, H, W), the outer product of a row and a column
    mask per sample; ``complement`` gives 1 - map (the pixels kept) in the same single op."""
    height, width = size
    rows = torch.arange(height, device=params.top.device)[None]
    cols = torch.arange(width, device=params.top.device)[None]
    in_rows = (rows >= params.top[:, None]) & (rows < (params.top + params.height)[:, None])
    in_cols = (cols >= params.left[:, None]) & (cols < (params.left + params.width)[:, None])
    in_rows = (in_rows & params.apply[:, None]).to(dtype)[:, :, None]
    in_cols = in_cols.to(dtype)[:, None, :]
    if complement:
        one = torch.ones((), device=params.top.device, dtype=dtype)
        return torch.addcmul(one, in_rows, in_cols, value=-1)[:, None]
    return (in_rows * in_cols)[:, None]


def erase(
    images: torch.Tensor,
    params: ErasingParams,
    value: float | str = 0.0,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """Fill each sample's rectangle with ``value`` (a number, or ``"random"`` normal noise);
    ``inplace`` writes a number into ``images`` itself, saving a copy of the batch.

    A number is filled by multiplying with the complement of :func:`erased_map`, far faster
    than a broadcast ``masked_fill`` on the CPU.
    """
    if value != "random" and not isinstance(value, int | float):
        raise ValueError(f"erasing value must be a number or 'random', got {value!r}")
    size = images.shape[-2:]
    if value == "random":
        noise = torch.randn(
            images.shape, device=images.device, dtype=images.dtype, generator=generator
        )
        return torch.where(erased_map(params, size, images.dtype) > 0, noise, images)
    if images.device.type == "cpu":  # rectangle fills: touch only the erased pixels
        out = images if inplace else images.clone()
        rectangles = zip(
            *(
                t.tolist()
                for t in (params.apply, params.top, params.left, params.height, params.width)
            ),
            strict=True,
        )
        for index, (apply, top, left, height, width) in enumerate(rectangles):
            if apply:
                out[index, :, top : top + height, left : left + width] = value
        return out
    keep = erased_map(params, size, images.dtype, complement=True)
    out = images.mul_(keep) if inplace else images * keep
    return out.add_((1 - keep) * value) if value else out


def train_batch(
    images: torch.Tensor,
    size: tuple[int, int],
    flip: float = 0.5,
    pad: int = 10,
    erasing: float = 0.5,
    erasing_value: float | str = 0.0,
    channels_last: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The training augmentation of ``transforms.train_transform`` on a uint8 batch."""
    on_cpu = images.device.type == "cpu"
    out = resize_batch(images, size, 0 if on_cpu else pad)
    if flip > 0 or pad > 0:
        params = draw_flip_crop(len(out), flip, pad, out.device, generator)
        out = shift_flip(out, params) if on_cpu else flip_crop(out, params)
    out = normalize_batch(out, channels_last)
    if erasing > 0:
        params = draw_erasing(len(out), size, erasing, out.device, generator=generator)
        out = erase(out, params, erasing_value, generator, inplace=True)
    return out


def eval_batch(
    images: torch.Tensor, size: tuple[int, int], channels_last: bool = False
) -> torch.Tensor:
    """The evaluation input (resize + normalise) of a uint8 batch."""
    return normalize_batch(resize_batch(images, size), channels_last)


def _uniform(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    return torch.rand(shape, device=device, generator=generator)


def _uniform_int(
    counts: torch.Tensor, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """Integers uniform in [0, counts) per element (``randint`` with a per-sample bound)."""
    draws = (_uniform(tuple(counts.shape), device, generator) * counts).long()
    return torch.minimum(draws, counts - 1)
