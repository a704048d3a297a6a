"""Optimizer phases: validation, phase lookup and per-phase learning-rate schedules."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from attrnet.models.module import AttributeModule
from attrnet.optim import (
    build_optimizer,
    build_scheduler,
    lr_factor,
    normalize_phase,
    phase_for_epoch,
    scheduler_config,
)


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
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        normalize_phase({"optimizer": "sgd", "epochs": 0})


def test_schedules_by_hand() -> None:
    cosine = normalize_phase(
        {
            "optimizer": "adamw",
            "epochs": 5,
            "warmup_epochs": 1,
            "warmup_start_factor": 0.2,
            "schedule": "cosine",
            "min_lr_factor": 0.0,
        }
    )
    assert lr_factor(cosine, 0) == pytest.approx(0.2)
    assert lr_factor(cosine, 1) == pytest.approx(1.0)
    assert lr_factor(cosine, 3) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))
    step = normalize_phase(
        {"optimizer": "sgd", "epochs": 9, "schedule": "step", "step_size": 3, "gamma": 0.5}
    )
    assert [lr_factor(step, e) for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]


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
    module = AttributeModule(["hat", "bag"], [0.5, 0.5], image_size=[32, 16])
    for precision, clip, fused in [
        ("16-mixed", 1.0, False),
        ("16-mixed", None, True),
        ("bf16-mixed", 1.0, True),
        ("32-true", 1.0, True),
    ]:
        module._trainer = SimpleNamespace(precision=precision, gradient_clip_val=clip)
        optimizer = module.configure_optimizers()["optimizer"]
        assert bool(optimizer.defaults["fused"]) is fused, (precision, clip)
