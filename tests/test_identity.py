"""Identity-aware re-ID training: triplet loss, P x K sampler, APR training, features, fine-tune."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from lightning.fabric.utilities.data import _replace_dunder_methods
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler

from attrnet.data.pk_sampler import IdentityBatchSampler
from attrnet.models.identity import IdentityHead
from attrnet.models.reid_losses import batch_hard_triplet_loss
from attrnet.retrieval.from_config import evaluate
from attrnet.training import train
from tests.helpers import TINY_OVERRIDES, compose_config

DATA_OVERRIDES = [o for o in TINY_OVERRIDES if o.startswith("data.")]


# ---------------------------------------------------------------- triplet loss


def _hand_triplet(points: list[list[float]], labels: list[int], margin: float | None) -> float:
    """Batch-hard triplet loss by explicit loops over anchors, positives and negatives."""
    terms = []
    for a, (pa, la) in enumerate(zip(points, labels, strict=True)):
        positives = [math.dist(pa, p) for i, p in enumerate(points) if labels[i] == la and i != a]
        negatives = [math.dist(pa, p) for i, p in enumerate(points) if labels[i] != la]
        if not positives or not negatives:
            continue
        gap = max(positives) - min(negatives)
        terms.append(math.log1p(math.exp(gap)) if margin is None else max(gap + margin, 0.0))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("margin", [0.3, 1.5, None])
def test_triplet_loss_matches_hand_computation(margin: float | None) -> None:
    points = [[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0], [2.0, 2.0]]
    labels = [0, 0, 1, 1, 2, 7]  # identity 7 has a single image: no positive, not an anchor
    loss = batch_hard_triplet_loss(torch.tensor(points), torch.tensor(labels), margin)
    assert loss.item() == pytest.approx(_hand_triplet(points, labels, margin), rel=1e-5)


def test_triplet_loss_random_batch_and_gradient() -> None:
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(12, 5, generator=generator)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    expected = _hand_triplet(points.tolist(), labels.tolist(), 0.3)
    points.requires_grad_(True)
    loss = batch_hard_triplet_loss(points, labels, 0.3)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0


def test_triplet_loss_without_valid_anchor_is_zero_with_gradient() -> None:
    points = torch.randn(3, 4, requires_grad=True)
    loss = batch_hard_triplet_loss(points, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0 and points.grad is not None


def test_triplet_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="labels"):
        batch_hard_triplet_loss(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_identity_head_bnneck_has_frozen_shift_and_no_classifier_bias() -> None:
    head = IdentityHead(16, num_identities=5)
    assert not head.neck.bias.requires_grad and head.classifier.bias is None
    feature, logits = head(torch.randn(4, 16))
    assert feature.shape == (4, 16) and logits.shape == (4, 5)
    with pytest.raises(ValueError, match="at least 2 identities"):
        IdentityHead(16, num_identities=1)


# ---------------------------------------------------------------- P x K sampler


def _identities(counts: dict[int, int]) -> list[int]:
    return [pid for pid, count in counts.items() for _ in range(count)]


def _check_pk(batches: list[list[int]], identities: list[int], p: int, k: int) -> None:
    for batch in batches:
        per_identity = Counter(identities[i] for i in batch)
        assert len(batch) == p * k
        assert len(per_identity) == p and set(per_identity.values()) == {k}


def test_pk_batches_hold_p_identities_with_k_images() -> None:
    identities = _identities({pid: 6 for pid in range(10)})
    torch.manual_seed(0)
    sampler = IdentityBatchSampler(RandomSampler(identities), identities, 3, 12)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 60 // 12
    _check_pk(batches, identities, p=4, k=3)
    # every image is drawn at most once per epoch when identities have a multiple of K images
    assert max(Counter(itertools.chain(*batches)).values()) == 1


def test_pk_small_identities_repeat_their_images() -> None:
    identities = _identities({0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 1})
    torch.manual_seed(1)
    batches = list(IdentityBatchSampler(RandomSampler(identities), identities, 4, 8))
    _check_pk(batches, identities, p=2, k=4)
    for batch in batches:
        for pid in {identities[i] for i in batch}:
            images = [i for i in batch if identities[i] == pid]
            own = identities.count(pid)
            # fewer than K images: all of them, repeated cyclically (never another identity's)
            assert len(set(images)) == min(own, 4) or own > 4


def test_pk_order_follows_the_inner_sampler() -> None:
    identities = _identities({pid: 4 for pid in range(8)})
    first = list(IdentityBatchSampler(range(32), identities, 4, 8))
    assert first == list(IdentityBatchSampler(range(32), identities, 4, 8))
    assert first[0] == [0, 1, 2, 3, 4, 5, 6, 7]
    reverse = list(IdentityBatchSampler(list(reversed(range(32))), identities, 4, 8))
    assert reverse != first


def test_pk_rejects_impossible_settings() -> None:
    identities = _identities({0: 4, 1: 4})
    with pytest.raises(ValueError, match="multiple of num_instances"):
        IdentityBatchSampler(range(8), identities, 3, 8)
    with pytest.raises(ValueError, match="needs at least 4 identities"):
        IdentityBatchSampler(range(8), identities, 2, 8)


def test_pk_under_lightning_distributed_injection() -> None:
    """Lightning re-creates the batch sampler around a DistributedSampler under DDP."""
    identities = _identities({pid: 4 for pid in range(12)})
    dataset = list(range(len(identities)))
    with _replace_dunder_methods(BatchSampler, "__pl_saved_args"):
        loader = DataLoader(
            dataset,
            batch_sampler=IdentityBatchSampler(RandomSampler(dataset), identities, 2, 8),
        )
    lengths = []
    for rank in (0, 1):
        shard = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        updated = _update_dataloader(loader, shard)
        assert isinstance(updated.batch_sampler, IdentityBatchSampler)
        batches = [b.tolist() for b in updated]
        _check_pk(batches, identities, p=4, k=2)
        assert set(itertools.chain(*batches)) <= set(shard)
        lengths.append(len(batches))
    assert lengths[0] == lengths[1] == 24 // 8  # same step count on every rank


# ---------------------------------------------------------------- training and retrieval


@pytest.fixture(scope="module")
def apr_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """One tiny joint attribute + identity run (objective=apr) with P x K batches, logged to CSV."""
    run = tmp_path_factory.mktemp("apr_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTRNET_CACHE", str(tmp_path_factory.getbasetemp() / "attrnet-cache"))
        cfg = compose_config(
            "train",
            run,
            [*TINY_OVERRIDES, "trainer.accelerator=cpu", "objective=apr", "logger=csv"],
        )
        metrics = train(cfg).metrics
    return run, metrics


def test_apr_training_logs_identity_losses_and_val_reid(apr_run) -> None:
    run, metrics = apr_run
    assert 0.0 <= metrics["mA"] <= 1.0
    header = next((run / "csv").glob("**/metrics.csv")).read_text().splitlines()[0].split(",")
    for name in ("train/id_loss_epoch", "train/triplet_loss_epoch", "train/attribute_loss_epoch"):
        assert name in header
    assert "val/reid_mAP" in header and "val/reid_rank1" in header
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert any(k.startswith("identity.head.classifier") for k in checkpoint["state_dict"])
    identity = checkpoint["hyper_parameters"]["identity"]
    assert identity["head"]["num_identities"] == 7  # 10 synthetic ids - 3 validation ids
    assert identity["id_weight"] == identity["triplet_weight"] == 1.0


@pytest.mark.parametrize("features", ["identity", "identity+logits", "logits"])
def test_reid_with_identity_features(apr_run, tmp_path: Path, features: str) -> None:
    run, _ = apr_run
    cfg = compose_config(
        "reid",
        tmp_path,
        [*DATA_OVERRIDES, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"features={features}"],
    )
    results = evaluate(cfg)
    assert 0.0 < results["euclidean"]["mAP"] <= 1.0
    saved = json.loads((tmp_path / "reid_metrics.json").read_text())
    assert saved["features"] == features


def test_identity_features_need_an_identity_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        "reid", tmp_path, [*DATA_OVERRIDES, f"ckpt_path={checkpoint}", "features=identity"]
    )
    with pytest.raises(ValueError, match="no identity branch"):
        evaluate(cfg)


def test_fine_tune_from_attribute_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    """The study's re-ID step: start from an attribute run's weights, add the identity losses."""
    source = trained_run / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        "train",
        tmp_path,
        [
            *TINY_OVERRIDES,
            "trainer.accelerator=cpu",
            "experiment=reid_finetune",
            f"init_from={source}",
            "optimizer.epochs=1",
        ],
    )
    import attrnet.training
    from attrnet.models.loading import initialize_from

    captured = {}

    def spy(module: torch.nn.Module, path: str) -> None:
        initialize_from(module, path)
        captured["state"] = {k: v.clone() for k, v in module.state_dict().items()}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(attrnet.training, "initialize_from", spy)
        train(cfg)
    expected = torch.load(source, weights_only=True)["state_dict"]
    for key, value in expected.items():
        if key.startswith("net."):
            assert torch.equal(captured["state"][key], value), key
    assert any(k.startswith("identity.head.") for k in captured["state"])
    assert (tmp_path / "metrics.json").is_file()


def test_fine_tune_refuses_a_different_network(trained_run: Path, tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        tmp_path,
        [
            *TINY_OVERRIDES,
            "trainer.accelerator=cpu",
            "model=resnet50_attention",
            f"init_from={trained_run / 'checkpoints' / 'last.ckpt'}",
        ],
    )
    with pytest.raises(ValueError, match="does not match this model"):
        train(cfg)


def test_identity_objective_composes_bag_of_tricks(tmp_path: Path) -> None:
    cfg = compose_config("train", tmp_path, ["objective=identity", "optimizer=bot"])
    assert cfg.model.identity.attribute_weight == 0.0
    assert cfg.model.identity.id_weight == cfg.model.identity.triplet_weight == 1.0
    assert cfg.data.sampler == "identity" and cfg.optimized_metric == "val/reid_mAP"
    assert cfg.callbacks.model_checkpoint.monitor == "val/reid_mAP"
    phase = cfg.optimizer.phases[0]
    assert (phase.optimizer, phase.warmup_epochs, phase.epochs) == ("adam", 10, 120)
