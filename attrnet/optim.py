"""Optimizer phases: each phase names an optimizer, its settings and its epoch-wise schedule.

A phase is a plain dict (so it lives in checkpoints and Hydra configs), e.g.
``{"optimizer": "adamw", "epochs": 50, "lr": 3e-4, "weight_decay": 5e-4,
"warmup_epochs": 2, "schedule": "cosine"}``. The schedule of a phase starts afresh at the
phase's first epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("constant", "cosine", "step", "plateau")
#: What the plateau schedule watches: lr x ``gamma`` after ``patience`` epochs without a lower
#: validation loss (Rethinking_of_PAR's ReduceLROnPlateau recipe).
PLATEAU_MONITOR = "val/loss"
PHASE_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "nesterov": True,
    "betas": (0.9, 0.999),
    "warmup_epochs": 0,
    "warmup_start_factor": 0.1,
    "schedule": "constant",
    "min_lr_factor": 0.01,
    "step_size": 30,
    "gamma": 0.1,
    "patience": 4,
    "fused": True,
}
#: ``total_iters`` of a ``ConstantLR`` that never ends (a cosine schedule's floor).
_FOREVER = 2**62
#: Devices with fused (one kernel for all parameters) SGD, Adam and AdamW steps.
FUSED_DEVICES = ("cpu", "cuda")


def normalize_phase(phase: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and validate one phase; errors name the phase and the offending key."""
    label = f"optimizer phase {phase.get('name') or phase.get('optimizer')!r}"
    unknown = set(phase) - {"optimizer", "epochs", "name", *PHASE_DEFAULTS}
    if unknown:
        raise ValueError(f"{label}: unknown key(s) {sorted(unknown)}")
    merged = {**PHASE_DEFAULTS, **phase}
    name = str(merged.get("optimizer", "")).lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"{label}: optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if merged["schedule"] not in SCHEDULES:
        raise ValueError(f"{label}: schedule must be one of {SCHEDULES}")
    if not 0 < merged["warmup_start_factor"] <= 1:
        raise ValueError(f"{label}: warmup_start_factor must be in (0, 1]")
    if merged["schedule"] == "plateau" and merged["warmup_epochs"]:
        raise ValueError(f"{label}: the plateau schedule takes no warm-up")
    epochs = merged.get("epochs")
    whole = isinstance(epochs, (int, float)) and not isinstance(epochs, bool)
    if not (whole and float(epochs).is_integer() and epochs >= 0):
        raise ValueError(
            f"{label}: epochs must be a whole number >= 0 (0 drops the phase), got {epochs!r}"
        )
    merged.update(optimizer=name, epochs=int(epochs), betas=tuple(merged["betas"]))
    merged.setdefault("name", name)
    return merged


def normalize_phases(phases: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate a plan and drop its phases of 0 epochs (``optimizer.second_epochs=0``: no swap).

    Checkpoints store the index of their phase in this list, so a resume with the same plan
    continues in the right phase."""
    normalized = [normalize_phase(dict(phase)) for phase in phases]
    kept = [phase for phase in normalized if phase["epochs"] > 0]
    if not kept:
        raise ValueError("optimizer.phases: every phase has 0 epochs, nothing to train")
    return kept


def announce_dropped_phases(phases: Iterable[dict[str, Any]]) -> None:
    """Say once (rank zero) which phases of a plan have 0 epochs and are left out."""
    dropped = [p.get("name") or p.get("optimizer") for p in phases if p.get("epochs") == 0]
    if dropped:
        names = ", ".join(repr(name) for name in dropped)
        rank_zero_info(f"Optimizer phase(s) {names} of 0 epochs left out (no swap to them)")


def saved_phase(phases: Sequence[dict[str, Any]], index: int) -> int:
    """The phase index a checkpoint was saved in, checked against the plan it resumes with."""
    if not 0 <= int(index) < len(phases):
        names = ", ".join(phase["name"] for phase in phases)
        raise ValueError(
            f"the checkpoint was saved in optimizer phase {int(index) + 1}, but the plan has "
            f"{len(phases)} ({names}); resume with the plan it was trained with"
        )
    return int(index)


def phase_for_epoch(phases: Sequence[dict[str, Any]], epoch: int) -> int:
    """Index of the phase that trains ``epoch``; epochs past the plan stay in the last phase."""
    end = 0
    for index, phase in enumerate(phases):
        end += phase["epochs"]
        if epoch < end:
            return index
    return len(phases) - 1


def build_optimizer(
    params: Iterable[torch.nn.Parameter], phase: dict[str, Any]
) -> torch.optim.Optimizer:
    """The phase's optimizer over ``params``; with ``fused`` (the default) its fused kernel where
    every parameter allows one (a ResNet50 AdamW step on the CPU: 22 ms instead of 108 ms)."""
    params = list(params)
    fused = phase["fused"] and all(
        p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params
    )
    if phase["optimizer"] == "sgd":
        return torch.optim.SGD(
            params,
            lr=phase["lr"],
            momentum=phase["momentum"],
            weight_decay=phase["weight_decay"],
            nesterov=phase["nesterov"] and phase["momentum"] > 0,
            fused=fused,
        )
    cls = torch.optim.AdamW if phase["optimizer"] == "adamw" else torch.optim.Adam
    return cls(
        params,
        lr=phase["lr"],
        betas=phase["betas"],
        weight_decay=phase["weight_decay"],
        fused=fused,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, phase: dict[str, Any]
) -> SequentialLR | ReduceLROnPlateau:
    """The phase's epoch-wise schedule from its beginning, from ``torch.optim.lr_scheduler``:
    ``LinearLR`` warm-up, then ``CosineAnnealingLR`` (held at its floor past the phase's end),
    ``StepLR`` or a constant rate, chained by ``SequentialLR``; or ``ReduceLROnPlateau``."""
    if phase["schedule"] == "plateau":
        factor, patience = phase["gamma"], phase["patience"]
        return ReduceLROnPlateau(optimizer, "min", factor=factor, patience=patience)
    warmup = phase["warmup_epochs"]
    schedulers: list[LRScheduler] = []
    if warmup > 0:
        schedulers.append(
            LinearLR(optimizer, phase["warmup_start_factor"], 1.0, total_iters=warmup)
        )
    if phase["schedule"] == "cosine":
        span = max(phase["epochs"] - warmup, 1)
        floor = phase["min_lr_factor"]
        schedulers.append(CosineAnnealingLR(optimizer, span, eta_min=phase["lr"] * floor))
        schedulers.append(ConstantLR(optimizer, floor, total_iters=_FOREVER))
    elif phase["schedule"] == "step":
        schedulers.append(StepLR(optimizer, phase["step_size"], phase["gamma"]))
    else:
        schedulers.append(ConstantLR(optimizer, 1.0, total_iters=0))
    milestones = [warmup] if warmup > 0 else []
    if phase["schedule"] == "cosine":
        milestones.append(max(phase["epochs"], warmup + 1))
    return SequentialLR(optimizer, schedulers, milestones)


def upgrade_scheduler_state(state: dict[str, Any], phase: dict[str, Any]) -> dict[str, Any]:
    """A schedule state saved before the schedules came from ``torch.optim.lr_scheduler`` (a
    ``LambdaLR``, with ``lr_lambdas``) as the state of ``build_scheduler`` at the same epoch, so
    such checkpoints still resume; other states are returned as they are."""
    if "lr_lambdas" not in state:
        return state
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=phase["lr"])
    scheduler = build_scheduler(optimizer, phase)
    for _ in range(int(state["last_epoch"])):
        optimizer.step()
        scheduler.step()
    return scheduler.state_dict()


def scheduler_config(optimizer: torch.optim.Optimizer, phase: dict[str, Any]) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry for a phase: stepped every epoch, and for the plateau
    schedule on the validation loss."""
    config: dict[str, Any] = {"scheduler": build_scheduler(optimizer, phase), "interval": "epoch"}
    if phase["schedule"] == "plateau":
        config["monitor"] = PLATEAU_MONITOR
    return config


class OptimizerPlan:
    """A run's optimizer phases (``conf/optimizer``: ``phases``), checked once and injected into
    the module, which builds the active phase's optimizer and schedule from it."""

    def __init__(self, phases: Sequence[Mapping[str, Any]]) -> None:
        if not phases:
            raise ValueError("optimizer: the plan has no phases")
        self.phases = normalize_phases(phases)

    @property
    def epochs(self) -> int:
        """The epochs of all phases together."""
        return sum(phase["epochs"] for phase in self.phases)

    def phase_for_epoch(self, epoch: int) -> int:
        return phase_for_epoch(self.phases, epoch)

    def configure(
        self, params: Iterable[torch.nn.Parameter], index: int, fused: bool = True
    ) -> dict[str, Any]:
        """Lightning's ``configure_optimizers`` answer for phase ``index``; ``fused=False``
        forbids fused steps (fp16 AMP with gradient clipping, which unscales outside them)."""
        phase = self.phases[index] if fused else {**self.phases[index], "fused": False}
        optimizer = build_optimizer(params, phase)
        return {"optimizer": optimizer, "lr_scheduler": scheduler_config(optimizer, phase)}
