"""Shared fixtures: the real Market-1501 files in ../shared/data (skipped when absent); CPU
allocations that start as NaN (`unwritten_memory_is_nan`)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MAT_FILE = SHARED_DATA / "market1501_attribute" / "market_attribute.mat"
MINI_MARKET = SHARED_DATA / "mini_market1501"
#: c10's switch that fills every CPU allocation with junk (NaN as float32)
JUNK_FILL_FLAG = "FLAGS_caffe2_cpu_allocator_do_junk_fill"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: skipped, with the reason, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        # the marker itself: ``item.keywords`` also holds folder names (a checkout in ``gpu/``)
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Synthetic sets go to one session-wide temporary cache, never the user's home."""
    monkeypatch.setenv("ATTRNET_CACHE", str(tmp_path_factory.getbasetemp() / "attrnet-cache"))


@pytest.fixture
def mat_file() -> Path:
    if not MAT_FILE.is_file():
        pytest.skip("../shared/data/market1501_attribute/market_attribute.mat is absent")
    return MAT_FILE


@pytest.fixture
def mini_market() -> Path:
    if not MINI_MARKET.is_dir():
        pytest.skip("../shared/data/mini_market1501 is absent")
    return MINI_MARKET


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of one tiny ``attrnet-train`` job (real Hydra config, real Trainer)."""
    from attrnet.training import train
    from tests.helpers import TINY_OVERRIDES, compose_config

    run = tmp_path_factory.mktemp("trained_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTRNET_CACHE", str(tmp_path_factory.getbasetemp() / "attrnet-cache"))
        overrides = [*TINY_OVERRIDES, "trainer.accelerator=cpu", "logger=many"]  # + csv/
        train(compose_config("train", run, overrides))
    return run


@pytest.fixture(scope="session")
def identity_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained attention model with an identity branch (``objective=apr``)."""
    from attrnet.training import train
    from tests.helpers import TINY_OVERRIDES, compose_config

    run = tmp_path_factory.mktemp("identity_run")
    overrides = [
        "trainer.accelerator=cpu",
        "model=resnet50_attention",
        "objective=apr",
        "logger=many",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTRNET_CACHE", str(tmp_path_factory.getbasetemp() / "attrnet-cache"))
        train(compose_config("train", run, [*TINY_OVERRIDES, *overrides]))
    return run


@pytest.fixture
def unwritten_memory_is_nan() -> Iterator[None]:
    """Every CPU allocation starts as c10's junk pattern while the test runs: NaN as float32
    and in every second bfloat16. oneDNN's scratch and reorder buffers come from the same
    allocator (ideep registers it), so a kernel that lets bytes it never wrote reach its result
    gives NaN on every machine and in any process, not only where freed memory happens to hold
    NaN (a long test session after the poisoned-batch runs)."""
    import torch

    flag = _junk_fill_flag(Path(torch.__file__).parent / "lib")
    if flag is None:
        pytest.skip("this torch build does not export c10's junk-fill flag")
    flag.value = True
    try:
        assert torch.isnan(torch.empty(64)).all(), "c10's junk fill had no effect"
        yield
    finally:
        flag.value = False


def _junk_fill_flag(lib_dir: Path) -> ctypes.c_bool | None:
    """c10's ``FLAGS_caffe2_cpu_allocator_do_junk_fill``, or None where it is not exported."""
    for name in ("libc10.so", "libc10.dylib", "c10.dll"):
        try:
            return ctypes.c_bool.in_dll(ctypes.CDLL(str(lib_dir / name)), JUNK_FILL_FLAG)
        except (OSError, ValueError):
            continue
    return None
