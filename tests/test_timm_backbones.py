"""timm backbones (``model=timm``): ConvNeXt-T, ViT-S/16 and Swin-T at a small non-square size
train, export with onnxruntime parity, load and predict as ResNet50 does; their weights come from
a local ``.pth`` / ``.safetensors`` file or timm's cache, and nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

import attrnet
from attrnet.checkpoints import load_checkpoint
from attrnet.cli.export import export
from tests.helpers import TINY_OVERRIDES, compose_config, needs

pytestmark = needs("timm", "onnx", "onnxruntime")

SIZE = (64, 32)  # >= 32 px per side: oneDNN's CPU bf16 kernels misbehave on 1-px-wide maps
TIMM_TINY = [
    *(o for o in TINY_OVERRIDES if not o.startswith("data.image_size=")),
    f"data.image_size=[{SIZE[0]},{SIZE[1]}]",  # the synthetic set's native 64x32
    "trainer.accelerator=cpu",
    "model=timm",
]
SWIN = "swin_tiny_patch4_window7_224"


def _run_script(name: str, arguments: list[str], cache: Path, cwd: Path) -> str:
    """Run console script ``name`` as a user does (offline); its stdout, once it succeeded."""
    env = {**os.environ, "ATTRNET_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    script = str(Path(sys.executable).parent / name)
    done = subprocess.run([script, *arguments], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _query(cache: Path) -> Path:
    return next(cache.glob("market_synthetic-*")) / "query"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "attrnet-cache"  # conftest's session-wide cache


@pytest.fixture(scope="module")
def swin_run(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    """``attrnet-train``: Swin-T with the gpu_4gb settings (checkpointing), bf16 and APR."""
    run = tmp_path_factory.mktemp("swin_run")
    overrides = [
        *TIMM_TINY,
        f"model.net.name={SWIN}",
        "experiment=gpu_4gb",
        "objective=apr",
        "trainer.precision=bf16-mixed",
        f"hydra.run.dir={run}",
    ]
    _run_script("attrnet-train", overrides, cache, run)
    return run


@pytest.fixture(scope="module", params=["convnext_tiny", "vit_small_patch16_224"])
def timm_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cache: Path
) -> Path:
    """A tiny training run of a timm backbone from Python, as the console script composes it."""
    from attrnet.training import train

    run = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTRNET_CACHE", str(cache))
        train(compose_config("train", run, [*TIMM_TINY, f"model.net.name={request.param}"]))
    return run


def test_swin_trains_exports_and_predicts_through_the_console_scripts(
    swin_run: Path, cache: Path, tmp_path: Path
) -> None:
    checkpoint = swin_run / "checkpoints" / "last.ckpt"
    net = load_checkpoint(checkpoint)["hyper_parameters"]["net"]
    assert (net["name"], net["img_size"], net["activation_checkpointing"]) == (
        SWIN,
        [64, 32],
        [1, 2],
    )
    metrics = json.loads((swin_run / "metrics.json").read_text())
    assert 0 < metrics["summary"]["mA"] <= 1

    onnx = tmp_path / "swin.onnx"
    exported = _run_script(
        "attrnet-export", [f"ckpt_path={checkpoint}", f"output={onnx}"], cache, tmp_path
    )
    assert "uint8 RGB (N, 3, 64, 32)" in exported
    assert "max |onnxruntime - PyTorch| identity" in exported

    query = _query(cache)
    csv = tmp_path / "classification_test.csv"
    arguments = [f"ckpt_path={checkpoint}", f"images_dir={query}", f"output={csv}"]
    _run_script("attrnet-predict", arguments, cache, tmp_path)
    assert len(csv.read_text().splitlines()) == 1 + len(list(query.iterdir()))

    crops = sorted(query.glob("*.jpg"))[:6]
    torch_model = attrnet.load(checkpoint, device="cpu")
    onnx_model = attrnet.load(onnx, device="cpu")
    for kind in ("embedding", "identity"):  # re-ID features: the identity head sits on Swin's 768
        expected = torch_model.features(crops, kind=kind)
        assert expected.shape[0] == len(crops) and np.isfinite(expected).all()
        np.testing.assert_allclose(onnx_model.features(crops, kind=kind), expected, atol=1e-4)
    assert torch_model.features(crops, kind="embedding").shape[1] == 768


def test_timm_backbone_trains_exports_loads_and_predicts(
    timm_run: Path, cache: Path, tmp_path: Path
) -> None:
    from tests.test_inference import reference_outputs

    checkpoint = timm_run / "checkpoints" / "last.ckpt"
    assert json.loads((timm_run / "metrics.json").read_text())["summary"]["mA"] > 0
    output = tmp_path / "model.onnx"
    export(compose_config("export", tmp_path, [f"ckpt_path={checkpoint}", f"output={output}"]))

    crops = sorted(_query(cache).glob("*.jpg"))[:6]
    expected = reference_outputs(checkpoint, crops)  # the training data path, in PyTorch
    name = load_checkpoint(checkpoint)["hyper_parameters"]["net"]["name"]
    width = {"convnext_tiny": 768, "vit_small_patch16_224": 384}[name]
    assert expected["embedding"].shape == (len(crops), width)
    for model in (attrnet.load(checkpoint, device="cpu"), attrnet.load(output, device="cpu")):
        table = model.predict(crops)
        np.testing.assert_allclose(table.to_numpy(), expected["probabilities"].numpy(), atol=1e-4)
        embedding = model.features(crops, kind="embedding")
        np.testing.assert_allclose(embedding, expected["embedding"].numpy(), atol=1e-4)


def _net_from_config(tmp_path: Path, *overrides: str):
    """The network exactly as attrnet-train instantiates it (3 attributes)."""
    cfg = compose_config("train", tmp_path, [*TIMM_TINY, *overrides])
    return instantiate(cfg.model.net, num_attributes=3, _convert_="all")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_path_loads_a_timm_state_dict_resized_to_the_input(
    tmp_path: Path, suffix: str
) -> None:
    """A 224x224 ViT's state dict (with its 1000-way classifier) saved as .pth or .safetensors
    lands in the 64x32 network: every tensor equal, the position embedding resampled by timm's
    filter to the 4x2 patch grid."""
    import safetensors.torch
    import timm

    torch.manual_seed(0)
    source = timm.create_model("vit_tiny_patch16_224").state_dict()
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pth":
        torch.save(source, path)
    else:
        safetensors.torch.save_file(source, path)
    name = "model.net.name=vit_tiny_patch16_224"
    net = _net_from_config(
        tmp_path, name, "model.net.pretrained=true", f"model.net.weights_path={path}"
    )
    loaded = net.trunk.state_dict()
    assert loaded["pos_embed"].shape == (1, 1 + 4 * 2, 192)
    for key, value in loaded.items():
        if key != "pos_embed":
            assert torch.equal(value, source[key]), key
    assert torch.equal(loaded["pos_embed"][:, 0], source["pos_embed"][:, 0])  # the class token's
    grid = source["pos_embed"][:, 1:].reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(4, 2), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(loaded["pos_embed"][:, 1:], resized.flatten(2).transpose(1, 2))
    fresh = _net_from_config(tmp_path, name)  # pretrained=false: random weights, file unused
    assert not torch.equal(
        fresh.trunk.state_dict()["blocks.0.mlp.fc1.weight"], source["blocks.0.mlp.fc1.weight"]
    )


VIT_PRETRAINED = ["model.net.name=vit_tiny_patch16_224", "model.net.pretrained=true"]


def _message(error: pytest.ExceptionInfo) -> str:
    """The error itself, without Hydra's instantiation wrapper."""
    return str(error.value.__cause__ or error.value)


def test_absent_or_wrong_weight_files_fail_naming_them(tmp_path: Path) -> None:
    import timm

    absent = tmp_path / "absent.safetensors"
    with pytest.raises(Exception) as error:
        _net_from_config(tmp_path, *VIT_PRETRAINED, f"model.net.weights_path={absent}")
    assert _message(error) == f"timm weight file {absent} (model.net.weights_path) does not exist"

    other = tmp_path / "resnet18.pth"  # another network's weights
    torch.save(timm.create_model("resnet18").state_dict(), other)
    with pytest.raises(Exception) as error:
        _net_from_config(tmp_path, *VIT_PRETRAINED, f"model.net.weights_path={other}")
    message = _message(error)
    assert message.startswith(f"{other} does not fit timm's vit_tiny_patch16_224: ")
    assert "150 tensors missing, e.g. ['cls_token'" in message
    assert "122 tensors unexpected, e.g. ['conv1.weight'" in message

    junk = tmp_path / "junk.pth"
    junk.write_text("not weights")
    with pytest.raises(Exception) as error:
        _net_from_config(tmp_path, *VIT_PRETRAINED, f"model.net.weights_path={junk}")
    assert _message(error).startswith(f"{junk}: not a readable .pth or .safetensors weight file")
    assert "\n" not in _message(error)


def test_pretrained_reads_timm_cache_and_never_downloads(tmp_path: Path, monkeypatch) -> None:
    """``pretrained=true`` without a file: the file timm's ``pretrained=True`` leaves in the
    Hugging Face cache is loaded; with an empty cache a one-line error says what to do."""
    import huggingface_hub.constants
    import safetensors.torch
    import timm

    hub = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(Exception) as error:
        _net_from_config(tmp_path, *VIT_PRETRAINED)
    message = _message(error)
    assert message.startswith("no cached weights of timm's vit_tiny_patch16_224 (timm/vit_tiny")
    assert "nothing is downloaded" in message and "\n" not in message

    torch.manual_seed(1)
    weights = timm.create_model("vit_tiny_patch16_224", img_size=SIZE).state_dict()
    repo = hub / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    safetensors.torch.save_file(weights, repo / "snapshots" / "abc123" / "model.safetensors")
    loaded = _net_from_config(tmp_path, *VIT_PRETRAINED).trunk.state_dict()
    assert "head.weight" in weights and "head.weight" not in loaded  # the classifier is dropped
    assert all(torch.equal(value, weights[key]) for key, value in loaded.items())


def test_without_timm_the_message_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now fails
    with pytest.raises(Exception, match=r"needs the timm package: pip install 'attrnet\[timm\]'"):
        _net_from_config(tmp_path, "model.net.name=convnext_tiny")


def test_a_misspelt_name_gets_the_close_ones(tmp_path: Path) -> None:
    with pytest.raises(
        Exception, match="'convnext_tinny' is not a timm model; did you mean convnext_tiny"
    ):
        _net_from_config(tmp_path, "model.net.name=convnext_tinny")


def test_activation_checkpointing_recomputes_in_training_only(tmp_path: Path) -> None:
    """timm's gradient checkpointing keeps far fewer tensors for backward, gives the same
    gradients, and is off in evaluation (export, prediction)."""
    from attrnet.models.timm_net import TimmAttributeNetwork

    images = torch.randn(2, 3, *SIZE)

    def saved_and_gradients(net: TimmAttributeNetwork) -> tuple[int, list[torch.Tensor]]:
        count = 0

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            nonlocal count
            count += 1
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = net(images).sum()
        loss.backward()
        return count, [p.grad for p in net.parameters()]

    torch.manual_seed(0)
    plain = TimmAttributeNetwork(3, "vit_tiny_patch16_224", img_size=SIZE).train()
    torch.manual_seed(0)
    checkpointed = TimmAttributeNetwork(
        3, "vit_tiny_patch16_224", img_size=SIZE, activation_checkpointing=[1, 2]
    ).train()
    saved_plain, grads_plain = saved_and_gradients(plain)
    saved_checkpointed, grads_checkpointed = saved_and_gradients(checkpointed)
    assert saved_checkpointed < saved_plain / 3
    for a, b in zip(grads_plain, grads_checkpointed, strict=True):
        torch.testing.assert_close(a, b)
    assert checkpointed.trunk.grad_checkpointing
    assert not checkpointed.eval().trunk.grad_checkpointing
