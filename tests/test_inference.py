"""The Python API (``attrnet.load``) on tiny trained checkpoints: real crops, generated files,
every input form, search, the predictions figure, and clear errors for bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import attrnet
from attrnet.attributes import CLASSIFICATION_COLUMNS, MARKET_TARGETS, decode
from attrnet.checkpoints import CheckpointError
from attrnet.cli.predict import predict
from attrnet.data.errors import DataError
from attrnet.inference.onnx_runtime import ModelFileError
from attrnet.inference.predict import prediction_trainer, run_module
from attrnet.models.loading import load_attribute_module
from attrnet.predictions import decode_predictions
from tests.helpers import TINY_IMAGE_SIZE, compose_config, needs, reference_inputs

SIZE = TINY_IMAGE_SIZE  # data.image_size of TINY_OVERRIDES


def _ckpt(run: Path) -> Path:
    return run / "checkpoints" / "last.ckpt"


def reference_outputs(checkpoint: Path, paths: list[Path]) -> dict[str, torch.Tensor]:
    """Outputs by an independent route (PIL decode, torchvision normalisation, the module)."""
    module = load_attribute_module(checkpoint).eval()
    images = reference_inputs(paths, module.spec.image_size)
    with torch.no_grad():
        embedding = module.embed(images)
        logits = module.head(embedding)
        out = {"embedding": embedding, "logits": logits, "probabilities": torch.sigmoid(logits)}
        if module.identity is not None:
            out["identity"] = module.identity_feature(embedding)
    return out


def test_predict_decode_features_on_real_crops(trained_run: Path, mini_market: Path) -> None:
    paths = sorted((mini_market / "query").glob("*.jpg"))[:6]
    model = attrnet.load(_ckpt(trained_run), device="cpu")
    table = model.predict(paths)
    expected = reference_outputs(_ckpt(trained_run), paths)
    assert list(table.columns) == list(MARKET_TARGETS)
    assert list(table.index) == [str(p) for p in paths]
    np.testing.assert_allclose(table.to_numpy(), expected["probabilities"].numpy(), atol=1e-6)
    decoded = model.decode(table)
    assert list(decoded.columns) == list(CLASSIFICATION_COLUMNS[1:])
    assert (decoded.to_numpy() == decode(table.to_numpy()).to_numpy()).all()
    assert decoded["age"].between(1, 4).all() and decoded["hat"].isin([1, 2]).all()
    for kind in ("logits", "embedding"):
        np.testing.assert_allclose(
            model.features(paths, kind=kind), expected[kind].numpy(), rtol=1e-5, atol=1e-5
        )


def test_every_input_form_gives_the_same_prediction(trained_run: Path, tmp_path: Path) -> None:
    """Generated files, PIL images (any size), HWC / CHW arrays and tensors, single or batched."""
    model = attrnet.load(_ckpt(trained_run), device="cpu")
    generator = np.random.default_rng(0)
    big = Image.fromarray(generator.integers(0, 256, (96, 48, 3), dtype=np.uint8))
    big.save(tmp_path / "person.png")
    small = np.asarray(big.resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR))
    single = model.predict(tmp_path / "person.png")
    assert single.shape == (1, 32) and single.index[0] == str(tmp_path / "person.png")
    forms = [
        big,
        small,
        small.transpose(2, 0, 1),
        torch.from_numpy(small.transpose(2, 0, 1).copy()),
    ]
    table = model.predict(forms)
    assert list(table.index) == [f"[{i}]" for i in range(len(forms))]
    np.testing.assert_allclose(table.to_numpy(), np.repeat(single.to_numpy(), 4, 0), atol=1e-6)
    batch = model.predict(np.stack([small, small]))  # (N, H, W, 3)
    np.testing.assert_allclose(batch.to_numpy(), np.repeat(single.to_numpy(), 2, 0), atol=1e-6)


def test_search_returns_nearest_gallery_images(trained_run: Path, mini_market: Path) -> None:
    model = attrnet.load(_ckpt(trained_run), device="cpu")
    gallery = sorted((mini_market / "bounding_box_test").glob("*.jpg"))[:12]
    query = [gallery[3], gallery[7]]
    hits = model.search(query, gallery, top_k=4)
    assert list(hits.columns) == ["query", "rank", "gallery", "gallery_index", "distance"]
    assert hits["rank"].tolist() == [1, 2, 3, 4] * 2
    # an image in the gallery is its own nearest neighbour
    assert hits.loc[hits["rank"] == 1, "gallery_index"].tolist() == [3, 7]
    features = model.features(gallery, kind="logits")
    expected = np.sqrt(((features[[3, 7], None] - features[None]) ** 2).sum(-1))
    for q in range(2):
        rows = hits[hits["query"] == str(query[q])]
        assert rows["gallery_index"].tolist() == np.argsort(expected[q])[:4].tolist()
        np.testing.assert_allclose(rows["distance"], np.sort(expected[q])[:4], atol=1e-4)
    assert len(model.search(query, gallery[:2], top_k=10, distance="cosine")) == 4


def test_identity_features_need_an_identity_branch(
    trained_run: Path, identity_run: Path, mini_market: Path
) -> None:
    paths = sorted((mini_market / "query").glob("*.jpg"))[:4]
    model = attrnet.load(_ckpt(identity_run), device="cpu")
    expected = reference_outputs(_ckpt(identity_run), paths)["identity"].numpy()
    np.testing.assert_allclose(
        model.features(paths, kind="identity"), expected, rtol=1e-5, atol=1e-5
    )
    hits = model.search(paths[:1], paths, top_k=2)  # identity features by default
    assert hits["gallery_index"].iloc[0] == 0 and hits["distance"].iloc[0] < 1e-3
    plain = attrnet.load(_ckpt(trained_run), device="cpu")
    with pytest.raises(ValueError, match="kind='identity'.*no identity branch"):
        plain.features(paths, kind="identity")


def test_decode_falls_back_to_binary_for_other_attribute_sets() -> None:
    probabilities = np.array([[0.9, 0.2], [0.5, 0.49]])
    decoded = decode_predictions(probabilities, ["hat", "Female"], threshold=0.5)
    assert decoded.to_dict("list") == {"hat": [1, 1], "Female": [0, 0]}


def test_predict_figure_is_the_show_figure(trained_run: Path, mini_market: Path, tmp_path) -> None:
    images_dir = mini_market / "query"
    cfg = compose_config(
        "predict",
        tmp_path,
        [f"ckpt_path={_ckpt(trained_run)}", f"images_dir={images_dir}", "figure=true"],
    )
    predict(cfg)
    written = np.asarray(Image.open(tmp_path / "predictions.png").convert("RGB"))
    model = attrnet.load(_ckpt(trained_run), device="cpu")
    model.show(sorted(images_dir.glob("*.jpg"))[:16]).savefig(tmp_path / "show.png")
    shown = np.asarray(Image.open(tmp_path / "show.png").convert("RGB"))
    assert written.shape == shown.shape and written.shape[1] > 8 * 100  # 8 panels a row
    assert (written != shown).any(-1).mean() < 0.01
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_input_gives_clear_errors(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing.ckpt: checkpoint file does not exist"):
        attrnet.load(tmp_path / "missing.ckpt")
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.ckpt: truncated or corrupt"):
        attrnet.load(tmp_path / "broken.ckpt")
    with pytest.raises(ValueError, match="device='tpu'"):
        attrnet.load(_ckpt(trained_run), device="tpu")

    model = attrnet.load(_ckpt(trained_run), device="cpu")
    (tmp_path / "fake.jpg").write_text("not an image")
    with pytest.raises(DataError, match="fake.jpg: unreadable or truncated image"):
        model.predict([tmp_path / "fake.jpg"])
    bad = {
        "dtype float32; expected uint8": np.zeros((*SIZE, 3), np.float32),
        r"shape \(64, 32, 3\); expected .*\(3, 32, 32\)": np.zeros((64, 32, 3), np.uint8),
        r"shape \(32, 32, 4\)": np.zeros((*SIZE, 4), np.uint8),
        "mode 'F'": Image.new("F", (16, 32)),
        "got a int": 7,
    }
    for message, image in bad.items():
        with pytest.raises(DataError, match=rf"images\[1\]: .*{message}"):
            model.predict([np.zeros((*SIZE, 3), np.uint8), image])
    with pytest.raises(DataError, match=r"gallery_images: array of shape \(32, 32\)"):
        model.search(np.zeros((*SIZE, 3), np.uint8), np.zeros(SIZE, np.uint8))
    with pytest.raises(ValueError, match="kind='logit'"):
        model.features(np.zeros((*SIZE, 3), np.uint8), kind="logit")
    with pytest.raises(ValueError, match="table: columns"):
        model.decode(pd.DataFrame({"x": [0.5]}))


def test_missing_onnx_file_and_missing_onnxruntime_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelFileError, match="missing.onnx: ONNX file does not exist"):
        attrnet.load(tmp_path / "missing.onnx")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07garbage")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as without the onnx extra
    with pytest.raises(ModuleNotFoundError, match=r"model.onnx: .*pip install 'attrnet\[onnx\]'"):
        attrnet.load(tmp_path / "model.onnx")


@needs("onnxruntime")
def test_damaged_onnx_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelFileError, match="broken.onnx: not a readable ONNX model"):
        attrnet.load(tmp_path / "broken.onnx")


def test_run_module_refuses_an_empty_input_and_an_incomplete_prediction(trained_run: Path) -> None:
    """The one inference path names what went wrong instead of returning fewer rows."""
    module = load_attribute_module(_ckpt(trained_run))
    with pytest.raises(ValueError, match="no images to predict"):
        run_module(module, torch.zeros((0, 3, *SIZE), dtype=torch.uint8), accelerator="cpu")
    images = torch.zeros((5, 3, *SIZE), dtype=torch.uint8)
    trainer = prediction_trainer("cpu")
    trainer.limit_predict_batches = 1
    with pytest.raises(ValueError, match="covered 2 of 5 images"):
        run_module(module, images, trainer=trainer, batch_size=2)
