"""``attrnet.load``: a trained model (checkpoint or exported ONNX file) as a Python object.

    >>> import attrnet
    >>> model = attrnet.load("logs/train/runs/<run>/checkpoints/last.ckpt")   # or "model.onnx"
    >>> table = model.predict(["a.jpg", "b.jpg"])         # DataFrame: a probability per attribute
    >>> model.decode(table)                               # 0/1, or 1/2 + age 1-4 for Market
    >>> feats = model.features(images, kind="logits")     # logits | probabilities | embedding
    >>> hits = model.search(queries, gallery, top_k=10)   # | identity (identity-trained models)
    >>> model.show(["a.jpg", "b.jpg"]).savefig("predictions.png")

Images: paths, PIL images, uint8 arrays or tensors, one or many (see
``attrnet.inference.images``). This module imports no torch; a checkpoint loads torch when
opened, an ONNX file never does: every method then runs on numpy and onnxruntime (``show``
also needs matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from attrnet.distances import iter_distance_chunks
from attrnet.inference.images import ImageInputs, image_inputs
from attrnet.inference.info import ModelInfo
from attrnet.predictions import decode_predictions

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Backend(Protocol):
    """What runs the network: ``TorchModel`` (checkpoint) or ``OnnxModel`` (ONNX file)."""

    info: ModelInfo

    def run(
        self, images: ImageInputs, outputs: list[str], batch_size: int = 32
    ) -> dict[str, np.ndarray]: ...


class Model:
    """A trained attribute (and optionally identity) model, ready for inference."""

    def __init__(self, backend: Backend, source: str, batch_size: int = 32) -> None:
        self.backend = backend
        self.info = backend.info
        self.source = source
        self.batch_size = batch_size

    @property
    def attribute_names(self) -> list[str]:
        return list(self.info.attribute_names)

    def __repr__(self) -> str:
        height, width = self.info.image_size
        return (
            f"Model({self.source!r}, {len(self.info.attribute_names)} attributes, "
            f"input {height}x{width}, outputs {list(self.info.outputs)})"
        )

    def _inputs(self, images: Any, argument: str = "images") -> ImageInputs:
        return image_inputs(images, self.info.image_size, argument)

    def _run(self, inputs: ImageInputs, kind: str, argument: str = "kind") -> np.ndarray:
        if kind not in self.info.outputs:
            extra = " (this model has no identity branch)" if kind == "identity" else ""
            raise ValueError(
                f"{argument}={kind!r}{extra}; expected one of {list(self.info.outputs)}"
            )
        return self.backend.run(inputs, [kind], self.batch_size)[kind]

    def predict(self, images: Any) -> pd.DataFrame:
        """Attribute probabilities: one row per image (indexed by path, or ``[i]`` for
        in-memory images), one column per attribute.

            >>> model.predict("person.jpg").round(2)
        """
        inputs = self._inputs(images)
        probabilities = self._run(inputs, "probabilities")
        index = pd.Index(inputs.names, name="image")
        return pd.DataFrame(probabilities, index=index, columns=self.attribute_names)

    def decode(self, table: pd.DataFrame) -> pd.DataFrame:
        """Decisions for a ``predict`` table: the study's 1/2 coding with age 1-4 for the 32
        Market targets, else 0/1 per attribute (at the model's threshold).

            >>> model.decode(model.predict(["a.jpg", "b.jpg"]))
        """
        if list(table.columns) != self.attribute_names:
            raise ValueError(
                f"table: columns must be this model's attributes {self.attribute_names[:4]}..., "
                f"got {list(table.columns)[:4]}... (pass the DataFrame from predict)"
            )
        decoded = decode_predictions(table.to_numpy(), self.attribute_names, self.info.threshold)
        decoded.index = table.index
        return decoded

    def features(self, images: Any, kind: str = "logits") -> np.ndarray:
        """Features (N, D) float32: ``logits`` (the study's re-ID features), ``probabilities``,
        ``embedding`` (pooled backbone, 2048) or ``identity`` (identity-trained models).

            >>> model.features(["a.jpg", "b.jpg"], kind="embedding").shape   # (2, 2048)
        """
        return self._run(self._inputs(images), kind)

    def search(
        self,
        query_images: Any,
        gallery_images: Any,
        top_k: int = 10,
        distance: str = "euclidean",
        kind: str | None = None,
    ) -> pd.DataFrame:
        """The ``top_k`` nearest gallery images of each query, best first: one row per hit with
        ``query``, ``rank`` (1 = best), ``gallery``, ``gallery_index`` and ``distance``.

        ``kind``: the features (default ``identity`` when the model has it, else ``logits``);
        ``distance``: "euclidean" or "cosine" (``attrnet.distances``, numpy). Equal
        distances keep gallery order; a chunk of queries is ranked at a time.

            >>> model.search(["q.jpg"], gallery_paths, top_k=5)
        """
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance={distance!r}; expected 'euclidean' or 'cosine'")
        if top_k < 1:
            raise ValueError(f"top_k={top_k}; expected a positive number")
        kind = kind or ("identity" if "identity" in self.info.outputs else "logits")
        query = self._inputs(query_images, "query_images")
        gallery = self._inputs(gallery_images, "gallery_images")
        features = self._run(query, kind), self._run(gallery, kind)
        rows = []
        for start, block in iter_distance_chunks(*features, distance):
            nearest = np.argsort(block, axis=1, kind="stable")[:, :top_k]
            values = np.take_along_axis(block, nearest, axis=1).tolist()
            for q, (columns, row) in enumerate(zip(nearest.tolist(), values, strict=True), start):
                hits = enumerate(zip(columns, row, strict=True), 1)
                rows.extend((query.names[q], rank, gallery.names[g], g, d) for rank, (g, d) in hits)
        return pd.DataFrame(rows, columns=["query", "rank", "gallery", "gallery_index", "distance"])

    def show(self, images: Any, top_k: int = 5, columns: int = 8) -> Figure:
        """A figure of the images with their ``top_k`` attributes and probabilities (the same
        picture as ``attrnet-predict figure=true``).

            >>> model.show(["a.jpg", "b.jpg"]).savefig("predictions.png")
        """
        from attrnet.inference.figure import predictions_figure  # matplotlib

        inputs = self._inputs(images)
        table = pd.DataFrame(
            self._run(inputs, "probabilities"),
            index=pd.Index(inputs.names, name="image"),
            columns=self.attribute_names,
        )
        return predictions_figure(inputs, table, self.info.threshold, top_k, columns)


def load(path: str | Path, device: str = "auto", batch_size: int = 32) -> Model:
    """Open a trained model: a Lightning checkpoint (``.ckpt``, loaded with weights_only) or an
    ONNX file from ``attrnet-export`` (``.onnx``, run by onnxruntime without torch).

    ``device``: "auto" (a GPU when present), "cpu", "cuda", "cuda:N" (checkpoints) or "mps".

        >>> model = attrnet.load("logs/train/runs/<run>/checkpoints/last.ckpt", device="cpu")
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected a positive number")
    if Path(path).suffix.lower() == ".onnx":
        from attrnet.inference.onnx_runtime import OnnxModel

        providers = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider"]}
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={device!r}: ONNX models take 'auto', 'cpu' or 'cuda'")
        return Model(OnnxModel(path, providers.get(device)), str(path), batch_size)
    from attrnet.inference.predict import TorchModel

    return Model(TorchModel(path, device), str(path), batch_size)
