"""Loading trained modules: the injected network and identity head are rebuilt from the
checkpoint, for checkpoints written now and for those written before the network was injected
(their hyper-parameters were the module's flat keyword arguments)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from attrnet.models.backbone import AttributeResNet50
from attrnet.models.identity import IdentityHead
from attrnet.models.loading import load_attribute_module
from attrnet.models.module import AttributeModule

NAMES = ["hat", "bag", "female"]


def _old_hparams(**changes: object) -> dict:
    """The hyper-parameters as the module saved them before the network was injected: every
    keyword of its old signature (``save_hyperparameters()``)."""
    hparams = {
        "attribute_names": NAMES,
        "positive_ratio": [0.2, 0.4, 0.5],
        "loss_strategy": "inverse_frequency",
        "optimizer_phases": [{"optimizer": "adamw", "epochs": 2, "lr": 1e-3}],
        "attention": True,
        "attention_stages": [2, 4],
        "last_stride": 1,
        "dropout": 0.1,
        "pretrained": True,  # its ImageNet file is long gone: loading must not look for it
        "weights_path": "/nowhere/resnet50.pth",
        "activation_checkpointing": False,
        "zero_init_residual": True,
        "channels_last": False,
        "threshold": 0.4,
        "num_logged_images": 16,
        "image_size": [64, 32],
        "num_identities": 5,
        "attribute_loss_weight": 1.0,
        "id_loss_weight": 1.0,
        "triplet_loss_weight": 1.0,
        "triplet_margin": 0.3,
        "label_smoothing": 0.1,
        "bnneck": True,
        "compile": False,
    }
    return {**hparams, **changes}


def _trained_stand_in(hparams: dict) -> AttributeModule:
    """A module with the networks ``hparams`` describe and non-default weights."""
    torch.manual_seed(0)
    net = AttributeResNet50(
        len(NAMES), attention=True, attention_stages=[2, 4], last_stride=1, dropout=0.1
    )
    head = IdentityHead(2048, 5) if hparams["id_loss_weight"] > 0 else None
    module = AttributeModule(
        net,
        NAMES,
        hparams["positive_ratio"],
        identity_head=head,
        id_loss_weight=hparams["id_loss_weight"],
        triplet_loss_weight=hparams["triplet_loss_weight"],
        threshold=0.4,
        image_size=[64, 32],
    )
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return module.eval()


def _save(path: Path, module: AttributeModule, hparams: dict) -> Path:
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    return path


@pytest.mark.parametrize("id_loss_weight", [1.0, 0.0])
def test_checkpoints_from_before_the_injection_still_load(
    tmp_path: Path, id_loss_weight: float
) -> None:
    hparams = _old_hparams(id_loss_weight=id_loss_weight)
    reference = _trained_stand_in(hparams)
    loaded = load_attribute_module(_save(tmp_path / "old.ckpt", reference, hparams)).eval()
    assert loaded.net.hparams["attention_stages"] == [2, 4]
    assert loaded.net.hparams["last_stride"] == 1 and not loaded.net.hparams["pretrained"]
    assert loaded.hparams["threshold"] == 0.4 and loaded.hparams["image_size"] == [64, 32]
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), reference(images), rtol=0, atol=0)
        embedding = reference.embed(images)
        torch.testing.assert_close(
            loaded.identity_feature(embedding), reference.identity_feature(embedding)
        )
    if id_loss_weight > 0:
        assert loaded.hparams["identity_head"] == {
            "embedding_dim": 2048,
            "num_identities": 5,
            "bnneck": True,
        }
    else:  # triplet-only: the embedding is the identity feature, no head
        assert loaded.identity_head is None and loaded.hparams["identity_head"] is None


def test_new_checkpoints_carry_the_networks_arguments(tmp_path: Path) -> None:
    reference = _trained_stand_in(_old_hparams())
    hparams = dict(reference.hparams)
    assert hparams["net"]["attention_stages"] == [2, 4] and "attention" not in hparams
    loaded = load_attribute_module(_save(tmp_path / "new.ckpt", reference, hparams)).eval()
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), reference(images), rtol=0, atol=0)
    assert dict(loaded.hparams) == hparams


def test_the_module_checks_the_injected_parts() -> None:
    with pytest.raises(ValueError, match="the network has 2 outputs for 3 attributes"):
        AttributeModule(AttributeResNet50(2), NAMES, [0.5] * 3)
    with pytest.raises(ValueError, match="needs an identity_head"):
        AttributeModule(AttributeResNet50(3), NAMES, [0.5] * 3, id_loss_weight=1.0)
