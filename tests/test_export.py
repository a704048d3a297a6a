"""``attrnet-export``: ONNX graphs that match PyTorch on real crops (plain, attention + identity),
run by onnxruntime in a process without torch, and refused when they would not match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx", reason="needs the onnx extra")
ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra")

import numpy as np

import attrnet
from attrnet.cli.export import main as cli_main
from attrnet.inference import export as export_module
from attrnet.inference.export import export_onnx
from attrnet.inference.images import image_inputs
from attrnet.inference.onnx_runtime import ModelFileError
from tests.helpers import compose_config
from tests.test_inference import SIZE, reference_outputs

#: The whole API on an ONNX file: neither ``import attrnet`` nor any method may load torch or
#: the training stack (with torch installed, so any import of it would show).
TORCH_FREE = """
import io, json, sys
def loaded():
    heavy = ("torch", "torchvision", "torchmetrics", "lightning", "timm")
    return [m for m in sys.modules if m.split(".")[0] in heavy]
import attrnet
assert not loaded(), loaded()
model = attrnet.load(sys.argv[1], device="cpu")
paths = sys.argv[2:]
table = model.predict(paths)
decoded = model.decode(table)
features = {kind: model.features(paths, kind=kind).tolist() for kind in model.info.outputs}
search = {
    distance: model.search(paths[:2], paths, top_k=3, distance=distance).to_dict("list")
    for distance in ("euclidean", "cosine")
}
model.show(paths).savefig(io.BytesIO(), format="png")
assert not loaded(), loaded()
print(json.dumps({"probabilities": table.to_numpy().tolist(), "age": decoded["age"].tolist(),
                  "features": features, "search": search}))
"""


def _check_torch_free_api(onnx_file: Path, checkpoint: Path, crops: list[Path]) -> None:
    """Every API method on the ONNX file in a process without torch, against the checkpoint."""
    process = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(onnx_file), *map(str, crops)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert process.returncode == 0, process.stderr[-2000:]
    answer = json.loads(process.stdout)
    torch_model = attrnet.load(checkpoint, device="cpu")
    table = torch_model.predict(crops)
    np.testing.assert_allclose(answer["probabilities"], table.to_numpy(), atol=1e-4)
    assert answer["age"] == torch_model.decode(table)["age"].tolist()
    assert sorted(answer["features"]) == sorted(torch_model.info.outputs)
    for kind, values in answer["features"].items():
        expected = torch_model.features(crops, kind=kind)
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-4, err_msg=kind)
    for distance, hits in answer["search"].items():
        expected = torch_model.search(crops[:2], crops, top_k=3, distance=distance)
        assert len(expected) == 6 and expected["gallery_index"].tolist()[::3] == [0, 1]
        distances = hits.pop("distance")
        assert hits == expected.drop(columns="distance").to_dict("list"), distance
        np.testing.assert_allclose(distances, expected["distance"], atol=1e-4, err_msg=distance)


def _check_graph(path: Path, checkpoint: Path, crops: list[Path], outputs: list[str]) -> None:
    """Raw onnxruntime on uint8 NCHW crops vs the module on the training data path."""
    graph = onnx.load(path)
    assert [o.name for o in graph.graph.output] == outputs
    assert [i.name for i in graph.graph.input] == ["images"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = np.stack(image_inputs(crops, SIZE))  # decoded as the API does
    expected = reference_outputs(checkpoint, crops)
    for batch in (images[:1], images):  # dynamic batch
        got = dict(zip(outputs, session.run(outputs, {"images": batch}), strict=True))
        for name in outputs:
            difference = np.abs(got[name] - expected[name][: len(batch)].numpy()).max()
            assert difference <= 1e-4, (name, difference)


def test_cli_exports_attention_identity_model(identity_run: Path, mini_market: Path, tmp_path):
    checkpoint = identity_run / "checkpoints" / "last.ckpt"
    crops = sorted((mini_market / "query").glob("*.jpg"))[:5]
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "attrnet-export"),
            f"ckpt_path={checkpoint}",
            "format=onnx",
            "output=model.onnx",
            f"images_dir={mini_market / 'query'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max |onnxruntime - PyTorch| identity" in result.stdout
    assert "uint8 RGB (N, 3, 32, 32)" in result.stdout  # the tiny runs' input size
    outputs = ["logits", "probabilities", "embedding", "identity"]
    _check_graph(tmp_path / "model.onnx", checkpoint, crops, outputs)
    _check_torch_free_api(tmp_path / "model.onnx", checkpoint, crops)


def test_plain_model_runs_from_onnx_without_torch(
    trained_run: Path, mini_market: Path, tmp_path: Path
) -> None:
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    crops = sorted((mini_market / "bounding_box_test").glob("*.jpg"))[:4]
    result = export_onnx(checkpoint, tmp_path / "plain.onnx", mini_market / "query")
    assert max(result.max_difference.values()) <= 1e-4 and result.num_samples == 8
    outputs = ["logits", "probabilities", "embedding"]
    _check_graph(tmp_path / "plain.onnx", checkpoint, crops, outputs)

    _check_torch_free_api(tmp_path / "plain.onnx", checkpoint, crops)
    with pytest.raises(ValueError, match="kind='identity'.*no identity branch"):
        attrnet.load(tmp_path / "plain.onnx").features(crops, kind="identity")


def test_export_refuses_a_graph_that_differs(
    trained_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A runtime whose embedding is off by 1e-3 (as a doubly normalised input would be):
    attrnet-export exits with status 1 naming the differences; the previous file stays."""

    class Skewed(export_module.OnnxModel):
        def run(self, images, outputs, batch_size=32):
            values = super().run(images, outputs, batch_size)
            values["embedding"] = values["embedding"] + 1e-3
            return values

    monkeypatch.setattr(export_module, "OnnxModel", Skewed)
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "model.onnx"
    output.write_bytes(b"previous export")
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    argv = [
        f"ckpt_path={checkpoint}",
        "output=model.onnx",
        "overwrite=true",  # the parity check, not the existing file, refuses it
        "num_samples=2",
        "hydra.run.dir=run",
    ]
    monkeypatch.setattr(sys, "argv", ["attrnet-export", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli_main()
    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert "model.onnx: not written" in message and "up to 0.001 > tolerance 0.0001" in message
    assert "embedding 0.001" in message
    assert "model.onnx: not written" in (tmp_path / "run" / "export.log").read_text()
    assert output.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "run"]


def test_foreign_onnx_files_are_refused(tmp_path: Path) -> None:
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(ModelFileError, match="other.onnx: an ONNX model without attrnet metadata"):
        attrnet.load(tmp_path / "other.onnx")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ModelFileError, match="lacks.*onnxruntime-gpu"):
            attrnet.load(tmp_path / "other.onnx", device="cuda")


def test_cli_rejects_unknown_format(trained_run: Path, tmp_path: Path) -> None:
    from attrnet.cli.export import export

    cfg = compose_config("export", tmp_path, [f"ckpt_path={trained_run}/x.ckpt", "format=tflite"])
    with pytest.raises(ValueError, match="format='tflite'"):
        export(cfg)
