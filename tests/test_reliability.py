"""Reliability: kill and resume, atomic checkpoints, safe loading, corrupt and hostile images, NaN.

The kill tests run the real console script in subprocesses and SIGKILL it mid-epoch; the fault
callbacks come from ``tests/faults.py`` through Hydra overrides.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image, ImageFile

from attrnet.callbacks import NonFiniteLossError, NonFiniteLossGuard, _PendingCheck
from attrnet.checkpoints import AtomicCheckpointIO, CheckpointError, load_checkpoint
from attrnet.cli.predict import predict
from attrnet.data.dataset import AttributeImageDataset
from attrnet.data.errors import DataError
from attrnet.data.images import read_image
from attrnet.data.samplers import EpochShuffleSampler
from attrnet.models.loading import load_attribute_module
from attrnet.retrieval.from_config import evaluate
from attrnet.training import train
from tests.faults import PoisonBatch
from tests.helpers import TINY_OVERRIDES, compose_config, make_module

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = Path(sys.executable).parent / "attrnet-train"
#: 2 AdamW + 2 SGD epochs of 3 batches each, deterministic, on CPU
RESUME_OVERRIDES = [
    *(o for o in TINY_OVERRIDES if not o.startswith("optimizer.")),
    "optimizer.first_epochs=2",
    "optimizer.second_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
]


def _env(cache: Path) -> dict[str, str]:
    """The subprocess environment: its own synthetic cache, ``tests.faults`` importable."""
    return {
        **os.environ,
        "ATTRNET_CACHE": str(cache),
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _train_command(run: Path, *overrides: str) -> list[str]:
    return [str(TRAIN_SCRIPT), *RESUME_OVERRIDES, f"hydra.run.dir={run}", *overrides]


def _kill_at(epoch: int) -> list[str]:
    return ["+callbacks.kill._target_=tests.faults.KillAt", f"+callbacks.kill.epoch={epoch}"]


def _run(command: list[str], cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=_env(cache), capture_output=True, text=True, timeout=300
    )


def _last(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """A (killed in AdamW epoch 1) -> B resumes, killed in SGD epoch 3 -> C resumes, finishes."""
    cache = Path(os.environ["ATTRNET_CACHE"])
    instantiate(compose_config("train", tmp_path, RESUME_OVERRIDES).data).prepare_data()
    full, killed, again, resumed = (tmp_path / name for name in ("U", "A", "B", "C"))
    # the uninterrupted run goes alongside (two cores)
    log = tmp_path / "uninterrupted.log"
    with log.open("w") as output:
        uninterrupted = subprocess.Popen(
            _train_command(full), cwd=tmp_path, env=_env(cache), stdout=output, stderr=output
        )
    try:
        first = _run(_train_command(killed, *_kill_at(1)), cache, tmp_path)
        assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
        assert not (killed / "metrics.json").exists()
        assert (_last(killed)["epoch"], _last(killed)["optimizer_phase"]) == (0, 0)  # AdamW

        last = killed / "checkpoints" / "last.ckpt"
        second = _run(_train_command(again, f"ckpt_path={last}", *_kill_at(3)), cache, tmp_path)
        assert second.returncode == -signal.SIGKILL, second.stderr[-3000:]
        assert (_last(again)["epoch"], _last(again)["optimizer_phase"]) == (2, 1)  # SGD

        last = again / "checkpoints" / "last.ckpt"
        third = _run(_train_command(resumed, f"ckpt_path={last}"), cache, tmp_path)
        assert third.returncode == 0, third.stderr[-3000:]
        assert uninterrupted.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        uninterrupted.kill()

    expected = json.loads((full / "metrics.json").read_text())
    got = json.loads((resumed / "metrics.json").read_text())
    assert got["metrics"] == expected["metrics"] and got["summary"] == expected["summary"]
    assert Path(got["checkpoint"]).name == Path(expected["checkpoint"]).name
    want, have = _last(full), _last(resumed)
    assert (have["epoch"], have["global_step"]) == (want["epoch"], want["global_step"]) == (3, 12)
    for name, tensor in want["state_dict"].items():
        assert torch.equal(have["state_dict"][name], tensor), name
    sgd_want, sgd_have = want["optimizer_states"][0]["state"], have["optimizer_states"][0]["state"]
    for index, state in sgd_want.items():
        assert torch.equal(sgd_have[index]["momentum_buffer"], state["momentum_buffer"]), index


def test_epoch_shuffle_sampler_depends_on_seed_and_epoch_only() -> None:
    sampler = EpochShuffleSampler(50, seed=3)
    sampler.set_epoch(4)
    torch.manual_seed(0)
    order = list(sampler)
    torch.manual_seed(1)
    assert list(EpochShuffleSampler(50, seed=3, epoch=4)) == order == list(sampler)
    assert sorted(order) == list(range(50))
    sampler.set_epoch(5)
    assert list(sampler) != order and list(EpochShuffleSampler(50, seed=4, epoch=4)) != order


# ---------------------------------------------------------------------------- atomic checkpoints


def _die_halfway_through_a_save(target: Path) -> None:
    """In a forked process: write half of a checkpoint, then exit as if killed."""
    real_save = torch.save

    def dying_save(obj: object, handle, *args, **kwargs) -> None:
        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[: buffer.tell() // 2])
        handle.flush()
        os._exit(3)

    torch.save = dying_save
    AtomicCheckpointIO().save_checkpoint({"step": 2, "weights": torch.zeros(100_000)}, target)


def test_a_kill_during_a_checkpoint_save_keeps_the_previous_file(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    target = folder / "last.ckpt"
    writer = AtomicCheckpointIO()
    writer.save_checkpoint({"step": 1, "weights": torch.ones(100_000)}, target)
    before = target.read_bytes()

    # spawn, not fork: a fork of a process whose OpenMP threads are busy can deadlock in torch
    process = multiprocessing.get_context("spawn").Process(
        target=_die_halfway_through_a_save, args=(target,)
    )
    process.start()
    process.join(timeout=120)
    if process.exitcode is None:
        process.kill()
    assert process.exitcode == 3
    assert target.read_bytes() == before
    assert load_checkpoint(target)["step"] == 1
    litter = [p for p in folder.iterdir() if p != target]
    assert len(litter) == 1 and litter[0].name.startswith(".last.ckpt.")  # the partial write
    assert 0 < litter[0].stat().st_size < len(before)
    assert [p.name for p in folder.glob("*.ckpt")] == ["last.ckpt"]  # never taken for one

    writer.save_checkpoint({"step": 3, "weights": torch.ones(10)}, target)
    assert [p.name for p in folder.iterdir()] == ["last.ckpt"]  # the stale partial is gone
    assert load_checkpoint(target)["step"] == 3


def test_trainer_presets_write_checkpoints_atomically(tmp_path: Path) -> None:
    for preset in ("default", "cpu", "gpu", "gpu_4gb", "ddp"):
        cfg = compose_config("train", tmp_path, [f"trainer={preset}"])
        plugins = instantiate(cfg.trainer.plugins)
        assert [type(p) for p in plugins] == [AtomicCheckpointIO], preset


# ----------------------------------------------------------------------- safe checkpoint loading


class Payload:
    """Pickles as a call that creates ``marker``: what a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def _module_checkpoint(path: Path, **extra: object) -> Path:
    """A checkpoint of a real AttributeModule as Lightning lays it out, plus ``extra`` entries."""
    module = make_module(["hat", "bag"])
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": L.__version__,
        **extra,
    }
    torch.save(checkpoint, path)
    return path


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    good = _module_checkpoint(tmp_path / "good.ckpt")
    assert set(load_checkpoint(good)) >= {"state_dict", "hyper_parameters"}
    assert load_attribute_module(good).attribute_names == ["hat", "bag"]
    with pytest.raises(CheckpointError, match="missing.ckpt: checkpoint file does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
    data = good.read_bytes()
    for name, content in {
        "truncated.ckpt": data[: len(data) // 2],
        "empty.ckpt": b"",
        "noise.ckpt": np.random.default_rng(0).bytes(5000),
    }.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=f"{name}: truncated or corrupt checkpoint"):
            load_checkpoint(tmp_path / name)


def test_a_checkpoint_carrying_code_is_refused_everywhere(tmp_path: Path) -> None:
    control = tmp_path / "control-marker"
    torch.load(_module_checkpoint(tmp_path / "c.ckpt", extra=Payload(control)), weights_only=False)
    assert control.exists()  # the payload is live: unpickling it without the guard runs it

    marker = tmp_path / "marker"
    hostile = _module_checkpoint(tmp_path / "hostile.ckpt", extra=Payload(marker))
    refused = (
        r"hostile.ckpt: the checkpoint contains non-weight objects \(.*open.*\); attrnet loads "
        r"checkpoints with weights_only=True and refuses to execute code from checkpoints"
    )
    with pytest.raises(CheckpointError, match=refused):
        load_attribute_module(hostile)
    with pytest.raises(CheckpointError, match=refused):
        predict(compose_config("predict", tmp_path, [f"ckpt_path={hostile}", "images_dir=."]))
    with pytest.raises(CheckpointError, match=refused):
        evaluate(compose_config("reid", tmp_path, [f"ckpt_path={hostile}"]))
    with pytest.raises(CheckpointError, match=refused):  # resume
        train(compose_config("train", tmp_path, [*TINY_OVERRIDES, f"ckpt_path={hostile}"]))
    assert not marker.exists()


# ---------------------------------------------------------------------------------- NaN guard


def _digests(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.glob("*.ckpt"))
    }


class SnapshotCheckpoints(L.Callback):
    """Records the checkpoint files (digest, mtime) when epoch ``epoch`` starts."""

    files: dict[str, tuple[str, int]] = {}

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            SnapshotCheckpoints.files = _digests(Path(trainer.checkpoint_callback.dirpath))


def _train_until_stopped_at_poison(
    tmp_path: Path, match: str, *overrides: str
) -> L.LightningModule:
    """Train the tiny CPU run with a NaN batch (``tests.faults.PoisonBatch``), expect the guard's
    error (``match``) and check that the poisoned step left the weights as they were; returns
    the module."""
    PoisonBatch.seen.clear()
    config_overrides = [
        *TINY_OVERRIDES,
        "trainer.accelerator=cpu",
        "+callbacks.poison._target_=tests.faults.PoisonBatch",
        *overrides,
    ]
    with pytest.raises(NonFiniteLossError, match=match):
        train(compose_config("train", tmp_path, config_overrides))
    module, weights = PoisonBatch.seen[-1]
    for name, tensor in module.named_parameters():  # the bad step did not update the weights
        assert torch.equal(tensor, weights[name]) and bool(torch.isfinite(tensor).all()), name
    return module


@pytest.mark.parametrize("deferred", [False, True])
def test_a_nan_loss_stops_the_run_before_it_touches_weights_or_checkpoints(
    tmp_path: Path, deferred: bool
) -> None:
    """Immediate check (CPU default), and the GPU default forced on the CPU: the flag stays a
    tensor, the fused optimizer skips the bad step itself and the run stops at the next step."""
    module = _train_until_stopped_at_poison(
        tmp_path,
        r"global step 4, epoch 1, batch 1\b",
        f"callbacks.nonfinite_loss.deferred={str(deferred).lower()}",
        "+callbacks.poison.epoch=1",
        "+callbacks.snapshot._target_=tests.test_reliability.SnapshotCheckpoints",
        "+callbacks.snapshot.epoch=1",
    )
    skipped = getattr(module.trainer.optimizers[0], "found_inf", None)
    assert (skipped is not None and float(skipped) == 1.0) is deferred  # the device-side skip
    folder = tmp_path / "checkpoints"
    assert SnapshotCheckpoints.files and _digests(folder) == SnapshotCheckpoints.files
    last = load_checkpoint(folder / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (0, 3)
    assert all(bool(torch.isfinite(t).all()) for t in last["state_dict"].values())
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.gpu
def test_a_nan_loss_on_cuda_is_skipped_on_the_device_and_stops_the_run(tmp_path: Path) -> None:
    """The CUDA default (deferred, bf16): the fused step skips the bad step with its device flag;
    with ``max_lag=0`` the run stops at the next step, before any later step or checkpoint."""
    _train_until_stopped_at_poison(
        tmp_path,
        r"global step 4, epoch 1, batch 1\b",
        "trainer.accelerator=gpu",
        "trainer.precision=bf16-mixed",
        "callbacks.nonfinite_loss.max_lag=0",
        "+callbacks.poison.epoch=1",
    )
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (0, 3)


def test_deferred_guard_with_gradient_accumulation(tmp_path: Path) -> None:
    """A bad first micro-batch of an accumulation window never reaches the weights."""
    _train_until_stopped_at_poison(
        tmp_path,
        r"epoch 1, batch 0\b",
        "callbacks.nonfinite_loss.deferred=true",
        "trainer.accumulate_grad_batches=2",
        "+callbacks.poison.epoch=1",
        "+callbacks.poison.batch=0",
    )


def test_deferred_guard_skips_the_step_of_a_window_with_any_bad_micro_batch() -> None:
    """The fused step is skipped when an earlier micro-batch of its window was bad, even if
    the last one was fine; the error follows at the next check."""
    guard = NonFiniteLossGuard(deferred=True)
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=0.1, fused=True)
    trainer = SimpleNamespace(
        global_step=7,
        current_epoch=2,
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_idx=5)),
        strategy=SimpleNamespace(reduce=lambda tensor, reduce_op: tensor),
        optimizers=[optimizer],
    )
    guard.on_before_backward(trainer, None, torch.tensor(float("nan")))
    guard.on_before_backward(trainer, None, torch.tensor(1.0))
    param.grad = torch.full((3,), float("nan"))
    guard.on_before_optimizer_step(trainer, None, optimizer)
    optimizer.step()
    assert torch.equal(param.detach(), torch.ones(3))
    assert int(optimizer.state[param]["step"]) == 0
    with pytest.raises(NonFiniteLossError, match=r"global step 7, epoch 2, batch 5\b"):
        guard.on_train_batch_start(trainer, None, {}, 6)


class _InFlight:
    """A CUDA event stand-in: its copy lands when the test says so; waiting lands it."""

    def __init__(self) -> None:
        self.landed = False

    def query(self) -> bool:
        return self.landed

    def synchronize(self) -> None:
        self.landed = True


def test_deferred_guard_reads_flags_without_waiting_up_to_max_lag() -> None:
    """On CUDA a step's flag is read once its copy has landed, waited for only when more than
    ``max_lag`` steps are in flight, and all of them before validation or a checkpoint."""
    guard = NonFiniteLossGuard(deferred=True, max_lag=2)
    events = [_InFlight() for _ in range(4)]

    def check(step: int, flag: float) -> _PendingCheck:
        return _PendingCheck(torch.tensor(flag), events[step], torch.tensor(0.0), (step, 0, step))

    guard._pending = [check(0, 0.0), check(1, 0.0), check(2, 0.0)]
    guard.on_train_batch_start(None, None, {}, 3)  # three in flight: waits for the oldest only
    assert [e.landed for e in events[:3]] == [True, False, False]
    assert len(guard._pending) == 2
    events[1].landed = True  # its copy landed meanwhile: read without waiting
    guard.on_train_batch_start(None, None, {}, 4)
    assert len(guard._pending) == 1 and not events[2].landed
    guard._pending.append(check(3, 1.0))  # a bad step, still in flight
    guard.on_train_batch_start(None, None, {}, 5)
    assert len(guard._pending) == 2  # nothing waited for yet
    with pytest.raises(NonFiniteLossError, match=r"global step 3, epoch 0, batch 3\b"):
        guard.on_validation_start(None, None)  # validation waits for every step
    assert guard._pending == []


# ------------------------------------------------------------------------------ corrupt images


@pytest.fixture(scope="module")
def corrupt_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A private copy of the tiny synthetic set with five training JPEGs truncated."""
    cache = tmp_path_factory.mktemp("corrupt-cache")
    cfg = compose_config(
        "train",
        tmp_path_factory.mktemp("corrupt-run"),
        [*TINY_OVERRIDES, f"paths.cache_dir={cache}", "data.cache_images=false"],
    )
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    bad = sorted(datamodule.train_frame["path"])[:5]
    for path in bad:
        Path(path).write_bytes(Path(path).read_bytes()[:300])
    return cache, bad


def _datamodule(cache: Path, *overrides: str):
    cfg = compose_config(
        "train", cache.parent, [*TINY_OVERRIDES, f"paths.cache_dir={cache}", *overrides]
    )
    return instantiate(cfg.data)


@pytest.mark.parametrize("cache_images", [True, False])
def test_bad_images_are_skipped_and_counted_at_setup(
    corrupt_set: tuple[Path, list[str]], cache_images: bool
) -> None:
    cache, bad = corrupt_set
    datamodule = _datamodule(
        cache, "data.skip_bad_images=true", f"data.cache_images={cache_images}"
    )
    names = ", ".join(Path(p).name for p in bad)
    with pytest.warns(UserWarning, match=f"skipped 5 unreadable image\\(s\\) of 40: {names} "):
        datamodule.setup("fit")
    assert datamodule.skipped_images == bad
    assert len(datamodule.train_frame) == 28 - 5 and not set(bad) & set(datamodule.train_frame.path)
    batch = next(iter(datamodule.train_dataloader()))
    assert bool(torch.isfinite(batch["image"]).all())


def test_a_bad_image_without_skipping_is_named(corrupt_set: tuple[Path, list[str]]) -> None:
    cache, bad = corrupt_set
    names = "|".join(re.escape(Path(p).name) for p in bad)
    with pytest.raises(DataError, match=f"({names}): unreadable or truncated image"):
        _datamodule(cache, "data.cache_images=true").setup("fit")


def test_dataloader_workers_surface_a_bad_image_instead_of_hanging(
    corrupt_set: tuple[Path, list[str]], tmp_path: Path
) -> None:
    cache, bad = corrupt_set
    command = _train_command(tmp_path / "run", "data.num_workers=2", "data.cache_images=false")
    try:
        done = _run(command, cache, tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("training with 2 DataLoader workers hung on a corrupt JPEG")
    assert done.returncode == 1
    assert "DataLoader worker" in done.stderr
    assert any(f"{Path(p).name}: unreadable or truncated image" in done.stderr for p in bad)


# --------------------------------------------------------------------------- decompression bombs


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _gray_png(path: Path, width: int, height: int) -> Path:
    """A valid all-black 8-bit grayscale PNG: tiny on disk, ``width x height`` once decoded."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + width)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )
    return path


def test_decompression_bombs_are_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = _gray_png(tmp_path / "bomb.png", 8000, 7000)  # 56 MP
    assert bomb.stat().st_size < 200_000
    with Image.open(bomb) as image:
        assert image.size == (8000, 7000)
    small = _gray_png(tmp_path / "small.png", 64, 32)

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"{self.size} image decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(
        DataError,
        match=r"bomb.png: declared image size 8000x7000 \(56000000 pixels\) exceeds the limit of "
        r"50000000 pixels \(data.max_image_pixels\)",
    ):
        read_image(bomb, (32, 16))
    dataset = AttributeImageDataset([str(small)], None, (32, 16), max_pixels=1000)
    with pytest.raises(DataError, match=r"small.png: .*2048 pixels\) exceeds the limit of 1000"):
        dataset[0]
    monkeypatch.undo()
    assert read_image(small, (32, 16)).shape == (3, 32, 16)

    cfg = compose_config("train", tmp_path, ["data.max_image_pixels=1000"])
    datamodule = instantiate(cfg.data)
    with pytest.raises(DataError, match="small.png: .*exceeds the limit of 1000 pixels"):
        next(iter(datamodule.image_loader([str(small)])))
