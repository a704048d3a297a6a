"""Backbone shapes and options, CBAM blocks, activation checkpointing, offline weight loading."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torchvision

from attrnet.models.attention import CBAM, ChannelAttention, SpatialAttention
from attrnet.models.backbone import AttributeResNet50
from attrnet.models.weights import DOWNLOAD_URL, IMAGENET_FILES, load_imagenet_weights
from tests.helpers import TINY_IMAGE_SIZE


@pytest.fixture(scope="module")
def plain_model() -> AttributeResNet50:
    torch.manual_seed(0)
    return AttributeResNet50(num_attributes=32).eval()


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory) -> tuple:
    """A real torchvision resnet50 state_dict (random weights, incl. the ImageNet fc)."""
    torch.manual_seed(1)
    state = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / IMAGENET_FILES[0]
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("size", [(128, 64), (256, 128)])
def test_output_shapes_32(plain_model, size):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert plain_model(x).shape == (2, 32)
        assert plain_model.forward_features(x).shape == (2, 2048)


def test_output_shape_7_attributes():
    model = AttributeResNet50(num_attributes=7).eval()
    assert model.head.out_features == 7
    with torch.no_grad():
        assert model(torch.randn(2, 3, 128, 64)).shape == (2, 7)


@pytest.mark.parametrize("stages", [[4], [1, 3], [1, 2, 3, 4]])
def test_attention_stages(stages):
    model = AttributeResNet50(num_attributes=5, attention=True, attention_stages=stages).eval()
    assert sorted(model.attention.keys()) == [f"layer{s}" for s in stages]
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 32)).shape == (2, 5)


def test_attention_off_has_no_blocks_and_bad_stage_rejected():
    assert len(AttributeResNet50(3, attention=False, attention_stages=[1, 2]).attention) == 0
    with pytest.raises(ValueError, match="1..4"):
        AttributeResNet50(3, attention=True, attention_stages=[5])


def test_last_stride_1_doubles_feature_map(plain_model):
    x = torch.randn(2, 3, 128, 64)
    model = AttributeResNet50(num_attributes=32, last_stride=1).eval()
    with torch.no_grad():
        assert plain_model.feature_map(x).shape == (2, 2048, 4, 2)
        assert model.feature_map(x).shape == (2, 2048, 8, 4)
        assert model(x).shape == (2, 32)


def test_cbam_blocks_keep_shape_and_gate():
    x = torch.randn(2, 64, 8, 4)
    for block in (ChannelAttention(64, reduction=16), SpatialAttention(7), CBAM(64)):
        y = block(x)
        assert y.shape == x.shape
        assert (y.abs() <= x.abs() + 1e-6).all()  # sigmoid gates only scale down


def test_channels_last_bf16_autocast(plain_model):
    model = AttributeResNet50(num_attributes=7, attention=True).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 32).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits.float()).all()


@pytest.mark.parametrize("attention", [False, True], ids=["resnet50", "resnet50_attention"])
def test_bf16_cpu_step_never_reads_unwritten_memory(attention, unwritten_memory_is_nan):
    """The tiny test runs' bf16 step (batch 8, ``TINY_IMAGE_SIZE``: a 1x1 final map) with every
    CPU allocation starting as NaN: forward, backward and the evaluation forward stay finite.
    A kernel that lets memory it never wrote into its result fails here on any machine, naming
    the first module whose output is not finite (elsewhere such a result depends on what freed
    memory holds: it showed only late in a long test session, on AMX CPUs)."""
    torch.manual_seed(0)
    model = AttributeResNet50(num_attributes=32, attention=attention).train()
    images = torch.randn(8, 3, *TINY_IMAGE_SIZE)
    with torch.autocast("cpu", dtype=torch.bfloat16), _non_finite_outputs(model) as bad:
        logits = model(images)
    assert not bad, f"first non-finite output (training forward): {bad[0]}"
    logits.float().sigmoid().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not no_grad, f"non-finite gradients: {no_grad[:5]}"
    model.eval()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    with torch.no_grad(), autocast, _non_finite_outputs(model) as bad:
        model(torch.randn(16, 3, *TINY_IMAGE_SIZE))
    assert not bad, f"first non-finite output (evaluation forward): {bad[0]}"


@contextmanager
def _non_finite_outputs(model: torch.nn.Module) -> Iterator[list[str]]:
    """Names (with their input shapes) of the modules whose output had a NaN or infinity, in
    call order, while the block runs."""
    bad: list[str] = []

    def check(name: str):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and not torch.isfinite(output).all():
                shapes = [tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor)]
                bad.append(f"{name} ({type(module).__name__}, inputs {shapes})")

        return hook

    handles = [m.register_forward_hook(check(n or "net")) for n, m in model.named_modules()]
    try:
        yield bad
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("stages", [True, [1, 2]])
def test_activation_checkpointing_same_gradients(stages):
    torch.manual_seed(0)
    reference = AttributeResNet50(num_attributes=4, attention=True, attention_stages=[2, 4])
    checkpointed = AttributeResNet50(
        num_attributes=4, attention=True, attention_stages=[2, 4], activation_checkpointing=stages
    )
    expected = {1, 2, 3, 4} if stages is True else set(stages)
    assert checkpointed.checkpointed_stages == expected
    checkpointed.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 32, 16)
    for model in (reference, checkpointed):
        model.train()
        model(x).square().sum().backward()
    for (name, p_ref), (_, p_ckpt) in zip(
        reference.named_parameters(), checkpointed.named_parameters(), strict=True
    ):
        assert torch.allclose(p_ref.grad, p_ckpt.grad, rtol=1e-4, atol=1e-6), name


def test_activation_checkpointing_refuses_unknown_stages():
    with pytest.raises(ValueError, match="stages among 1..4"):
        AttributeResNet50(num_attributes=4, activation_checkpointing=[0, 5])


def test_load_weights_from_explicit_path(weight_file):
    path, state = weight_file
    model = AttributeResNet50(num_attributes=7, pretrained=True, weights_path=path)
    trunk = model.trunk.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            assert key not in trunk
        else:
            assert torch.equal(trunk[key], value), key
    assert model.head.out_features == 7


def test_load_weights_from_torchvision_cache(weight_file, tmp_path, monkeypatch):
    path, state = weight_file
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / IMAGENET_FILES[1]).symlink_to(path)
    model = AttributeResNet50(num_attributes=3)
    assert load_imagenet_weights(model).name == IMAGENET_FILES[1]
    assert torch.equal(model.trunk.conv1.weight, state["conv1.weight"])


def test_missing_weights_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError) as excinfo:
        AttributeResNet50(num_attributes=3, pretrained=True)
    message = str(excinfo.value)
    assert str(tmp_path / "checkpoints" / IMAGENET_FILES[0]) in message
    assert "model.net.weights_path=/path/to/resnet50.pth" in message
    assert DOWNLOAD_URL in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_imagenet_weights(torchvision.models.resnet50(), tmp_path / "nope.pth")


def test_wrong_file_reports_missing_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1), "extra": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match="trunk tensors missing"):
        load_imagenet_weights(AttributeResNet50(num_attributes=3), path)
