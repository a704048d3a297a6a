"""Rebuild a trained ``AttributeModule`` from its checkpoint, and fine-tune from another run's.

A checkpoint keeps every injected part's arguments in its hyper-parameters (``net`` with its
class, ``identity``, ``optimizer``, ``spec``, ``threshold``); loading builds the parts again
(without ImageNet weights or compilation: the checkpoint has the trained weights) and loads the
state. Checkpoints of earlier versions are read through ``attrnet.models.legacy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from attrnet.checkpoints import CheckpointError, load_checkpoint
from attrnet.models.identity import IdentityBranch, IdentityHead
from attrnet.models.legacy import upgrade_hparams
from attrnet.models.losses import WeightedBCEWithLogits
from attrnet.models.module import AttributeModule
from attrnet.models.network import build_network
from attrnet.models.spec import ModelSpec
from attrnet.optim import OptimizerPlan


def module_from_hparams(hparams: Mapping[str, Any]) -> AttributeModule:
    """An untrained module with the parts today's ``hparams`` describe; the criterion's
    weights are placeholders (a checkpoint's state brings the real ones)."""
    spec = ModelSpec.from_dict(hparams["spec"])
    net = build_network(hparams["net"], pretrained=False, compile=False)
    count = len(spec.attribute_names)
    criterion = WeightedBCEWithLogits(torch.ones(count), torch.ones(count))
    identity = None
    if hparams.get("identity") is not None:
        branch = dict(hparams["identity"])
        head = branch.pop("head")
        head = None if head is None else IdentityHead(**head)
        identity = IdentityBranch(head, **branch, metric=None)  # no validation here
    plan = OptimizerPlan(hparams["optimizer"])
    return AttributeModule(net, criterion, plan, spec, identity, hparams["threshold"])


def load_attribute_module(checkpoint: str | Path, map_location: str = "cpu") -> AttributeModule:
    """Load a trained ``AttributeModule`` safely (``weights_only=True``; no ImageNet reload).

    The file is read once, by ``attrnet.checkpoints.load_checkpoint``, so a missing, corrupt or
    code-carrying checkpoint fails with a ``CheckpointError`` naming it. The module is built as
    Lightning's ``load_from_checkpoint`` builds it (its parts from the hyper-parameters,
    ``on_load_checkpoint``, a strict ``load_state_dict``).
    """
    path = Path(checkpoint)
    saved = load_checkpoint(path, map_location=map_location)
    if "state_dict" not in saved:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    try:
        module = module_from_hparams(upgrade_hparams(saved.get("hyper_parameters", {}), saved))
    except KeyError as missing:
        raise CheckpointError(f"{path}: not an attrnet checkpoint (no {missing} setting)") from None
    except ValueError as error:  # e.g. a network class that is not attrnet's
        raise CheckpointError(f"{path}: {error}") from None
    module.on_load_checkpoint(saved)
    module.load_state_dict(saved["state_dict"])
    return module.to(map_location)


def initialize_from(module: AttributeModule, checkpoint_path: str | Path) -> None:
    """Start ``module`` from the network weights of another run's checkpoint (fine-tuning).

    The backbone and attribute head must match; the identity branch may be new (it keeps its
    fresh initialisation). Optimizer state and epochs are not taken over.
    """
    state = load_checkpoint(checkpoint_path).get("state_dict")
    if state is None:
        raise CheckpointError(f"{checkpoint_path}: not a Lightning checkpoint (no state_dict)")
    own = {k: v for k, v in module.state_dict().items() if k.startswith("net.")}
    wanted = {k: v for k, v in state.items() if k.startswith("net.")}
    differing = [k for k, v in wanted.items() if k not in own or own[k].shape != v.shape]
    differing += [k for k in own if k not in wanted]
    if differing:
        raise ValueError(
            f"{checkpoint_path}: its network does not match this model (first differing "
            f"weights: {differing[:3]}); fine-tuning needs the same backbone, attention "
            "setting and attribute list"
        )
    module.load_state_dict(wanted, strict=False)


def check_attribute_names(path: str | Path, attributes: Sequence[str], key: str) -> None:
    """Refuse to resume (``key`` ``ckpt_path``) or fine-tune (``init_from``) from a checkpoint
    whose attribute outputs are not the data's, in the same order: its outputs would be trained
    under the wrong names. The message lists the missing, extra and reordered attributes."""
    checkpoint = load_checkpoint(path)
    try:
        hparams = upgrade_hparams(checkpoint.get("hyper_parameters", {}), checkpoint)
    except KeyError:
        raise CheckpointError(
            f"{key}={path}: not an attribute checkpoint (no attribute names)"
        ) from None
    saved, wanted = list(hparams["spec"]["attribute_names"]), list(attributes)
    if saved == wanted:
        return
    missing = [name for name in saved if name not in wanted]
    extra = [name for name in wanted if name not in saved]
    differences = []
    if missing:
        differences.append(f"not in the data: {', '.join(missing)}")
    if extra:
        differences.append(f"not in the checkpoint: {', '.join(extra)}")
    common_saved = [name for name in saved if name in wanted]
    common_wanted = [name for name in wanted if name in saved]
    moved = [a for a, b in zip(common_saved, common_wanted, strict=True) if a != b]
    if moved:
        differences.append(f"in another order: {', '.join(moved)}")
    raise CheckpointError(
        f"{key}={path}: the checkpoint's {len(saved)} attributes are not the data's "
        f"{len(wanted)} in the same order ({'; '.join(differences)}); give data with the "
        f"checkpoint's attributes in its order, or train without {key}"
    )
