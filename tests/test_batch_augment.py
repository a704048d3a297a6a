"""The fast input path: batch augmentation equals the per-sample reference, has the intended
distributions, never reads a value back to the host, and trains through a real Trainer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp
from torch.utils.data import default_collate
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from attrnet.data.batch_augment import (
    ERASING_RATIO,
    ERASING_SCALE,
    draw_erasing,
    draw_flip_crop,
    erase,
    erased_map,
    eval_batch,
    flip_crop,
    normalize_batch,
    resize_batch,
    resize_float,
    shift_flip,
    train_batch,
)
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.dataset import CachedBatchDataset
from attrnet.data.images import read_image
from attrnet.data.sources import SyntheticSource
from attrnet.data.transforms import IMAGENET_STD, eval_transform
from attrnet.training import build_data_and_model
from tests.helpers import TINY_OVERRIDES, compose_config

CPU = torch.device("cpu")
#: One grey level after normalisation, in the channel with the smallest std (the worst case).
GREY_LEVEL = 1 / (255 * min(IMAGENET_STD))


@pytest.fixture(scope="module")
def jpeg_paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real JPEG files at Market's native 128x64: smooth colour fields plus pixel noise."""
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    paths = []
    for index in range(12):
        coarse = rng.integers(0, 256, (8, 4, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((64, 128), Image.Resampling.BICUBIC))
        noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"{index:04d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize(
    ("size", "exact"),
    [((256, 128), True), ((64, 32), True), ((128, 64), True), ((200, 100), False)],
)
def test_eval_batch_equals_reference_resize_and_normalize(
    jpeg_paths: list[str], size: tuple[int, int], exact: bool
) -> None:
    """Tolerance: identical (float rounding, 1e-5) for integer scale factors such as Market's
    128x64 -> 256x128; otherwise at most 2 grey levels, on under 5% of the values (PIL's
    fixed-point filter windows differ slightly from torch's), 0.05 grey levels on average.
    Checked for the CPU kernel (``eval_batch``) and the float one CUDA uses (``resize_float``)."""
    cached = torch.stack([read_image(path, (128, 64)) for path in jpeg_paths])
    reference = torch.stack([eval_transform()(read_image(path, size)) for path in jpeg_paths])
    for fast in (eval_batch(cached, size), normalize_batch(resize_float(cached, size))):
        assert fast.shape == reference.shape and fast.dtype == torch.float32
        difference = (fast - reference).abs()
        if exact:
            assert difference.max() < 1e-5
        else:
            assert difference.max() <= 2 * GREY_LEVEL + 1e-5
            assert (difference > 1e-5).float().mean() < 0.05
            assert difference.mean() < 0.05 * GREY_LEVEL
    resized = resize_batch(cached, size).int()
    assert (resized - torch.stack([read_image(p, size) for p in jpeg_paths])).abs().max() <= (
        0 if exact else 2
    )
    padded = resize_batch(cached, size, pad=3).int()
    assert torch.equal(padded[:, :, 3:-3, 3:-3], resized) and padded.sum() == resized.sum()


def test_flip_pad_crop_equals_torchvision_per_sample(jpeg_paths: list[str]) -> None:
    cached = torch.stack([read_image(p, (128, 64)) for p in jpeg_paths])
    images = resize_batch(cached, (256, 128))
    params = draw_flip_crop(len(images), 0.5, 10, CPU, torch.Generator().manual_seed(1))
    out = flip_crop(resize_batch(cached, (256, 128), pad=10), params)
    assert params.flip.any() and not params.flip.all()
    for index, image in enumerate(images):
        expected = TF.horizontal_flip(image) if params.flip[index] else image
        expected = TF.pad(expected, [10])
        top, left = int(params.shift_y[index]) + 10, int(params.shift_x[index]) + 10
        assert torch.equal(out[index], TF.crop(expected, top, left, 256, 128))


@pytest.mark.parametrize("pad", [0, 3, 10])
def test_cpu_shift_flip_equals_the_device_gather(jpeg_paths: list[str], pad: int) -> None:
    """The CPU's slice copies (unpadded input) give the device path's pixels exactly."""
    cached = torch.stack([read_image(p, (128, 64)) for p in jpeg_paths])
    for seed in range(3):
        params = draw_flip_crop(len(cached), 0.5, pad, CPU, torch.Generator().manual_seed(seed))
        expected = flip_crop(resize_batch(cached, (256, 128), pad=pad), params)
        assert torch.equal(shift_flip(resize_batch(cached, (256, 128)), params), expected)


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_erase_equals_torchvision_erase(jpeg_paths: list[str], value: float) -> None:
    images = eval_batch(torch.stack([read_image(p, (128, 64)) for p in jpeg_paths]), (128, 64))
    params = draw_erasing(
        len(images), (128, 64), 0.5, CPU, generator=torch.Generator().manual_seed(2)
    )
    out = erase(images, params, value)
    assert params.apply.any() and not params.apply.all()
    for index, image in enumerate(images):
        expected = image
        if params.apply[index]:
            i, j = int(params.top[index]), int(params.left[index])
            h, w = int(params.height[index]), int(params.width[index])
            expected = TF.erase(image, i, j, h, w, torch.tensor(value))
        assert torch.allclose(out[index], expected, atol=1e-6, rtol=0)
    assert torch.equal(erase(images.clone(), params, value, inplace=True), out)
    # the device path's mask product gives the same pixels as the CPU's rectangle fills
    keep = erased_map(params, (128, 64), images.dtype, complement=True)
    assert torch.equal(images * keep + (1 - keep) * value, out)


def test_flip_rate_and_crop_offsets_are_uniform() -> None:
    n, pad = 42_000, 10
    params = draw_flip_crop(n, 0.3, pad, CPU, torch.Generator().manual_seed(3))
    assert abs(params.flip.float().mean().item() - 0.3) < 0.015  # 6.7 standard errors
    for shifts in (params.shift_y, params.shift_x):
        counts = torch.bincount(shifts + pad, minlength=2 * pad + 1)
        assert len(counts) == 2 * pad + 1 and shifts.min() == -pad and shifts.max() == pad
        # each of the 21 offsets has probability 1/21; 0.01 is about 7 standard errors
        assert (counts / n - 1 / (2 * pad + 1)).abs().max() < 0.01
    correlation = torch.corrcoef(torch.stack([params.shift_y, params.shift_x]).float())[0, 1]
    assert abs(correlation) < 0.03


def _torchvision_rectangles(size: tuple[int, int], draws: int) -> dict[str, np.ndarray]:
    """Rectangles drawn by torchvision's own RandomErasing (given that it erases)."""
    torch.manual_seed(4)
    transform = v2.RandomErasing(p=1.0, value=0)
    probe = [torch.empty(3, *size)]
    rows = [transform.make_params(probe) for _ in range(draws)]
    erased = [r for r in rows if r["v"] is not None]
    return {
        "height": np.array([r["h"] for r in erased]),
        "width": np.array([r["w"] for r in erased]),
        "top": np.array([r["i"] for r in erased]),
        "failed": np.array(len(rows) - len(erased)),
    }


@pytest.mark.parametrize("size", [(256, 128), (64, 32)])
def test_erasing_matches_torchvision_distribution(size: tuple[int, int]) -> None:
    n, height, width = 40_000, *size
    params = draw_erasing(n, size, 0.5, CPU, generator=torch.Generator().manual_seed(5))
    applied = params.apply
    assert abs(applied.float().mean().item() - 0.5) < 0.015  # 6 standard errors
    h, w = params.height[applied], params.width[applied]
    top, left = params.top[applied], params.left[applied]
    assert (h < height).all() and (w < width).all() and (h >= 1).all() and (w >= 1).all()
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    # rounded sides: the area fraction and aspect ratio stay within the ranges up to rounding
    area = (h * w).double() / (height * width)
    slack_area = (h + w + 1).double() / (height * width)
    assert (area >= ERASING_SCALE[0] - slack_area).all()
    assert (area <= ERASING_SCALE[1] + slack_area).all()
    aspect, hh, ww = h.double() / w, h.double() - 0.5, w.double() - 0.5
    assert (aspect >= ERASING_RATIO[0] * (1 - 0.5 / hh) / (1 + 0.5 / ww)).all()
    assert (aspect <= ERASING_RATIO[1] * (1 + 0.5 / hh) / (1 - 0.5 / ww)).all()
    # same distributions as torchvision (KS statistic; 0.05 is far beyond sampling noise)
    reference = _torchvision_rectangles(size, 4000)
    for name, ours in (("height", h), ("width", w), ("top", top)):
        assert ks_2samp(ours.numpy(), reference[name]).statistic < 0.05, name
    # top is uniform given the height: conditional mean is (height - h) / 2
    assert abs((top.double() - (height - h) / 2).mean().item()) < 0.02 * height


def test_erasing_random_value_and_untouched_rest() -> None:
    images = torch.zeros(64, 3, 64, 32) + 7.0
    params = draw_erasing(64, (64, 32), 1.0, CPU, generator=torch.Generator().manual_seed(6))
    out = erase(images, params, "random", torch.Generator().manual_seed(7))
    changed = out != 7.0
    assert torch.equal(changed.sum(dim=(1, 2, 3)), 3 * params.height * params.width * params.apply)
    noise = out[changed]
    assert abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1) < 0.05
    with pytest.raises(ValueError, match="number or 'random'"):
        erase(images, params, "mean")


def test_train_batch_is_seeded_and_channels_last(jpeg_paths: list[str]) -> None:
    cached = torch.stack([read_image(p, (128, 64)) for p in jpeg_paths])
    first = train_batch(cached, (256, 128), generator=torch.Generator().manual_seed(8))
    again = train_batch(cached, (256, 128), generator=torch.Generator().manual_seed(8))
    other = train_batch(cached, (256, 128), generator=torch.Generator().manual_seed(9))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (12, 3, 256, 128) and first.dtype == torch.float32
    layout = train_batch(cached, (256, 128), channels_last=True)
    assert layout.is_contiguous(memory_format=torch.channels_last)
    plain = train_batch(cached, (256, 128), flip=0, pad=0, erasing=0)
    assert torch.equal(plain, eval_batch(cached, (256, 128)))
    with pytest.raises(ValueError, match="uint8 batch"):
        train_batch(cached.float(), (256, 128))


def test_augmentation_never_reads_values_back_to_the_host() -> None:
    """On the meta device every value read (``.item()``, ``bool(tensor)``, ``.cpu()``) fails,
    so running there proves the step is free of host-device synchronisation."""
    images = torch.empty(8, 3, 128, 64, dtype=torch.uint8, device="meta")
    out = train_batch(images, (256, 128), erasing_value="random", channels_last=True)
    assert out.shape == (8, 3, 256, 128) and out.device.type == "meta"
    assert eval_batch(images, (64, 32)).shape == (8, 3, 64, 32)
    with pytest.raises(RuntimeError, match="meta"):
        out.sum().item()


@pytest.mark.gpu
def test_augmentation_runs_without_cuda_synchronisation() -> None:
    images = torch.randint(0, 256, (16, 3, 128, 64), dtype=torch.uint8, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = train_batch(images, (256, 128), erasing_value="random", channels_last=True)
        eval_batch(images, (256, 128))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.is_cuda and out.shape == (16, 3, 256, 128)


def test_augment_on_device_option(tmp_path: Path) -> None:
    tiny = dict(num_train_ids=6, num_test_ids=2, images_per_id=4, height=64, width=32, num_junk=2)
    dm = AttributeDataModule(
        SyntheticSource(tmp_path, **tiny),
        image_size=(32, 16),
        augment_on_device="auto",
        val_count=2,
    )
    assert dm.augment_on_device == torch.cuda.is_available() and dm.cache_size == (32, 16)
    with pytest.raises(ValueError, match="true, false or 'auto'"):
        AttributeDataModule(SyntheticSource(tmp_path, **tiny), augment_on_device="yes")
    fast = AttributeDataModule(
        SyntheticSource(tmp_path, **tiny),
        image_size=(32, 16),
        augment_on_device=True,
        cache_size=(64, 32),
        val_count=2,
    )
    fast.prepare_data()
    fast.setup("fit")
    item = fast.train_set[0]["image"]
    assert item.dtype == torch.uint8 and item.shape == (3, 64, 32)
    batch = next(iter(fast.image_loader(fast.val_frame["path"].tolist()[:3])))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (3, 3, 32, 16)


@pytest.mark.parametrize("sampler", ["random", "identity"])
def test_fast_path_fetches_whole_batches_like_per_sample_collation(
    tmp_path: Path, sampler: str
) -> None:
    """The fast path's loader indexes the cache once per batch (no per-image calls); its batches
    equal what per-sample fetching + the default collation gives for the same indices."""
    tiny = dict(num_train_ids=6, num_test_ids=2, images_per_id=4, height=64, width=32, num_junk=2)
    dm = AttributeDataModule(
        SyntheticSource(tmp_path, **tiny),
        image_size=(32, 16),
        batch_size=8,
        augment_on_device=True,
        val_count=2,
        sampler=sampler,
    )
    dm.prepare_data()
    dm.setup("fit")
    assert isinstance(dm.train_set, CachedBatchDataset)
    calls = []
    original = CachedBatchDataset.__getitem__
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CachedBatchDataset, "__getitem__", lambda self, i: calls.append(i))
        loaders = (dm.train_dataloader(), dm.val_dataloader())
        batches = [next(iter(loader)) for loader in loaders]
    assert calls == []
    for dataset, batch in zip((dm.train_set, dm.val_set), batches, strict=True):
        indices = batch["index"].tolist()
        expected = default_collate([original(dataset, i) for i in indices])
        assert batch.keys() == expected.keys()
        for key, value in expected.items():
            assert batch[key].dtype == value.dtype and torch.equal(batch[key], value), key


def test_each_ddp_rank_draws_its_own_augmentation(tmp_path: Path) -> None:
    """Every DDP rank is seeded alike; the datamodule offsets its stream by the rank."""
    draws = {}
    for rank in (0, 1, 0):
        torch.manual_seed(11)
        dm = AttributeDataModule(SyntheticSource(tmp_path), augment_on_device=True)
        dm.trainer = SimpleNamespace(global_rank=rank)
        draws.setdefault(rank, []).append(torch.rand(8, generator=dm._device_generator(CPU)))
    assert torch.equal(draws[0][0], draws[0][1]) and not torch.equal(draws[0][0], draws[1][0])
    # a new global seed (EpochSeed at an epoch start) restarts the stream from that seed
    torch.manual_seed(12)
    other = torch.rand(8, generator=dm._device_generator(CPU))
    assert torch.equal(other, torch.rand(8, generator=torch.Generator().manual_seed(12)))
    torch.manual_seed(11)
    assert torch.equal(torch.rand(8, generator=dm._device_generator(CPU)), draws[0][0])


class _Recorder(L.Callback):
    """Keeps the first training and validation batch as the model receives them."""

    def __init__(self) -> None:
        self.train: dict | None = None
        self.val: dict | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train = self.train or {k: v.clone() for k, v in batch.items()}

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, idx=0) -> None:
        self.val = self.val or {k: v.clone() for k, v in batch.items()}


def test_trainer_fit_with_augment_on_device(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        tmp_path,
        [*TINY_OVERRIDES, "data.augment_on_device=true", "model.net.channels_last=true"],
    )
    datamodule, model = build_data_and_model(cfg)
    assert datamodule.cache_size == (64, 32)  # the synthetic source's rendered size
    assert datamodule.train_set[0]["image"].dtype == torch.uint8
    recorder = _Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 3
    images = recorder.train["image"]
    assert images.dtype == torch.float32 and images.shape == (8, 3, 32, 16)
    assert images.is_contiguous(memory_format=torch.channels_last)
    # validation batches get the deterministic path: equal to the per-sample reference
    val = recorder.val["image"]
    paths = datamodule.val_frame["path"].tolist()[: len(val)]
    reference = torch.stack([eval_transform()(read_image(p, (32, 16))) for p in paths])
    assert (val - reference).abs().max() < 1e-5
