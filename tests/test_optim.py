"""Optimizer phases: validation, phase lookup and per-phase learning-rate schedules."""

from __future__ import annotations

import logging
import math
import re
from types import SimpleNamespace

import pytest
import torch

from attrnet.optim import (
    announce_dropped_phases,
    build_optimizer,
    build_scheduler,
    normalize_phase,
    normalize_phases,
    phase_for_epoch,
    scheduler_config,
)
from tests.helpers import make_module


def test_phase_for_epoch_follows_the_plan() -> None:
    phases = [
        normalize_phase({"optimizer": "adamw", "epochs": 2}),
        normalize_phase({"optimizer": "sgd", "epochs": 3}),
    ]
    assert [phase_for_epoch(phases, e) for e in range(7)] == [0, 0, 1, 1, 1, 1, 1]


def test_normalize_rejects_bad_phases() -> None:
    with pytest.raises(ValueError, match="optimizer must be one of"):
        normalize_phase({"optimizer": "lamb", "epochs": 1})
    with pytest.raises(ValueError, match="unknown key"):
        normalize_phase({"optimizer": "sgd", "epochs": 1, "lrr": 0.1})
    with pytest.raises(ValueError, match="warmup_start_factor must be in"):
        normalize_phase({"optimizer": "sgd", "epochs": 1, "warmup_start_factor": 0.0})
    for epochs in (-1, 1.5, None, "2"):
        with pytest.raises(
            ValueError,
            match=r"^optimizer phase 'sgd': epochs must be a whole number >= 0 \(0 drops the "
            rf"phase\), got {re.escape(repr(epochs))}$",
        ):
            normalize_phase({"name": "sgd", "optimizer": "sgd", "epochs": epochs})


def test_a_phase_of_zero_epochs_is_dropped_and_resume_finds_the_right_phase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``second_epochs=0`` means no swap; a plan with a dropped phase keeps the phase indices
    that checkpoints store consistent, and names the plan when a checkpoint's phase is not in it."""
    plan = [
        {"name": "warm", "optimizer": "adamw", "epochs": 2},
        {"name": "sgd", "optimizer": "sgd", "epochs": 0},
        {"name": "long", "optimizer": "adam", "epochs": 3},
    ]
    assert [p["name"] for p in normalize_phases(plan)] == ["warm", "long"]
    with pytest.raises(ValueError, match="every phase has 0 epochs"):
        normalize_phases([{**plan[1]}])
    with caplog.at_level(logging.INFO):
        announce_dropped_phases(plan)
    said = [r.getMessage() for r in caplog.records if "0 epochs" in r.getMessage()]
    assert said == ["Optimizer phase(s) 'sgd' of 0 epochs left out (no swap to them)"]

    module = make_module(["hat", "bag"], phases=plan)
    assert [module.optimizer_plan.phase_for_epoch(e) for e in range(6)] == [0, 0, 1, 1, 1, 1]
    module.on_load_checkpoint({"optimizer_phase": 1})  # saved in epoch 2: the adam phase
    assert module.active_phase == 1
    assert isinstance(module.configure_optimizers()["optimizer"], torch.optim.Adam)
    plan_names = r"saved in optimizer phase 3, but the plan has 2 \(warm, long\)"
    with pytest.raises(ValueError, match=plan_names):
        module.on_load_checkpoint({"optimizer_phase": 2})


def _expected_factor(phase: dict, epoch: int) -> float:
    """The schedules' formulas, written out independently of torch's schedulers."""
    warmup = phase["warmup_epochs"]
    if epoch < warmup:
        start = phase["warmup_start_factor"]
        return start + (1.0 - start) * epoch / warmup
    if phase["schedule"] == "cosine":
        progress = min((epoch - warmup) / max(phase["epochs"] - warmup, 1), 1.0)
        floor = phase["min_lr_factor"]
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if phase["schedule"] == "step":
        return phase["gamma"] ** ((epoch - warmup) // phase["step_size"])
    return 1.0


def _scheduled_rates(phase: dict, epochs: int) -> list[float]:
    """The learning rate of each epoch under ``build_scheduler`` (stepped once per epoch)."""
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(2))], phase)
    scheduler = build_scheduler(optimizer, phase)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(
    "settings",
    [
        {
            "optimizer": "adamw",
            "epochs": 8,
            "lr": 1.5e-3,
            "schedule": "cosine",
            "min_lr_factor": 0.1,
        },
        {"optimizer": "sgd", "epochs": 1, "lr": 1e-3, "schedule": "cosine"},
        {"optimizer": "adamw", "epochs": 100, "lr": 1e-3, "warmup_epochs": 2, "schedule": "cosine"},
        {
            "optimizer": "adamw",
            "epochs": 5,
            "warmup_epochs": 1,
            "warmup_start_factor": 0.2,
            "schedule": "cosine",
            "min_lr_factor": 0.0,
        },
        {
            "optimizer": "adam",
            "epochs": 120,
            "lr": 3.5e-4,
            "warmup_epochs": 10,
            "schedule": "step",
            "step_size": 30,
            "gamma": 0.1,
        },
        {"optimizer": "sgd", "epochs": 9, "schedule": "step", "step_size": 3, "gamma": 0.5},
        {"optimizer": "sgd", "epochs": 4, "warmup_epochs": 6},
        {"optimizer": "sgd", "epochs": 3, "warmup_epochs": 5, "schedule": "cosine"},
    ],
)
def test_schedules_follow_their_formulas(settings: dict) -> None:
    """Every epoch's rate, also past the phase's end (a last phase trained longer than planned:
    cosine holds its floor), matches the formula to rounding (torch's schedulers step
    multiplicatively: a few ulps, never more)."""
    phase = normalize_phase(settings)
    epochs = phase["epochs"] + 12
    expected = [phase["lr"] * _expected_factor(phase, e) for e in range(epochs)]
    assert _scheduled_rates(phase, epochs) == pytest.approx(expected, rel=1e-13, abs=0)


def test_schedules_by_hand() -> None:
    cosine = normalize_phase(
        {
            "optimizer": "adamw",
            "epochs": 5,
            "lr": 1.0,
            "warmup_epochs": 1,
            "warmup_start_factor": 0.2,
            "schedule": "cosine",
            "min_lr_factor": 0.0,
        }
    )
    rates = _scheduled_rates(cosine, 7)
    assert rates[:2] == pytest.approx([0.2, 1.0])
    assert rates[3] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))
    assert rates[5:] == [0.0, 0.0]
    step = normalize_phase(
        {
            "optimizer": "sgd",
            "epochs": 9,
            "lr": 1.0,
            "schedule": "step",
            "step_size": 3,
            "gamma": 0.5,
        }
    )
    assert [_scheduled_rates(step, 7)[e] for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]


def test_built_optimizers_and_scheduler() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, normalize_phase({"optimizer": "sgd", "epochs": 1, "lr": 0.1}))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] is True
    phase = normalize_phase(
        {
            "optimizer": "adamw",
            "epochs": 4,
            "lr": 0.1,
            "schedule": "step",
            "step_size": 1,
            "gamma": 0.5,
        }
    )
    adamw = build_optimizer(params, phase)
    scheduler = build_scheduler(adamw, phase)
    rates = []
    for _ in range(3):
        rates.append(adamw.param_groups[0]["lr"])
        adamw.step()
        scheduler.step()
    assert rates == pytest.approx([0.1, 0.05, 0.025])


def test_plateau_schedule_watches_the_validation_loss() -> None:
    """lr x gamma once the loss has not improved for ``patience`` epochs (ReduceLROnPlateau)."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    phase = normalize_phase(
        {"optimizer": "adam", "epochs": 30, "lr": 1e-4, "schedule": "plateau", "patience": 2}
    )
    adam = build_optimizer(params, phase)
    config = scheduler_config(adam, phase)
    assert config["monitor"] == "val/loss" and config["interval"] == "epoch"
    rates = []
    for loss in (1.0, 0.9, 0.95, 0.95, 0.95, 0.95):
        config["scheduler"].step(loss)
        rates.append(adam.param_groups[0]["lr"])
    assert rates == pytest.approx([1e-4, 1e-4, 1e-4, 1e-4, 1e-5, 1e-5])
    with pytest.raises(ValueError, match="plateau schedule takes no warm-up"):
        normalize_phase(
            {"optimizer": "adam", "epochs": 3, "schedule": "plateau", "warmup_epochs": 1}
        )


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_fused_kernels_by_default_with_the_same_steps(name: str) -> None:
    """The fused step (the default where the parameters allow it) follows the unfused one."""
    torch.manual_seed(0)
    start, grads = torch.randn(50), [torch.randn(50) for _ in range(3)]
    weights = {}
    for fused in (True, False):
        param = torch.nn.Parameter(start.clone())
        phase = normalize_phase({"optimizer": name, "epochs": 1, "lr": 0.1, "fused": fused})
        optimizer = build_optimizer([param], phase)
        assert bool(optimizer.defaults["fused"]) is fused
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        weights[fused] = param.detach()
    torch.testing.assert_close(weights[True], weights[False])
    whole = torch.nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False)
    assert not build_optimizer([whole], normalize_phase({"optimizer": name, "epochs": 1})).defaults[
        "fused"
    ]


def test_fp16_gradient_clipping_gets_unfused_steps() -> None:
    """Lightning refuses gradient clipping under fp16 AMP with a fused optimizer."""
    module = make_module(["hat", "bag"])
    for precision, clip, fused in [
        ("16-mixed", 1.0, False),
        ("16-mixed", None, True),
        ("bf16-mixed", 1.0, True),
        ("32-true", 1.0, True),
    ]:
        module._trainer = SimpleNamespace(precision=precision, gradient_clip_val=clip)
        optimizer = module.configure_optimizers()["optimizer"]
        assert bool(optimizer.defaults["fused"]) is fused, (precision, clip)


def test_checkpoints_with_the_old_lambda_schedule_resume_on_the_same_rates() -> None:
    """A checkpoint written when the schedule was a ``LambdaLR`` (its state built here as the
    old code did) resumes at the same epoch of the same schedule."""
    settings = {"optimizer": "sgd", "epochs": 6, "lr": 0.1, "warmup_epochs": 2}
    phases = [{**settings, "schedule": "cosine"}]
    module = make_module(["hat", "bag"], phases=phases)
    phase = module.optimizer_plan.phases[0]
    old_optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], phase)
    old = torch.optim.lr_scheduler.LambdaLR(old_optimizer, lambda e: _expected_factor(phase, e))
    for _ in range(3):
        old_optimizer.step()
        old.step()
    checkpoint = {"optimizer_phase": 0, "lr_schedulers": [old.state_dict()]}
    module.on_load_checkpoint(checkpoint)
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], phase)
    scheduler = build_scheduler(optimizer, phase)
    optimizer.load_state_dict(old_optimizer.state_dict())  # in Lightning's order
    scheduler.load_state_dict(checkpoint["lr_schedulers"][0])
    rates = []
    for _ in range(3):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.1 * _expected_factor(phase, e) for e in (3, 4, 5)]
    assert rates == pytest.approx(expected, rel=1e-13, abs=0)
