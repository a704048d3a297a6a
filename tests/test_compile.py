"""The compile switch (``model.net.compile``): torch.compile's default mode, or CUDA graphs
(``reduce-overhead``) that apply on CUDA only and change nothing on the CPU path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attrnet.models.backbone import AttributeResNet50
from attrnet.models.network import compile_mode
from attrnet.training import train
from tests.helpers import TINY_OVERRIDES, compose_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_compile_modes_per_device() -> None:
    assert compile_mode(False, CUDA) is None and compile_mode(False, CPU) is None
    assert compile_mode(True, CPU) == compile_mode(True, CUDA) == "default"
    assert compile_mode("reduce-overhead", CUDA) == "reduce-overhead"
    assert compile_mode("reduce-overhead", CPU) is None  # no CUDA graph to capture
    with pytest.raises(ValueError, match="compile must be true, false or 'reduce-overhead'"):
        AttributeResNet50(2, compile="max-speed")


def test_compile_happens_once_when_a_fit_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, mode: calls.append(mode) or fn)
    net = AttributeResNet50(2, compile=True)
    names = [name for name, _ in net.named_parameters()]
    assert calls == []  # nothing at construction (a checkpoint loads the same network)
    assert net.compile_for(CPU) == "default" and net.compile_for(CPU) == "default"
    assert calls == ["default"]
    assert [name for name, _ in net.named_parameters()] == names


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["metrics"]


def test_cuda_graphs_change_nothing_on_the_cpu(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """A seeded CPU run with ``compile=reduce-overhead`` equals the same run without it."""
    base = [*TINY_OVERRIDES, "trainer.accelerator=cpu", "trainer.deterministic=true"]
    train(compose_config("train", tmp_path / "plain", base))
    graphs = [*base, "model.net.compile=reduce-overhead"]
    with caplog.at_level("INFO"):
        train(compose_config("train", tmp_path / "graphs", graphs))
    assert "model.net.compile=reduce-overhead: nothing to compile on cpu" in caplog.text
    assert _metrics(tmp_path / "graphs") == _metrics(tmp_path / "plain")


@pytest.mark.gpu
def test_cuda_graphs_train_on_cuda(tmp_path: Path) -> None:
    overrides = [*TINY_OVERRIDES, "trainer=gpu", "model.net.compile=reduce-overhead"]
    metrics = train(compose_config("train", tmp_path, overrides)).metrics
    assert 0.0 <= metrics["mA"] <= 1.0 and metrics["loss"] == metrics["loss"]  # finite
