"""ONNX export of a checkpoint, checked against PyTorch with onnxruntime before it is written.

The graph is :class:`~attrnet.inference.network.InferenceNetwork`: input ``images``, uint8 RGB
(N, 3, H, W) at the training size with a dynamic batch N; the scaling to 0..1 and the
normalisation happen inside, so callers never normalise (normalising twice is the classic
deployment bug). Outputs ``logits``, ``probabilities``, ``embedding`` and, for identity-trained
models, ``identity``. The :class:`ModelInfo` is stored in the file's metadata.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:
    import onnx
except ModuleNotFoundError:  # the optional extra
    raise ModuleNotFoundError(
        "ONNX export needs onnx and onnxruntime (pip install 'attrnet[onnx]')"
    ) from None

from attrnet.data.market import list_images
from attrnet.inference.images import ImageInputs, image_inputs
from attrnet.inference.info import METADATA_KEY, ModelInfo
from attrnet.inference.network import InferenceNetwork, model_info
from attrnet.inference.onnx_runtime import INPUT_NAME, OnnxModel
from attrnet.inference.predict import run_module
from attrnet.io import atomic_open
from attrnet.models.loading import load_attribute_module
from attrnet.models.module import AttributeModule
from attrnet.output_guard import check_outputs

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graph's outputs differ from PyTorch's; nothing was written."""


@dataclass(frozen=True)
class ExportResult:
    """The written file, the largest |ONNX - PyTorch| per output, and the samples it was on."""

    path: Path
    max_difference: dict[str, float]
    num_samples: int
    info: ModelInfo


def sample_images(
    info: ModelInfo, images_dir: str | Path | None = None, count: int = 8, seed: int = 0
) -> ImageInputs:
    """``count`` images of ``images_dir`` (sorted), or seeded random uint8 images if None."""
    if images_dir is not None:
        return image_inputs(list_images(images_dir)[:count], info.image_size, "images_dir")
    random = np.random.default_rng(seed).integers(0, 256, (count, 3, *info.image_size))
    return image_inputs(random.astype(np.uint8), info.image_size, "sample images")


def onnx_bytes(module: AttributeModule, info: ModelInfo, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialised ONNX model of ``module`` with its metadata (TorchScript-based exporter)."""
    network = InferenceNetwork(module, info, info.outputs).eval()
    example = torch.zeros((2, 3, *info.image_size), dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice for dynamo=False
        torch.onnx.export(
            network,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=list(info.outputs),
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *info.outputs)},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load_model_from_string(buffer.getvalue())
    height, width = info.image_size
    onnx.helper.set_model_props(
        model,
        {
            METADATA_KEY: info.to_json(),
            "input": f"{INPUT_NAME}: uint8 RGB (N, 3, {height}, {width}), not normalised",
        },
    )
    return model.SerializeToString()


def max_differences(
    module: AttributeModule, info: ModelInfo, data: bytes, images: ImageInputs
) -> dict[str, float]:
    """Largest absolute difference per output between onnxruntime (CPU) and PyTorch (CPU)."""
    expected = run_module(module, images, info.outputs, accelerator="cpu", info=info)
    actual = OnnxModel(data, ["CPUExecutionProvider"], "exported model").run(images, info.outputs)
    return {name: float(np.abs(expected[name] - actual[name]).max()) for name in info.outputs}


def export_onnx(
    checkpoint: str | Path,
    output: str | Path,
    images_dir: str | Path | None = None,
    num_samples: int = 8,
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> ExportResult:
    """Export ``checkpoint`` to ``output`` (ONNX) after checking it on sample images.

    Every output of onnxruntime must be within ``tolerance`` (absolute) of PyTorch's on the
    samples (``images_dir``, else seeded random images); otherwise ``ExportError`` is raised
    and ``output`` is left as it was. The file is written atomically; ``output`` may not be an
    input, nor an existing file unless ``overwrite`` (checked before any work).
    """
    if num_samples < 1 or not tolerance >= 0:
        raise ValueError(f"need num_samples >= 1, tolerance >= 0; got {num_samples}, {tolerance}")
    inputs = {"ckpt_path": checkpoint, "images_dir": images_dir}
    check_outputs({"output": output}, inputs, overwrite)
    module = load_attribute_module(checkpoint).eval()
    info = model_info(module)
    data = onnx_bytes(module, info, opset)
    samples = sample_images(info, images_dir, num_samples)
    differences = max_differences(module, info, data, samples)
    worst = max(differences.values())
    if not worst <= tolerance:  # also refuses NaN
        detail = ", ".join(f"{name} {value:.3g}" for name, value in differences.items())
        raise ExportError(
            f"{output}: not written: onnxruntime outputs differ from PyTorch by up to "
            f"{worst:.3g} > tolerance {tolerance:g} on {len(samples)} sample images ({detail})"
        )
    with atomic_open(output, "wb") as handle:
        handle.write(data)
    return ExportResult(Path(output), differences, len(samples), info)
