"""The input pipeline's one implementation: uint8 image batches -> resized, augmented, normalised.

Datasets yield uint8 images at the stored size; the datamodule's ``on_after_batch_transfer``
calls :func:`train_batch` or :func:`eval_batch` on whatever device the batch reached (the CPU
for CPU training, the GPU for GPU training). The training augmentation is the re-ID standard
one, as torchvision applies it per image (``RandomHorizontalFlip``, ``Pad`` + ``RandomCrop``,
``RandomErasing(value=0)`` after the normalisation), written as a few vectorised tensor ops with
per-sample parameters drawn from a torch generator on the batch's device. No value is ever read
back to the host, so a CUDA step never waits on a synchronisation. Images stay uint8 until the
normalisation (:class:`attrnet.data.normalize.Normalize`, the inference graph's own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attrnet.data.normalize import Normalize

#: torchvision RandomErasing's defaults: erased area fraction and log-uniform aspect ratio range.
ERASING_SCALE = (0.02, 0.33)
ERASING_RATIO = (0.3, 3.3)
#: torchvision RandomErasing draws at most this many rectangles before giving up on an image.
ERASING_ATTEMPTS = 10


def resize_batch(images: torch.Tensor, size: tuple[int, int], pad: int = 0) -> torch.Tensor:
    """uint8 (B, 3, h, w) -> uint8 (B, 3, H, W), resized as PIL's BILINEAR (what decoding and
    prediction use); ``pad`` > 0 returns it inside a zero border of that width (``Pad``).

    On the CPU, torch's uint8 antialiased kernel (fastest on channels_last input; about 9x
    faster than :func:`resize_float` for Market's 2x upscale) gives PIL's pixels exactly for
    integer scale factors and within two grey levels (on a few % of values) otherwise. Other
    devices have no uint8 kernel: :func:`resize_float` there.
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
        return resized
    out = images.new_zeros((len(images), images.shape[1], height + 2 * pad, width + 2 * pad))
    out[:, :, pad : pad + height, pad : pad + width] = resized
    return out


def resize_float(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 -> uint8 resize in float: PIL's separable passes, each rounded to uint8.

    PIL's BILINEAR resize is antialiased and separable: a horizontal pass rounded to uint8, then
    a vertical one. Doing the same gives exactly PIL's image for integer scale factors (Market's
    128x64 -> 256x128, 128x64 -> 64x32) and within two grey levels (on a few % of values)
    otherwise, where PIL's filter windows differ slightly.
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
    ``pad + shift`` of each image (flipping before padding mirrors the column index within the
    padded image). Whole rows are selected first (a row copy), then each row's columns are
    gathered.
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
    generator: torch.Generator | None = None,
) -> ErasingParams:
    """torchvision ``RandomErasing`` parameters for every sample at once.

    Each sample erases with probability ``probability``; its rectangle is the first of
    ``ERASING_ATTEMPTS`` candidates (area fraction uniform in ``ERASING_SCALE``, aspect ratio
    log-uniform in ``ERASING_RATIO``, rounded sides) that fits strictly inside the image,
    placed uniformly; a sample whose candidates all fail is not erased, as in torchvision.
    """
    height, width = size
    shape = (batch, ERASING_ATTEMPTS)
    low, high = ERASING_SCALE
    area = height * width * (low + (high - low) * _uniform(shape, device, generator))
    log_lo, log_hi = math.log(ERASING_RATIO[0]), math.log(ERASING_RATIO[1])
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


def kept_map(params: ErasingParams, size: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """0 on each sample's erased rectangle, 1 elsewhere (B, 1, H, W): one minus the outer
    product of a row and a column mask per sample."""
    height, width = size
    rows = torch.arange(height, device=params.top.device)[None]
    cols = torch.arange(width, device=params.top.device)[None]
    in_rows = (rows >= params.top[:, None]) & (rows < (params.top + params.height)[:, None])
    in_cols = (cols >= params.left[:, None]) & (cols < (params.left + params.width)[:, None])
    in_rows = (in_rows & params.apply[:, None]).to(dtype)[:, :, None]
    in_cols = in_cols.to(dtype)[:, None, :]
    one = torch.ones((), device=params.top.device, dtype=dtype)
    return torch.addcmul(one, in_rows, in_cols, value=-1)[:, None]


def erase(images: torch.Tensor, params: ErasingParams) -> torch.Tensor:
    """Set each sample's rectangle to 0 (``RandomErasing(value=0)`` after the normalisation:
    the mean colour), in place."""
    return images.mul_(kept_map(params, images.shape[-2:], images.dtype))


def train_batch(
    images: torch.Tensor,
    size: tuple[int, int],
    normalize: Normalize,
    flip: float,
    pad: int,
    erasing: float,
    channels_last: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The training input of a uint8 batch: resize to ``size``, flip and pad-crop, normalise,
    erase; float32 (B, 3, H, W), in the channels_last layout if asked."""
    out = resize_batch(images, size, pad)
    if flip > 0 or pad > 0:
        out = flip_crop(out, draw_flip_crop(len(out), flip, pad, out.device, generator))
    out = normalize(out, channels_last)
    if erasing > 0:
        out = erase(out, draw_erasing(len(out), size, erasing, out.device, generator))
    return out


def eval_batch(
    images: torch.Tensor, size: tuple[int, int], normalize: Normalize, channels_last: bool = False
) -> torch.Tensor:
    """The evaluation input of a uint8 batch: resize to ``size`` and normalise."""
    return normalize(resize_batch(images, size), channels_last)


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
