"""``attrnet-reid``: re-ID evaluation (study validation, Market-1501) and test-mode result lists.

Writes into the run folder: ``reid_metrics.json``, TensorBoard scalars (``reid/<distance>/*``)
and ranked-list images at the checkpoint's global step, ``ranked_lists/*.png``, and in test mode
``reid_test.txt`` in the study's format. ``attrnet-train`` with a ``reid`` section calls
``evaluate`` on its best checkpoint (``reid_config``) with its own loggers, so the figures join
the training run's TensorBoard; under DDP every rank embeds its share of the images, the
features are gathered and rank 0 writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from attrnet.cli.common import CONFIG_PATH, load_attribute_module
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.errors import DataError
from attrnet.data.market import JUNK_ID
from attrnet.data.splits import study_reid_protocol
from attrnet.io import atomic_write_text
from attrnet.metrics import AttributeMetrics
from attrnet.models.module import AttributeModule
from attrnet.retrieval import (
    choose_threshold,
    compute_distance,
    cut_ranked_lists,
    draw_ranked_list,
    evaluate_rank,
    re_ranking,
    save_ranked_lists,
    weights_from_scores,
    write_reid_results,
)
from attrnet.retrieval.features import extract_features
from attrnet.retrieval.gather import gather_rows, rank_and_world_size, shard_indices
from attrnet.retrieval.rank import UNKNOWN_CAMERA
from attrnet.tensorboard import (
    curated_reid_hparams,
    log_final_metrics,
    log_run_overview,
    register_hparams,
    summary_writers,
)

MODES = ("val", "market1501", "test")


@dataclass
class Side:
    """One side of a retrieval problem: image table and its features."""

    frame: pd.DataFrame
    features: torch.Tensor


class ReidRun:
    """Features, weights and distances for one ``attrnet-reid`` invocation."""

    def __init__(self, cfg: DictConfig) -> None:
        if cfg.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
        self.cfg = cfg
        self.device = _device(cfg.device)
        self.module: AttributeModule = load_attribute_module(
            cfg.ckpt_path, map_location=self.device
        )
        split_file = cfg.split_file or _run_split_file(Path(cfg.ckpt_path))
        self.datamodule: AttributeDataModule = instantiate(
            cfg.data,
            image_size=list(self.module.hparams.image_size),
            split_file=split_file,
            cache_images=False,
            eval_batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
        )
        self.datamodule.prepare_data()
        self.datamodule.setup("validate")
        self.datamodule.tables.require_identities(f"attrnet-reid mode={cfg.mode}")
        if self.datamodule.attributes != self.module.attribute_names:
            raise DataError(
                f"{cfg.ckpt_path}: the checkpoint predicts {len(self.module.attribute_names)} "
                f"attributes that differ from the data's {len(self.datamodule.attributes)}"
            )

    def features(self, frame: pd.DataFrame, kind: str | None = None) -> torch.Tensor:
        """Features of ``frame``'s images; under DDP each rank embeds its share (gathered)."""
        paths = frame["path"].tolist()
        shard = shard_indices(len(paths))
        loader = self.datamodule.image_loader([paths[i] for i in shard])
        local = extract_features(
            self.module, loader, kind or self.cfg.features, self.cfg.flip, self.device
        )
        return gather_rows(local, shard, len(paths))

    def attribute_weights(self, val: Side) -> torch.Tensor:
        """Per-attribute weights from validation F1 or accuracy (the study's weighted distance)."""
        if self.cfg.features not in ("logits", "probabilities"):
            raise ValueError(
                "the weighted distance needs attribute features (logits or probabilities)"
            )
        logits = (
            val.features if self.cfg.features == "logits" else self.features(val.frame, "logits")
        )
        metrics = AttributeMetrics(self.module.attribute_names)
        metrics.update(logits, torch.as_tensor(val.frame[self.module.attribute_names].to_numpy()))
        results = metrics.compute()
        key = {"f1": "f1", "accuracy": "accuracy"}[self.cfg.weights_from]
        return weights_from_scores(
            torch.stack([results[f"{key}/{n}"] for n in self.module.attribute_names])
        )

    def distance(
        self, query: Side, gallery: Side, metric: str, weights: torch.Tensor | None
    ) -> torch.Tensor:
        if metric == "random":  # chance level: a seeded random ranking, the reference row
            generator = torch.Generator().manual_seed(self.cfg.query_seed)
            return torch.rand(len(query.frame), len(gallery.frame), generator=generator)
        kind = "euclidean" if metric == "weighted" and weights is None else metric
        if self.cfg.rerank:
            return re_ranking(
                query.features,
                gallery.features,
                self.cfg.rerank_k1,
                self.cfg.rerank_k2,
                self.cfg.rerank_lambda,
                metric=kind,
                weights=weights,
            )
        return compute_distance(query.features, gallery.features, kind, weights=weights)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _run_split_file(checkpoint: Path) -> str | None:
    """``split.json`` of the run folder that holds ``checkpoints/<file>.ckpt``; ``None`` when
    the run's data defined its own validation images (``split.csv`` only)."""
    path = checkpoint.resolve().parent.parent / "split.json"
    if not path.is_file() and path.with_suffix(".csv").is_file():
        return None
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no split.json beside the checkpoint's run folder; pass split_file=... "
            "(the validation identities the model did not train on)"
        )
    return str(path)


def _study_val_sides(run: ReidRun) -> tuple[Side, Side, Side]:
    """Validation features, split into the study's one-query-per-identity protocol."""
    frame = run.datamodule.val_frame
    val = Side(frame, run.features(frame))
    query_rows, gallery_rows = study_reid_protocol(
        frame["person_id"].to_numpy(), run.cfg.query_seed
    )
    query = Side(frame.iloc[query_rows].reset_index(drop=True), val.features[query_rows])
    gallery = Side(frame.iloc[gallery_rows].reset_index(drop=True), val.features[gallery_rows])
    return val, query, gallery


def _table_sides(run: ReidRun) -> tuple[Side, Side]:
    tables = run.datamodule.tables
    if tables.query is None or tables.gallery is None:
        raise DataError(f"{run.cfg.mode} mode needs query and gallery images in the data source")
    return Side(tables.query, run.features(tables.query)), Side(
        tables.gallery, run.features(tables.gallery)
    )


def reid_config(train_cfg: DictConfig, checkpoint: str | Path | None = None) -> DictConfig:
    """The ``attrnet-reid`` config for a training run: ``conf/reid.yaml``'s options updated by
    the run's ``reid`` section, with its data and folder (results land there); ``ckpt_path`` is
    ``checkpoint`` (``None``: left to set once training has chosen the best checkpoint)."""
    options = OmegaConf.create(resources.files("attrnet.conf").joinpath("reid.yaml").read_text())
    options.pop("defaults")
    allowed = [key for key in options if key not in ("ckpt_path", "task_name")]
    unknown = sorted(set(train_cfg.reid) - set(allowed))
    if unknown:
        raise ValueError(
            f"reid.{unknown[0]}: not an option of the re-ID step; it takes those of "
            f"conf/reid.yaml: {', '.join(allowed)}"
        )
    run = {
        "data": OmegaConf.to_container(train_cfg.data, resolve=True),
        "paths": OmegaConf.to_container(train_cfg.paths, resolve=True),
    }
    if checkpoint is not None:
        run["ckpt_path"] = str(checkpoint)
    return OmegaConf.merge(options, train_cfg.reid, run)


def reid_metric_names(cfg: DictConfig) -> list[str]:
    """The TensorBoard tags of the headline figures ``evaluate`` logs for ``cfg``."""
    if cfg.mode == "test":
        return [f"reid/{cfg.distances[0]}/{name}" for name in ("threshold", "val_mean_f1")]
    return [f"reid/{d}/{name}" for d in cfg.distances for name in ("mAP", "rank1")]


def evaluate(
    cfg: DictConfig, loggers: list[Logger] | None = None, step: int | None = None
) -> dict[str, dict[str, float]]:
    """Run ``attrnet-reid``; returns per-distance metrics (val/market1501) or test-mode figures.

    The figures go to ``loggers`` at ``step`` (default: the checkpoint's global step); without
    ``loggers``, to those of ``cfg.logger`` as a TensorBoard HParams session of their own.
    Under DDP every rank computes the same results from gathered features; rank 0 writes.
    """
    run = ReidRun(cfg)
    output_dir = Path(cfg.paths.output_dir)
    writes = rank_and_world_size()[0] == 0
    own_session = loggers is None
    if own_session:
        loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
        register_hparams(loggers, curated_reid_hparams(cfg), reid_metric_names(cfg))
        log_run_overview(loggers, cfg, None)
    step = run.module.checkpoint_position[0] if step is None else step
    # validation features serve the val protocol, the test-mode threshold and the weights
    if cfg.mode != "market1501" or "weighted" in cfg.distances:
        val, val_query, val_gallery = _study_val_sides(run)
    weights = run.attribute_weights(val) if "weighted" in cfg.distances else None
    results: dict[str, dict[str, float]] = {}
    if cfg.mode == "test":
        query, gallery = _table_sides(run)
        results = _test_mode(
            run, output_dir if writes else None, (val_query, val_gallery), (query, gallery), weights
        )
    else:
        if cfg.mode == "val":
            query, gallery, protocol = val_query, val_gallery, "study"
        else:
            (query, gallery), protocol = _table_sides(run), "market1501"
        shown = None
        for metric in cfg.distances:
            distmat = run.distance(query, gallery, metric, weights)
            shown = distmat if shown is None else shown
            rank = evaluate_rank(
                distmat,
                query.frame["person_id"].to_numpy(),
                gallery.frame["person_id"].to_numpy(),
                query.frame["camera_id"].to_numpy(),
                gallery.frame["camera_id"].to_numpy(),
                max_rank=min(cfg.max_rank, len(gallery.frame)),
                protocol=protocol,
            )
            results[metric] = rank.as_dict()
        if writes:
            writer = next(iter(summary_writers(loggers)), None)
            _ranked_list_pictures(run, writer, step, output_dir, query, gallery, shown, protocol)
            _print_table(results, cfg)
    if not writes:
        return results
    scalars = {f"reid/{d}/{k}": float(v) for d, row in results.items() for k, v in row.items()}
    if own_session:
        log_final_metrics(loggers, step, scalars)
    else:
        for logger in loggers:
            logger.log_metrics(scalars, step=step)
    payload = {
        "mode": cfg.mode,
        "features": cfg.features,
        "rerank": cfg.rerank,
        "checkpoint": str(cfg.ckpt_path),
        "results": results,
    }
    atomic_write_text(output_dir / "reid_metrics.json", json.dumps(payload, indent=1))
    print(f"Run folder: {output_dir}")
    return results


def _test_mode(
    run: ReidRun,
    output_dir: Path | None,
    val: tuple[Side, Side],
    test: tuple[Side, Side],
    weights: torch.Tensor | None,
) -> dict[str, dict[str, float]]:
    """Choose the threshold on validation, cut the test lists there, write ``reid_test.txt``
    into ``output_dir`` (``None``: a DDP rank other than 0, which only computes)."""
    metric = run.cfg.distances[0]
    val_distmat = run.distance(*val, metric, weights)
    choice = choose_threshold(
        val_distmat,
        val[0].frame["person_id"].to_numpy(),
        val[1].frame["person_id"].to_numpy(),
        max_results=run.cfg.max_results,
    )
    query, gallery = test
    lists = cut_ranked_lists(
        run.distance(query, gallery, metric, weights), choice.threshold, run.cfg.max_results
    )
    lengths = np.array([len(i) for i in lists])
    figures = {
        "threshold": choice.threshold,
        "val_mean_f1": choice.mean_f1,
        "mean_list_length": float(lengths.mean()),
        "max_list_length": int(lengths.max()),
    }
    if output_dir is None:
        return {metric: figures}
    names = gallery.frame["image"].to_numpy()
    path = write_reid_results(
        output_dir / "reid_test.txt",
        query.frame["image"].tolist(),
        [names[i].tolist() for i in lists],
    )
    print(
        f"Threshold {choice.threshold:.4f} (validation mean F1 {choice.mean_f1:.4f}); "
        f"lists of {lengths.min()}-{lengths.max()} images (mean {lengths.mean():.1f}) -> {path}"
    )
    return {metric: figures}


def _ranked_list_pictures(
    run: ReidRun,
    writer: SummaryWriter | None,
    step: int,
    output_dir: Path,
    query: Side,
    gallery: Side,
    distmat: torch.Tensor,
    protocol: str,
) -> None:
    """Query + top-10, green border for a match and red for a miss: PNG files and TensorBoard
    (``writer``, at ``step``; ``None``: files only).

    ``distmat`` is the evaluated matrix of the first distance, so the pictures show exactly
    the ranking that was scored (re-ranking included).
    """
    count = min(run.cfg.num_ranked_lists, len(query.frame))
    if count == 0:
        return
    subset = query.frame.iloc[:count]
    distmat = distmat[:count].clone()
    g_pids, g_cams = gallery.frame["person_id"].to_numpy(), gallery.frame["camera_id"].to_numpy()
    pictures = []
    for row in range(count):
        pid, cam = subset["person_id"].iloc[row], subset["camera_id"].iloc[row]
        if protocol == "market1501":
            same_camera = (g_cams == cam) & (cam != UNKNOWN_CAMERA)
            invalid = ((g_pids == pid) & same_camera) | (g_pids == JUNK_ID)
            distmat[row, torch.as_tensor(invalid)] = float("inf")
        top = torch.argsort(distmat[row], stable=True)[:10].numpy()
        pictures.append(
            draw_ranked_list(
                subset["path"].iloc[row],
                gallery.frame["path"].to_numpy()[top].tolist(),
                (g_pids[top] == pid).tolist(),
            )
        )
    save_ranked_lists(pictures, output_dir / "ranked_lists")
    for index, picture in enumerate(pictures if writer is not None else []):
        writer.add_image(f"reid/ranked_list_{index}", np.asarray(picture), step, dataformats="HWC")


def _print_table(results: dict[str, dict[str, float]], cfg: DictConfig) -> None:
    table = pd.DataFrame(results).T
    table = table[[c for c in ("rank1", "rank5", "rank10", "mAP", "mINP") if c in table]]
    table.index.name = "distance"
    extra = ", re-ranked" if cfg.rerank else ""
    print(f"\nRe-ID ({cfg.mode} protocol, {cfg.features} features{extra}):")
    print(table.round(4).to_string())


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="reid")
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-reid``."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
