"""Rebuild a trained ``AttributeModule`` from its checkpoint: network, identity head, weights.

The module gets its network and identity head injected, so loading first builds them from the
constructor arguments saved with the hyper-parameters. Checkpoints written before the network
was injected kept those arguments as flat module keywords (``attention``, ``last_stride``,
``num_identities``, ``bnneck``, ...); they are read too.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrnet.checkpoints import CheckpointError, load_checkpoint
from attrnet.models.backbone import EMBEDDING_DIM, AttributeResNet50
from attrnet.models.identity import IdentityHead
from attrnet.models.module import AttributeModule

#: The network's keywords among the flat hyper-parameters of a checkpoint from before injection.
_FLAT_NET_KEYS = (
    "attention",
    "attention_stages",
    "last_stride",
    "dropout",
    "weights_path",
    "activation_checkpointing",
    "zero_init_residual",
)


def networks_from_hparams(
    hparams: Mapping[str, Any],
) -> tuple[AttributeResNet50, IdentityHead | None]:
    """The network (without ImageNet weights: the checkpoint has the trained ones) and the
    identity head (or None) that a checkpoint's hyper-parameters describe."""
    net_args = hparams.get("net")
    head_args = hparams.get("identity_head")
    if net_args is None:  # written before the network was injected
        net_args = {k: hparams[k] for k in _FLAT_NET_KEYS if k in hparams}
        net_args["num_attributes"] = len(hparams["attribute_names"])
        if hparams.get("id_loss_weight", 0.0) > 0:
            head_args = {
                "embedding_dim": EMBEDDING_DIM,
                "num_identities": hparams["num_identities"],
                "bnneck": hparams.get("bnneck", True),
            }
    net = AttributeResNet50(**{**net_args, "pretrained": False})
    return net, None if head_args is None else IdentityHead(**head_args)


def load_attribute_module(checkpoint: str | Path, map_location: str = "cpu") -> AttributeModule:
    """Load a trained ``AttributeModule`` safely (``weights_only=True``; no ImageNet reload).

    The file is read once, by ``attrnet.checkpoints.load_checkpoint``, so a missing, corrupt or
    code-carrying checkpoint fails with a ``CheckpointError`` naming it. The module is built as
    Lightning's ``load_from_checkpoint`` builds it (the saved hyper-parameters that are
    constructor arguments, ``on_load_checkpoint``, a strict ``load_state_dict``), around the
    rebuilt network and identity head.
    """
    path = Path(checkpoint)
    saved = load_checkpoint(path, map_location=map_location)
    if "state_dict" not in saved:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    hparams = saved.get("hyper_parameters", {})
    net, identity_head = networks_from_hparams(hparams)
    accepted = inspect.signature(AttributeModule.__init__).parameters
    arguments = {name: value for name, value in hparams.items() if name in accepted}
    arguments.update(net=net, identity_head=identity_head, compile=False)
    module = AttributeModule(**arguments)
    module.on_load_checkpoint(saved)
    module.load_state_dict(saved["state_dict"])
    return module.to(map_location)
