"""The re-ID pipeline of a trained module: features -> distances -> evaluate, re-rank or cut ->
``reid_metrics.json``, ``reid_test.txt`` and ranked-list pictures, usable from Python.

Modes: ``val`` (the study's protocol on the run's validation identities: one query per
identity, the rest gallery), ``market1501`` (query vs gallery with the Market-1501 rules) and
``test`` (unlabelled queries; lists cut at a distance threshold chosen on validation). Features
come from ``trainer.predict`` (``attrnet.inference.predict.run_module``): under a DDP Trainer
every rank embeds its share of the images and holds all features, every rank computes the same
results and rank 0 writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.loggers import Logger
from torch.utils.tensorboard import SummaryWriter

from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.splits import NO_ID, study_reid_protocol
from attrnet.distances import compute_distance, weights_from_scores
from attrnet.errors import DataError
from attrnet.inference.predict import prediction_trainer, run_module
from attrnet.io import atomic_write_text
from attrnet.metrics import AttributeMetrics
from attrnet.models.module import AttributeModule
from attrnet.retrieval.features import network_outputs, reid_features
from attrnet.retrieval.outputs import write_reid_results
from attrnet.retrieval.rank import evaluate_rank, market_excluded
from attrnet.retrieval.rerank import re_ranking
from attrnet.retrieval.threshold import choose_threshold, cut_ranked_lists
from attrnet.retrieval.visualize import draw_ranked_list, save_ranked_lists
from attrnet.tensorboard import summary_writers

MODES = ("val", "market1501", "test")


@dataclass(frozen=True)
class ReidOptions:
    """What a re-ID run computes (``conf/reid/default.yaml`` documents each option and default)."""

    mode: str
    features: str
    flip: bool
    distances: tuple[str, ...]
    weights_from: str
    rerank: bool
    rerank_k1: int
    rerank_k2: int
    rerank_lambda: float
    max_rank: int
    max_results: int
    query_seed: int
    num_ranked_lists: int

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        object.__setattr__(self, "distances", tuple(self.distances))


@dataclass
class Side:
    """One side of a retrieval problem: image table and its features."""

    frame: pd.DataFrame
    features: torch.Tensor


def run_split_file(checkpoint: str | Path) -> Path | None:
    """``split.json`` of the run folder that holds ``checkpoints/<file>.ckpt``; ``None`` when
    the run's data defined its own validation images (``split.csv`` only)."""
    path = Path(checkpoint).resolve().parent.parent / "split.json"
    if not path.is_file() and path.with_suffix(".csv").is_file():
        return None
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no split.json beside the checkpoint's run folder; pass split_file=... "
            "(the validation identities the model did not train on)"
        )
    return path


class ReidRun:
    """Features, weights and distances of one trained module on one dataset.

    ``datamodule`` is set up here for validation; its attributes must be the module's (errors
    name ``checkpoint``, the module's file, when given). ``trainer`` predicts the features.
    """

    def __init__(
        self,
        module: AttributeModule,
        datamodule: AttributeDataModule,
        options: ReidOptions,
        trainer: L.Trainer,
        checkpoint: str | Path | None = None,
    ) -> None:
        self.module, self.datamodule = module, datamodule
        self.options, self.trainer = options, trainer
        datamodule.prepare_data()
        datamodule.setup("validate")
        datamodule.tables.require_identities(f"attrnet-reid mode={options.mode}")
        if datamodule.attributes != module.attribute_names:
            raise DataError(
                f"{checkpoint or 'the module'}: the checkpoint predicts "
                f"{len(module.attribute_names)} attributes that differ from the data's "
                f"{len(datamodule.attributes)}"
            )

    def features(self, frame: pd.DataFrame, kind: str | None = None) -> torch.Tensor:
        """Features of ``frame``'s images, in row order (under DDP: gathered from all ranks)."""
        kind = kind or self.options.features
        flip = self.options.flip
        loader = self.datamodule.image_loader(frame["path"].tolist())
        outputs = run_module(
            self.module, loader, network_outputs(kind), trainer=self.trainer, flip=flip
        )
        return reid_features(outputs, kind, flip)

    def attribute_weights(self, val: Side) -> np.ndarray:
        """Per-attribute weights from validation F1 or accuracy (the study's weighted distance)."""
        if self.options.features not in ("logits", "probabilities"):
            raise ValueError(
                "the weighted distance needs attribute features (logits or probabilities)"
            )
        logits = (
            val.features
            if self.options.features == "logits"
            else self.features(val.frame, "logits")
        )
        names = self.module.attribute_names
        metrics = AttributeMetrics(names)
        metrics.update(logits, torch.as_tensor(val.frame[names].to_numpy()))
        results = metrics.compute()
        key = {"f1": "f1", "accuracy": "accuracy"}[self.options.weights_from]
        return weights_from_scores(torch.stack([results[f"{key}/{n}"] for n in names]))

    def distance(
        self, query: Side, gallery: Side, metric: str, weights: np.ndarray | None
    ) -> torch.Tensor:
        options = self.options
        if metric == "random":  # chance level: a seeded random ranking, the reference row
            generator = torch.Generator().manual_seed(options.query_seed)
            return torch.rand(len(query.frame), len(gallery.frame), generator=generator)
        kind = "euclidean" if metric == "weighted" and weights is None else metric
        if options.rerank:
            return re_ranking(
                query.features,
                gallery.features,
                options.rerank_k1,
                options.rerank_k2,
                options.rerank_lambda,
                metric=kind,
                weights=weights,
            )
        distances = compute_distance(query.features, gallery.features, kind, weights=weights)
        return torch.from_numpy(distances)

    def study_val_sides(self) -> tuple[Side, Side, Side]:
        """Validation features, split into the study's one-query-per-identity protocol (the
        validation images with a person id: those without one, ``NO_ID``, take no part)."""
        frame = self.datamodule.val_frame
        frame = frame[frame["person_id"] != NO_ID].reset_index(drop=True)
        val = Side(frame, self.features(frame))
        query_rows, gallery_rows = study_reid_protocol(
            frame["person_id"].to_numpy(), self.options.query_seed
        )
        query = Side(frame.iloc[query_rows].reset_index(drop=True), val.features[query_rows])
        gallery = Side(frame.iloc[gallery_rows].reset_index(drop=True), val.features[gallery_rows])
        return val, query, gallery

    def table_sides(self) -> tuple[Side, Side]:
        """The data source's query and gallery tables with their features."""
        tables = self.datamodule.tables
        if tables.query is None or tables.gallery is None:
            raise DataError(
                f"{self.options.mode} mode needs query and gallery images in the data source"
            )
        return Side(tables.query, self.features(tables.query)), Side(
            tables.gallery, self.features(tables.gallery)
        )


def run_reid(
    module: AttributeModule,
    datamodule: AttributeDataModule,
    options: ReidOptions,
    output_dir: str | Path,
    checkpoint: str | Path | None = None,
    trainer: L.Trainer | None = None,
    loggers: Sequence[Logger] = (),
    step: int = 0,
) -> dict[str, dict[str, float]]:
    """Evaluate ``module`` on ``datamodule``: per-distance rank metrics (val, market1501) or
    the test mode's threshold and list figures, also written to ``output_dir``
    (``reid_metrics.json``, ranked-list pictures, ``reid_test.txt``) and logged at ``step`` to
    ``loggers`` (scalars ``reid/<distance>/<name>``; the pictures to their TensorBoard).
    ``trainer`` predicts the features (default: one device chosen by Lightning, fp32)."""
    trainer = trainer or prediction_trainer()
    run = ReidRun(module, datamodule, options, trainer, checkpoint)
    output_dir = Path(output_dir)
    writes = trainer.is_global_zero
    # validation features serve the val protocol, the test-mode threshold and the weights
    if options.mode != "market1501" or "weighted" in options.distances:
        val, val_query, val_gallery = run.study_val_sides()
    weights = run.attribute_weights(val) if "weighted" in options.distances else None
    if options.mode == "test":
        results = _test_mode(run, output_dir if writes else None, (val_query, val_gallery), weights)
    else:
        if options.mode == "val":
            query, gallery, protocol = val_query, val_gallery, "study"
        else:
            (query, gallery), protocol = run.table_sides(), "market1501"
        results, shown = {}, None
        for metric in options.distances:
            distmat = run.distance(query, gallery, metric, weights)
            shown = distmat if shown is None else shown
            rank = evaluate_rank(
                distmat,
                query.frame["person_id"].to_numpy(),
                gallery.frame["person_id"].to_numpy(),
                query.frame["camera_id"].to_numpy(),
                gallery.frame["camera_id"].to_numpy(),
                max_rank=min(options.max_rank, len(gallery.frame)),
                protocol=protocol,
            )
            results[metric] = rank.as_dict()
        if writes:
            writer = next(iter(summary_writers(loggers)), None)
            _ranked_list_pictures(run, writer, step, output_dir, query, gallery, shown, protocol)
    if writes:
        scalars = {f"reid/{d}/{k}": float(v) for d, row in results.items() for k, v in row.items()}
        for logger in loggers:
            logger.log_metrics(scalars, step=step)
        payload = {
            "mode": options.mode,
            "features": options.features,
            "rerank": options.rerank,
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "results": results,
        }
        atomic_write_text(output_dir / "reid_metrics.json", json.dumps(payload, indent=1))
    return results


def _test_mode(
    run: ReidRun,
    output_dir: Path | None,
    val: tuple[Side, Side],
    weights: np.ndarray | None,
) -> dict[str, dict[str, float]]:
    """Choose the threshold on validation, cut the test lists there, write ``reid_test.txt``
    into ``output_dir`` (``None``: a DDP rank other than 0, which only computes)."""
    metric = run.options.distances[0]
    val_distmat = run.distance(*val, metric, weights)
    choice = choose_threshold(
        val_distmat,
        val[0].frame["person_id"].to_numpy(),
        val[1].frame["person_id"].to_numpy(),
        max_results=run.options.max_results,
    )
    query, gallery = run.table_sides()
    lists = cut_ranked_lists(
        run.distance(query, gallery, metric, weights), choice.threshold, run.options.max_results
    )
    lengths = np.array([len(i) for i in lists])
    figures = {
        "threshold": choice.threshold,
        "val_mean_f1": choice.mean_f1,
        "mean_list_length": float(lengths.mean()),
        "max_list_length": int(lengths.max()),
    }
    if output_dir is not None:
        names = gallery.frame["image"].to_numpy()
        write_reid_results(
            output_dir / "reid_test.txt",
            query.frame["image"].tolist(),
            [names[i].tolist() for i in lists],
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
    count = min(run.options.num_ranked_lists, len(query.frame))
    if count == 0:
        return
    subset = query.frame.iloc[:count]
    distmat = distmat[:count].clone()
    g_pids, g_cams = gallery.frame["person_id"].to_numpy(), gallery.frame["camera_id"].to_numpy()
    pictures = []
    for row in range(count):
        pid, cam = subset["person_id"].iloc[row], subset["camera_id"].iloc[row]
        if protocol == "market1501":
            excluded = market_excluded(g_pids, g_cams, pid, cam)
            distmat[row, torch.as_tensor(excluded)] = float("inf")
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
