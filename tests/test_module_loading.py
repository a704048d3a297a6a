"""Loading trained modules: every injected part is rebuilt from the checkpoint, for checkpoints
written now and for those of earlier versions (the module's flat keyword arguments before the
network was injected; the injected network beside a dozen module settings after it)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from attrnet.checkpoints import CheckpointError
from attrnet.models.backbone import AttributeResNet50
from attrnet.models.identity import IdentityBranch, IdentityHead
from attrnet.models.loading import load_attribute_module
from tests.helpers import make_module

NAMES = ["hat", "bag", "female"]
BRANCH = {"attribute_weight": 1.0, "triplet_margin": 0.3, "label_smoothing": 0.1, "metric": None}


def _net() -> AttributeResNet50:
    return AttributeResNet50(
        len(NAMES), attention=True, attention_stages=[2, 4], last_stride=1, dropout=0.1
    )


def _trained_stand_in(id_weight: float) -> torch.nn.Module:
    """A module with an attention network, an identity branch and non-default weights."""
    torch.manual_seed(0)
    head = IdentityHead(2048, 5) if id_weight > 0 else None
    identity = IdentityBranch(head, id_weight=id_weight, triplet_weight=1.0, **BRANCH)
    module = make_module(NAMES, net=_net(), image_size=(64, 32), identity=identity, threshold=0.4)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return module.eval()


def _old_hparams(layout: str, id_weight: float) -> dict:
    """The hyper-parameters as earlier versions saved them."""
    net = {
        "attention_stages": [2, 4],
        "last_stride": 1,
        "dropout": 0.1,
        "weights_path": "/nowhere/resnet50.pth",  # long gone: loading must not look for it
        "activation_checkpointing": False,
        "zero_init_residual": True,
    }
    settings = {
        "attribute_names": NAMES,
        "positive_ratio": [0.2, 0.4, 0.5],
        "loss_strategy": "inverse_frequency",
        "optimizer_phases": [{"optimizer": "adamw", "epochs": 2, "lr": 1e-3}],
        "channels_last": False,
        "threshold": 0.4,
        "num_logged_images": 16,
        "image_size": [64, 32],
        "attribute_loss_weight": 1.0,
        "id_loss_weight": id_weight,
        "triplet_loss_weight": 1.0,
        "triplet_margin": 0.3,
        "label_smoothing": 0.1,
        "compile": False,
    }
    if layout == "flat":  # before the network was injected
        return {**settings, **net, "attention": True, "pretrained": True, "num_identities": 5}
    head = {"embedding_dim": 2048, "num_identities": 5, "bnneck": True} if id_weight else None
    net = {**net, "num_attributes": 3, "attention": True, "pretrained": True}
    return {**settings, "net": net, "identity_head": head}


def _save(path: Path, state: dict, hparams: dict, **extra: object) -> Path:
    checkpoint = {"state_dict": state, "hyper_parameters": hparams, **extra}
    torch.save({**checkpoint, "pytorch-lightning_version": L.__version__}, path)
    return path


def _same_outputs(loaded: torch.nn.Module, reference: torch.nn.Module) -> None:
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), reference(images), rtol=0, atol=0)
        embedding = reference.embed(images)
        torch.testing.assert_close(
            loaded.identity_feature(embedding), reference.identity_feature(embedding)
        )


@pytest.mark.parametrize("layout", ["flat", "injected"])
@pytest.mark.parametrize("id_weight", [1.0, 0.0])
def test_checkpoints_of_earlier_versions_still_load(
    tmp_path: Path, layout: str, id_weight: float
) -> None:
    reference = _trained_stand_in(id_weight)
    state = {
        k.replace("identity.head.", "identity_head."): v for k, v in reference.state_dict().items()
    }
    normalization = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    path = _save(tmp_path / "old.ckpt", state, _old_hparams(layout, id_weight))
    loaded = load_attribute_module(path).eval()
    assert loaded.net.hparams["attention_stages"] == [2, 4]
    assert loaded.net.hparams["last_stride"] == 1 and not loaded.net.hparams["pretrained"]
    assert loaded.threshold == 0.4 and loaded.spec.image_size == (64, 32)
    assert loaded.attribute_names == NAMES
    _same_outputs(loaded, reference)
    assert (loaded.identity.head is None) == (id_weight == 0)
    # the normalisation an older checkpoint recorded beside its weights is kept
    path = _save(
        tmp_path / "norm.ckpt", state, _old_hparams(layout, id_weight), normalization=normalization
    )
    assert load_attribute_module(path).spec.mean == (0.5, 0.5, 0.5)


def test_new_checkpoints_carry_every_part(tmp_path: Path) -> None:
    reference = _trained_stand_in(1.0)
    hparams = dict(reference.hparams)
    assert hparams["net"]["_target_"] == "attrnet.models.backbone.AttributeResNet50"
    assert hparams["net"]["attention_stages"] == [2, 4]
    assert hparams["identity"]["head"] == {
        "embedding_dim": 2048,
        "num_identities": 5,
        "bnneck": True,
    }
    assert hparams["spec"]["image_size"] == [64, 32] and hparams["threshold"] == 0.4
    loaded = load_attribute_module(_save(tmp_path / "new.ckpt", reference.state_dict(), hparams))
    _same_outputs(loaded.eval(), reference)
    assert dict(loaded.hparams) == hparams


def test_a_checkpoint_names_only_attrnet_networks(tmp_path: Path) -> None:
    reference = _trained_stand_in(0.0)
    hparams = dict(reference.hparams)
    for target in ("os.system", "attrnet.models.identity.IdentityHead"):
        path = _save(
            tmp_path / "evil.ckpt", reference.state_dict(), {**hparams, "net": {"_target_": target}}
        )
        with pytest.raises(CheckpointError, match=f"evil.ckpt: .*{target}"):
            load_attribute_module(path)


def test_the_module_checks_the_injected_parts() -> None:
    with pytest.raises(ValueError, match="the network has 2 outputs .* for 3 attributes"):
        make_module(NAMES, net=AttributeResNet50(2))
    with pytest.raises(ValueError, match="needs a head"):
        IdentityBranch(None, id_weight=1.0, triplet_weight=0.0, **BRANCH)
    with pytest.raises(ValueError, match="head: null for triplet-only"):
        IdentityBranch(IdentityHead(2048, 5), id_weight=0.0, triplet_weight=1.0, **BRANCH)
    with pytest.raises(ValueError, match="without an identity loss"):
        IdentityBranch(None, id_weight=0.0, triplet_weight=0.0, **BRANCH)
