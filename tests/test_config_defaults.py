"""The configs are the one source of truth: no default in attrnet's code differs from the config
value that normally supplies it.

Every config file that builds one of attrnet's parts (a ``_target_`` node) is its home config:
each constructor argument it sets that attrnet's code also defaults must agree. Files that only
change a part built elsewhere (``resnet50_attention``, a dataset's batch size) are choices, not
homes, and are not compared.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import get_method
from omegaconf import OmegaConf

from tests.conftest import REPO

CONFIG_FILES = sorted((REPO / "conf").rglob("*.yaml"))


def _parts(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ``_target_`` node inside ``node`` that names attrnet code, with its path."""
    if isinstance(node, dict):
        if str(node.get("_target_", "")).startswith("attrnet."):
            yield where, node
        for key, value in node.items():
            yield from _parts(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _parts(value, f"{where}[{index}]")


def _own_parameters(target: Any) -> dict[str, inspect.Parameter]:
    """The parameters attrnet's own code defines for ``target`` (inherited third-party
    constructors, e.g. Lightning's ModelCheckpoint, have their own defaults)."""
    function = target.__init__ if inspect.isclass(target) else target
    if not getattr(function, "__module__", "").startswith("attrnet"):
        return {}
    return dict(inspect.signature(target).parameters)


def _same(code: Any, config: Any) -> bool:
    if isinstance(code, tuple | list) and isinstance(config, tuple | list):
        return list(code) == list(config)
    return code == config


def _differences(path: Path) -> list[str]:
    plain = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    differing = []
    for where, node in _parts(plain):
        parameters = _own_parameters(get_method(node["_target_"]))
        for name, value in node.items():
            parameter = parameters.get(name)
            if parameter is None or parameter.default is inspect.Parameter.empty:
                continue
            if value == "???" or (isinstance(value, str) and "${" in value):  # set elsewhere
                continue
            if not _same(parameter.default, value):
                differing.append(f"{where}.{name}: code {parameter.default!r}, config {value!r}")
    return differing


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(REPO / "conf")))
def test_code_defaults_agree_with_their_home_config(path: Path) -> None:
    differing = _differences(path)
    assert not differing, f"{path.name}:\n" + "\n".join(differing)


def test_the_check_sees_the_parts() -> None:
    """The homes of the main parts are found (a broken walk would pass every file)."""
    homes = {
        node["_target_"]
        for path in CONFIG_FILES
        for _, node in _parts(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    }
    assert {
        "attrnet.data.datamodule.AttributeDataModule",
        "attrnet.models.module.AttributeModule",
        "attrnet.models.backbone.AttributeResNet50",
        "attrnet.models.timm_net.TimmAttributeNetwork",
        "attrnet.models.identity.IdentityBranch",
        "attrnet.models.losses.WeightedBCEWithLogits.from_ratio",
        "attrnet.callbacks.NonFiniteLossGuard",
    } <= homes
