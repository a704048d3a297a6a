"""DDP on two CPU processes (gloo): the same validation metrics and re-ID features as one process.

``attrnet-train trainer=ddp`` runs as a user starts it (Lightning relaunches the command line for
rank 1); features come from ``trainer.predict`` on a 2-process DDP Trainer, gathered on every
rank; the validation re-ID metric's states are concatenated across ranks by torchmetrics. The
validation set has an odd number of images (3 identities x 5), so a padding sampler would score
one image twice; equality to the single-process numbers shows it does not.
Tolerance: 1e-6 for the attribute metrics (exact integer counts stored as float32) and 1e-5 for
features and re-ID scores (the ranks batch other images together, which may move the last bits).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from attrnet.evaluation import evaluate_attributes
from attrnet.inference.predict import prediction_trainer, run_module
from attrnet.models.loading import load_attribute_module
from attrnet.retrieval.from_config import evaluate, reid_inputs
from attrnet.retrieval.pipeline import ReidRun
from attrnet.retrieval.study_metric import StudyReidMetric
from attrnet.training import train
from tests.helpers import TINY_OVERRIDES, compose_config

OVERRIDES = [
    *(o for o in TINY_OVERRIDES if not o.startswith("data.source.images_per_id")),
    "data.source.images_per_id=5",
    "optimizer=adamw",
    "optimizer.epochs=1",
]
REID = ["reid=default", "reid.mode=val", "reid.distances=[euclidean,weighted]"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``trainer=ddp`` run (2 CPU processes) with the re-ID step, started as a user would."""
    base = tmp_path_factory.mktemp("ddp")
    run = base / "run"
    command = [
        sys.executable,
        "-m",
        "attrnet.cli.train",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        *OVERRIDES,
        *REID,
        f"hydra.run.dir={run}",
        f"paths.log_dir={base / 'logs'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=base, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr
    # one log, written by rank 0 only: rank 1 (relaunched by Lightning) repeats none of it
    log = (run / "train.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "Final metrics" in log
    assert "GLOBAL_RANK: 1" not in log + result.stdout + result.stderr
    assert log.count("Seed set to") == 1 and sorted(p.name for p in run.glob("*.log")) == [
        "train.log"
    ]
    return run


def _single_process_config(ddp_run: Path, output_dir: Path) -> DictConfig:
    """The same data and split as the DDP run, composed for one process."""
    return compose_config(
        "train",
        output_dir,
        [*OVERRIDES, *REID, "trainer.accelerator=cpu", f"data.split_file={ddp_run / 'split.json'}"],
    )


def _reid_config(checkpoint: str, output_dir: Path) -> DictConfig:
    """``attrnet-reid`` on the DDP run's checkpoint: the same data, split (the run folder's
    split.json) and re-ID options as its re-ID step, on one CPU process."""
    data = [o for o in OVERRIDES if o.startswith("data.")]
    options = [o.removeprefix("reid.") for o in REID if o.startswith("reid.")]
    overrides = [*data, *options, f"ckpt_path={checkpoint}", "device=cpu"]
    return compose_config("reid", output_dir, overrides)


def test_validation_metrics_equal_single_process(ddp_run: Path, tmp_path: Path) -> None:
    saved = json.loads((ddp_run / "metrics.json").read_text())
    cfg = _single_process_config(ddp_run, tmp_path)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("validate")
    assert len(datamodule.val_set) % 2 == 1  # a padding sampler would repeat one image
    module = load_attribute_module(saved["checkpoint"])
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_epochs=1
    )
    trainer.validate(module, datamodule=datamodule, verbose=False)
    single = dict(module.last_val_metrics)
    assert set(single) == set(saved["metrics"])
    # the mean loss sums float logits computed in other batch shapes; the metrics are counts
    assert single.pop("loss") == pytest.approx(saved["metrics"].pop("loss"), rel=1e-3)
    differences = {k: abs(single[k] - saved["metrics"][k]) for k in single}
    assert max(differences.values()) <= 1e-6, sorted(differences.items(), key=lambda kv: -kv[1])[:5]


def test_reid_step_equals_single_process(ddp_run: Path, tmp_path: Path) -> None:
    ddp = json.loads((ddp_run / "reid_metrics.json").read_text())
    assert list(ddp["results"]) == ["euclidean", "weighted"]
    checkpoint = json.loads((ddp_run / "metrics.json").read_text())["checkpoint"]
    single = evaluate(_reid_config(checkpoint, tmp_path))
    for distance, row in single.items():
        for name, value in row.items():
            assert ddp["results"][distance][name] == pytest.approx(value, abs=1e-5), name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _external_rank(rank: int, world_size: int, port: int) -> L.Trainer:
    """This process as rank ``rank`` of a job started from outside (as torchrun or SLURM would
    start it), and a DDP prediction Trainer over the ranks."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        LOCAL_RANK=str(rank),
        NODE_RANK="0",
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    return prediction_trainer("cpu", world_size)


def _one_image_worker(rank: int, world_size: int, port: int, checkpoint: str, out: str) -> None:
    """One rank of a prediction over a single image: every rank refuses it alike (none waits
    in a collective for a rank that failed)."""
    trainer = _external_rank(rank, world_size, port)
    try:
        module = load_attribute_module(checkpoint)
        images = torch.zeros((1, 3, *module.spec.image_size), dtype=torch.uint8)
        try:
            run_module(module, images, trainer=trainer)
        except ValueError as error:
            (Path(out) / f"one_{rank}.txt").write_text(str(error))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_fewer_images_than_ranks_are_refused_on_every_rank(ddp_run: Path, tmp_path: Path) -> None:
    checkpoint = json.loads((ddp_run / "metrics.json").read_text())["checkpoint"]
    args = (2, _free_port(), checkpoint, str(tmp_path))
    mp.spawn(_one_image_worker, args=args, nprocs=2, join=True)
    for rank in range(2):
        assert (tmp_path / f"one_{rank}.txt").read_text().startswith("1 images for 2 processes")


def _features_worker(rank: int, world_size: int, port: int, config: str, out: str) -> None:
    """One rank of an externally started 2-process job (as torchrun or SLURM would start it):
    embed the validation images through ``ReidRun.features`` on a DDP prediction Trainer, and
    score them as the test split is scored (``evaluate_attributes``)."""
    trainer = _external_rank(rank, world_size, port)
    try:
        run = ReidRun(*reid_inputs(OmegaConf.create(config)), trainer)
        features = run.features(run.datamodule.val_frame)
        share = len(trainer.predict_dataloaders.batch_sampler.sampler)  # this rank's images
        scores = evaluate_attributes(run.module, run.datamodule, run.datamodule.val_frame, trainer)
        saved = (features, trainer.world_size, share, scores)
        torch.save(saved, Path(out) / f"features_{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_features_and_scores_are_gathered_across_ranks(ddp_run: Path, tmp_path: Path) -> None:
    checkpoint = json.loads((ddp_run / "metrics.json").read_text())["checkpoint"]
    cfg = _reid_config(checkpoint, tmp_path)
    run = ReidRun(*reid_inputs(cfg), prediction_trainer("cpu"))
    single = run.features(run.datamodule.val_frame)
    single_scores = evaluate_attributes(run.module, run.datamodule, run.datamodule.val_frame)
    mp.spawn(
        _features_worker,
        args=(2, _free_port(), OmegaConf.to_yaml(cfg), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    shares = []
    for rank in range(2):  # every rank embedded its share and holds all 15 rows, in dataset order
        gathered, world_size, share, scores = torch.load(tmp_path / f"features_{rank}.pt")
        assert world_size == 2
        shares.append(share)
        assert gathered.shape == single.shape == (15, len(run.module.attribute_names))
        torch.testing.assert_close(gathered, single, atol=1e-5, rtol=1e-5)
        assert scores.keys() == single_scores.keys()  # every rank scores all 15 images
        assert max(abs(scores[k] - single_scores[k]) for k in scores) <= 1e-6
    assert sorted(shares) == [7, 8]


def test_local_ddp_multirun_is_refused(tmp_path: Path) -> None:
    """Lightning would relaunch ``attrnet-train -m ...`` per device: the sweep, not the job."""
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "hydra.mode=MULTIRUN"]
    with initialize_config_module("attrnet.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*TINY_OVERRIDES, *ddp], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.update(root_dir=str(tmp_path), output_dir=str(tmp_path), log_dir=str(tmp_path))
    HydraConfig.instance().set_config(cfg)  # as inside a job of a running multirun
    try:
        with pytest.raises(ValueError, match="hydra/launcher=slurm"):
            train(cfg)
    finally:
        HydraConfig.instance().cfg = None


def _metric_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One rank: half of the rows (rank 1 also repeats one of rank 0's) into the re-ID metric."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        features, identities, indices = _metric_rows()
        mine = indices % world_size == rank
        if rank == 1:
            mine[0] = True  # a padding sampler's repeat: must be counted once
        metric = StudyReidMetric()
        metric.update(features[mine], identities[mine], indices[mine])
        torch.save(metric.compute(), Path(out) / f"metric_{rank}.pt")
    finally:
        dist.destroy_process_group()


def _metric_rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    identities = torch.arange(15) // 3
    features = torch.randn(15, 8, generator=generator) + identities[:, None] * 0.3
    return features, identities, torch.arange(15)


def test_validation_reid_metric_equals_single_process(tmp_path: Path) -> None:
    single = StudyReidMetric()
    single.update(*_metric_rows())
    expected = single.compute()
    mp.spawn(_metric_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        assert torch.load(tmp_path / f"metric_{rank}.pt") == expected
