"""The one input pipeline: uint8 batches resized, augmented and normalised on the training device
equal an independent per-image reference (PIL + torchvision ops, computed here), follow
torchvision's distributions, never read a value back to the host, and reach the model through
a real Trainer exactly as prediction sees them."""

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

from attrnet.data.augment import (
    ERASING_RATIO,
    ERASING_SCALE,
    ErasingParams,
    FlipCropParams,
    draw_erasing,
    draw_flip_crop,
    erase,
    eval_batch,
    flip_crop,
    resize_batch,
    resize_float,
    train_batch,
)
from attrnet.data.dataset import AttributeImageDataset
from attrnet.data.images import read_image
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from attrnet.data.sources import SyntheticSource
from attrnet.inference.network import InferenceNetwork, model_info
from attrnet.training import build_data_and_model
from tests.helpers import (
    TINY_IMAGE_SIZE,
    TINY_OVERRIDES,
    compose_config,
    make_datamodule,
    reference_inputs,
)

CPU = torch.device("cpu")
DEVICES = [
    pytest.param("cpu"),
    pytest.param("cuda", marks=pytest.mark.gpu),
]
NORMALIZE = Normalize(IMAGENET_MEAN, IMAGENET_STD)  # on the CPU
#: One grey level after normalisation, in the channel with the smallest std (the worst case).
GREY_LEVEL = 1 / (255 * min(IMAGENET_STD))
#: Float rounding of the normalisation: ``x * scale - shift`` against ``(x / 255 - mean) / std``.
ROUNDING = 1e-5


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


def _normalize(device: str) -> Normalize:
    return Normalize(IMAGENET_MEAN, IMAGENET_STD).to(device)


def _stored(paths: list[str], device: str = "cpu") -> torch.Tensor:
    """The images as a dataset stores them: uint8 at the native 128x64."""
    return torch.stack([read_image(p, (128, 64)) for p in paths]).to(device)


@pytest.mark.parametrize(
    ("size", "exact"),
    [((256, 128), True), ((64, 32), True), ((128, 64), True), ((200, 100), False)],
)
def test_resize_equals_pil(jpeg_paths: list[str], size: tuple[int, int], exact: bool) -> None:
    """Both resize kernels (the CPU's uint8 one, the float passes other devices use) give PIL's
    pixels exactly for integer scale factors (Market's 128x64 -> 256x128); otherwise within
    two grey levels, on under 5% of the values."""
    stored = _stored(jpeg_paths)
    pil = torch.stack([read_image(path, size) for path in jpeg_paths]).int()
    for resized in (resize_batch(stored, size), resize_float(stored, size)):
        difference = (resized.int() - pil).abs()
        assert difference.max() <= (0 if exact else 2)
        assert (difference > 0).float().mean() < 0.05
    padded = resize_batch(stored, size, pad=3).int()
    resized = resize_batch(stored, size).int()
    assert torch.equal(padded[:, :, 3:-3, 3:-3], resized) and padded.sum() == resized.sum()


def test_normalize_equals_torchvision(jpeg_paths: list[str]) -> None:
    images = _stored(jpeg_paths)
    expected = torch.stack(
        [
            TF.normalize(TF.to_dtype(i, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
            for i in images
        ]
    )
    out = NORMALIZE(images)
    assert out.dtype == torch.float32 and (out - expected).abs().max() < ROUNDING
    layout = NORMALIZE(images, channels_last=True)
    assert layout.is_contiguous(memory_format=torch.channels_last) and torch.equal(layout, out)
    with pytest.raises(ValueError, match="expected uint8 RGB images"):
        NORMALIZE(out)
    with pytest.raises(ValueError, match="3 values"):
        Normalize([0.5], [0.5])


def _reference_train_batch(
    paths: list[str], size: tuple[int, int], flip: float, pad: int, erasing: float, seed: int
) -> tuple[torch.Tensor, FlipCropParams, ErasingParams | None]:
    """torchvision's per-image ops for the parameters ``train_batch`` draws from ``seed``:
    PIL resize, horizontal_flip, pad, crop, to_dtype + normalize, erase (value 0); with the
    parameters."""
    generator = torch.Generator().manual_seed(seed)
    crops = draw_flip_crop(len(paths), flip, pad, CPU, generator)
    rects = draw_erasing(len(paths), size, erasing, CPU, generator) if erasing > 0 else None
    out = []
    for index, path in enumerate(paths):
        image = read_image(path, size)
        if crops.flip[index]:
            image = TF.horizontal_flip(image)
        top, left = int(crops.shift_y[index]) + pad, int(crops.shift_x[index]) + pad
        image = TF.crop(TF.pad(image, [pad]), top, left, *size)
        image = TF.to_dtype(image, torch.float32, scale=True)
        image = TF.normalize(image, IMAGENET_MEAN, IMAGENET_STD)
        if rects is not None and rects.apply[index]:
            box = [int(getattr(rects, k)[index]) for k in ("top", "left", "height", "width")]
            image = TF.erase(image, *box, torch.tensor(0.0))
        out.append(image)
    return torch.stack(out), crops, rects


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("size", "flip", "pad", "erasing"),
    [((256, 128), 0.5, 10, 0.5), ((64, 32), 0.5, 6, 0.0), ((128, 64), 0.5, 0, 0.9)],
)
def test_train_batch_equals_torchvision_per_image(
    jpeg_paths: list[str], device: str, size: tuple[int, int], flip: float, pad: int, erasing: float
) -> None:
    """Every pixel of a training batch, for the parameters it drew (a generator on the CPU;
    on CUDA the same parameters are drawn on the CPU here and applied on the device)."""
    expected, crops, rects = _reference_train_batch(jpeg_paths, size, flip, pad, erasing, 1)
    assert crops.flip.any() and not crops.flip.all() and (rects is None or rects.apply.any())
    generator = torch.Generator().manual_seed(1)
    if device == "cpu":
        stored = _stored(jpeg_paths)
        out = train_batch(stored, size, NORMALIZE, flip, pad, erasing, generator=generator)
    else:  # the device's generator draws other values: apply the reference's draws there
        on_device = FlipCropParams(
            crops.flip.cuda(), crops.shift_y.cuda(), crops.shift_x.cuda(), pad
        )
        padded = resize_batch(_stored(jpeg_paths, device), size, pad)
        out = _normalize(device)(flip_crop(padded, on_device))
        if rects is not None:
            out = erase(out, ErasingParams(*(v.cuda() for v in vars(rects).values())))
        out = out.cpu()
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert (out - expected).abs().max() < ROUNDING


@pytest.mark.parametrize("device", DEVICES)
def test_eval_batch_is_the_prediction_input(jpeg_paths: list[str], device: str) -> None:
    """Validation's input (stored 128x64, resized on the device) is what prediction feeds the
    network (decoded at the input size, normalised by the inference graph's Normalize)."""
    out = eval_batch(_stored(jpeg_paths, device), (256, 128), _normalize(device)).cpu()
    decoded = torch.stack([read_image(p, (256, 128)) for p in jpeg_paths])
    assert torch.equal(out, NORMALIZE(decoded))
    assert (out - reference_inputs(jpeg_paths, (256, 128))).abs().max() < ROUNDING


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


def test_train_batch_is_seeded_and_channels_last(jpeg_paths: list[str]) -> None:
    stored = _stored(jpeg_paths)
    market = dict(flip=0.5, pad=10, erasing=0.5)

    def run(seed: int, **options: object) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return train_batch(stored, (256, 128), NORMALIZE, **market, generator=generator, **options)

    first, again, other = run(8), run(8), run(9)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (12, 3, 256, 128) and first.dtype == torch.float32
    layout = run(8, channels_last=True)
    assert layout.is_contiguous(memory_format=torch.channels_last) and torch.equal(layout, first)
    plain = train_batch(stored, (256, 128), NORMALIZE, flip=0, pad=0, erasing=0)
    assert torch.equal(plain, eval_batch(stored, (256, 128), NORMALIZE))
    with pytest.raises(ValueError, match="uint8 batch"):
        train_batch(stored.float(), (256, 128), NORMALIZE, **market)


def test_augmentation_never_reads_values_back_to_the_host() -> None:
    """On the meta device every value read (``.item()``, ``bool(tensor)``, ``.cpu()``) fails,
    so running there proves the step is free of host-device synchronisation."""
    images = torch.empty(8, 3, 128, 64, dtype=torch.uint8, device="meta")
    normalize = _normalize("meta")
    out = train_batch(images, (256, 128), normalize, 0.5, 10, 0.5, channels_last=True)
    assert out.shape == (8, 3, 256, 128) and out.device.type == "meta"
    assert eval_batch(images, (64, 32), normalize).shape == (8, 3, 64, 32)
    with pytest.raises(RuntimeError, match="meta"):
        out.sum().item()


@pytest.mark.gpu
def test_augmentation_runs_without_cuda_synchronisation() -> None:
    images = torch.randint(0, 256, (16, 3, 128, 64), dtype=torch.uint8, device="cuda")
    normalize = _normalize("cuda")
    generator = torch.Generator("cuda").manual_seed(0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = train_batch(images, (256, 128), normalize, 0.5, 10, 0.5, True, generator)
        eval_batch(images, (256, 128), normalize)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.is_cuda and out.shape == (16, 3, 256, 128)


@pytest.mark.parametrize("cache_images", [True, False])
@pytest.mark.parametrize("sampler", ["random", "identity"])
def test_loaders_fetch_whole_uint8_batches(
    tmp_path: Path, cache_images: bool, sampler: str
) -> None:
    """Datasets yield uint8 at the stored size, a batch per fetch (no per-image call and
    collation), equal to per-image fetching + the default collation; ``image_loader`` yields
    uint8 at the input size."""
    tiny = dict(num_train_ids=6, num_test_ids=2, images_per_id=4, height=64, width=32, num_junk=2)
    dm = make_datamodule(
        SyntheticSource(tmp_path, **tiny),
        image_size=(32, 16),
        stored_size=(64, 32),
        batch_size=8,
        cache_images=cache_images,
        val_count=2,
        sampler=sampler,
    )
    dm.prepare_data()
    dm.setup("fit")
    assert (dm.train_set.images is not None) == cache_images
    calls = []
    original = AttributeImageDataset.__getitem__
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AttributeImageDataset, "__getitem__", lambda self, i: calls.append(i))
        loaders = (dm.train_dataloader(), dm.val_dataloader())
        batches = [next(iter(loader)) for loader in loaders]
    assert calls == []
    for dataset, batch in zip((dm.train_set, dm.val_set), batches, strict=True):
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (3, 64, 32)
        expected = default_collate([original(dataset, i) for i in batch["index"].tolist()])
        assert batch.keys() == expected.keys()
        for key, value in expected.items():
            assert batch[key].dtype == value.dtype and torch.equal(batch[key], value), key
    batch = next(iter(dm.image_loader(dm.val_frame["path"].tolist()[:3])))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (3, 3, 32, 16)


def test_each_ddp_rank_draws_its_own_augmentation(tmp_path: Path) -> None:
    """Every DDP rank is seeded alike; the datamodule offsets its stream by the rank."""
    draws = {}
    for rank in (0, 1, 0):
        torch.manual_seed(11)
        dm = make_datamodule(SyntheticSource(tmp_path))
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


def test_trainer_fit_feeds_the_model_what_prediction_feeds_it(tmp_path: Path) -> None:
    """A real fit on the CPU: training batches are augmented float32 in the model's layout;
    validation batches equal the prediction path's input for the same images, bit for bit."""
    cfg = compose_config("train", tmp_path, [*TINY_OVERRIDES, "model.net.channels_last=true"])
    datamodule, model = build_data_and_model(cfg)
    assert datamodule.stored_size == (64, 32)  # the synthetic source's rendered size
    assert datamodule.train_set[0]["image"].dtype == torch.uint8
    recorder = _Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,  # one epoch: validation runs
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(model, datamodule=datamodule)
    images = recorder.train["image"]
    assert images.dtype == torch.float32 and images.shape == (8, 3, *TINY_IMAGE_SIZE)
    assert images.is_contiguous(memory_format=torch.channels_last)
    val = recorder.val["image"]
    paths = [datamodule.val_frame["path"][i] for i in recorder.val["index"].tolist()]
    loader = datamodule.image_loader(paths)
    predicted = torch.cat([batch["image"] for batch in loader])
    network = InferenceNetwork(model, model_info(model), ["embedding"])
    assert torch.equal(val, network.normalize(predicted))
    assert (val - reference_inputs(paths, TINY_IMAGE_SIZE)).abs().max() < ROUNDING
