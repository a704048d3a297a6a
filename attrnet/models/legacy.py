"""Checkpoints from earlier attrnet versions, read as today's.

Two older layouts of the hyper-parameters exist: the module's flat keyword arguments (before the
network was injected: ``attention``, ``num_identities``, ...) and the injected network's
arguments beside a dozen module settings (``net``, ``identity_head``, ``loss_strategy``,
``image_size``, ...). Both become today's ``net`` / ``identity`` / ``optimizer`` / ``spec`` /
``threshold``; the identity head's weights move from ``identity_head.*`` to ``identity.head.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD

RESNET50 = "attrnet.models.backbone.AttributeResNet50"
#: The network's keywords among the flat hyper-parameters of the oldest checkpoints.
_FLAT_NET_KEYS = (
    "attention",
    "attention_stages",
    "last_stride",
    "dropout",
    "weights_path",
    "activation_checkpointing",
    "zero_init_residual",
)
_OLD_HEAD_PREFIX, _HEAD_PREFIX = "identity_head.", "identity.head."


def upgrade_hparams(hparams: Mapping[str, Any], checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Today's hyper-parameters of a checkpoint, whatever version wrote it."""
    if "spec" in hparams:
        return dict(hparams)
    net = dict(hparams.get("net") or {k: hparams[k] for k in _FLAT_NET_KEYS if k in hparams})
    net.setdefault("num_attributes", len(hparams["attribute_names"]))
    net.update(_target_=RESNET50, channels_last=bool(hparams.get("channels_last", False)))
    normalization = checkpoint.get("normalization", {"mean": IMAGENET_MEAN, "std": IMAGENET_STD})
    return {
        "net": net,
        "identity": _identity(hparams),
        "optimizer": list(hparams["optimizer_phases"]),
        "spec": {
            "attribute_names": list(hparams["attribute_names"]),
            "image_size": list(hparams["image_size"]),
            "mean": list(normalization["mean"]),
            "std": list(normalization["std"]),
        },
        "threshold": hparams.get("threshold", 0.5),
    }


def _identity(hparams: Mapping[str, Any]) -> dict[str, Any] | None:
    """The identity branch of an older checkpoint (None without identity losses)."""
    id_weight = float(hparams.get("id_loss_weight", 0.0))
    triplet_weight = float(hparams.get("triplet_loss_weight", 0.0))
    if id_weight == 0 and triplet_weight == 0:
        return None
    head = hparams.get("identity_head")
    if head is None and id_weight > 0:  # the flat layout kept the head's arguments flat
        head = {
            "embedding_dim": 2048,
            "num_identities": hparams["num_identities"],
            "bnneck": hparams.get("bnneck", True),
        }
    return {
        "head": head,
        "attribute_weight": float(hparams.get("attribute_loss_weight", 1.0)),
        "id_weight": id_weight,
        "triplet_weight": triplet_weight,
        "triplet_margin": hparams.get("triplet_margin", 0.3),
        "label_smoothing": float(hparams.get("label_smoothing", 0.1)),
    }


def upgrade_state_dict(checkpoint: dict[str, Any]) -> None:
    """Move an older checkpoint's identity-head weights to today's names, in place."""
    state = checkpoint.get("state_dict")
    if not state or not any(k.startswith(_OLD_HEAD_PREFIX) for k in state):
        return
    moved = len(_OLD_HEAD_PREFIX)
    checkpoint["state_dict"] = {
        (_HEAD_PREFIX + k[moved:] if k.startswith(_OLD_HEAD_PREFIX) else k): v
        for k, v in state.items()
    }
