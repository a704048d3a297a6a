"""Run an exported model with onnxruntime (no torch): the ONNX file's graph and metadata.

The graph (see ``attrnet.inference.export``) takes uint8 RGB images (N, 3, H, W) at the
training size and normalises them itself; its metadata holds the :class:`ModelInfo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attrnet.inference.info import METADATA_KEY, ModelInfo

#: Name of the graph's input.
INPUT_NAME = "images"


class ModelFileError(ValueError):
    """An ONNX file is missing, damaged, not an attrnet model, or cannot run as asked."""


class OnnxModel:
    """An onnxruntime session over an attrnet ONNX model; ``source`` is a path or the bytes.

    ``providers``: onnxruntime execution providers, default CUDA when available, else CPU.
    """

    def __init__(
        self, source: str | Path | bytes, providers: Sequence[str] | None = None, label: str = ""
    ) -> None:
        self.label = label or (str(source) if not isinstance(source, bytes) else "<onnx bytes>")
        if not isinstance(source, bytes) and not Path(source).is_file():
            raise ModelFileError(f"{self.label}: ONNX file does not exist")
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:  # the optional extra
            raise ModuleNotFoundError(
                f"{self.label}: running an ONNX model needs onnxruntime "
                "(pip install 'attrnet[onnx]')"
            ) from None
        available = ort.get_available_providers()
        if providers is None:
            wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
            providers = [p for p in wanted if p in available]
        missing = [p for p in providers if p not in available]
        if missing:
            raise ModelFileError(
                f"{self.label}: onnxruntime here lacks {missing} (it has {available}); for CUDA "
                "install onnxruntime-gpu, or use device='cpu'"
            )
        model = source if isinstance(source, bytes) else str(source)
        try:
            self.session = ort.InferenceSession(model, providers=list(providers))
        except Exception as error:  # onnxruntime raises its own, unexported exception types
            reason = str(error).strip().splitlines()[0][:300]
            raise ModelFileError(f"{self.label}: not a readable ONNX model ({reason})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if metadata is None:
            raise ModelFileError(
                f"{self.label}: an ONNX model without attrnet metadata (key {METADATA_KEY!r}); "
                "export checkpoints with attrnet-export"
            )
        try:
            self.info = ModelInfo.from_json(metadata)
        except ValueError as error:
            raise ModelFileError(f"{self.label}: {error}") from None

    def run(
        self, images: Sequence[np.ndarray], outputs: Sequence[str], batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        """The named outputs (N, D) float32 for uint8 images (3, H, W), ``batch_size`` at a time."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            batch = np.stack([images[i] for i in range(start, stop)])
            values = self.session.run(list(outputs), {INPUT_NAME: batch})
            for name, value in zip(outputs, values, strict=True):
                parts[name].append(value)
        return {name: np.concatenate(chunks).astype(np.float32) for name, chunks in parts.items()}
