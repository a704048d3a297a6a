"""attrnet-reid on a trained checkpoint: the three modes, their files, TensorBoard images; the
same pipeline from Python (no Hydra)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from attrnet.checkpoints import load_checkpoint
from attrnet.data.sources import SyntheticSource
from attrnet.models.loading import load_attribute_module
from attrnet.retrieval import read_reid_results
from attrnet.retrieval.from_config import evaluate, reid_options
from attrnet.retrieval.pipeline import run_reid
from tests.helpers import TINY_OVERRIDES, compose_config, make_datamodule

DATA_OVERRIDES = [o for o in TINY_OVERRIDES if o.startswith("data.")]


def _reid(run: Path, out: Path, *overrides: str) -> dict:
    checkpoint = run / "checkpoints" / "last.ckpt"
    cfg = compose_config("reid", out, [*DATA_OVERRIDES, f"ckpt_path={checkpoint}", *overrides])
    return evaluate(cfg)


def test_study_protocol_table2_and_pictures(trained_run: Path, tmp_path: Path) -> None:
    results = _reid(trained_run, tmp_path, "mode=val", "distances=[euclidean,weighted,random]")
    assert set(results) == {"euclidean", "weighted", "random"}
    for row in results.values():
        assert 0.0 <= row["rank1"] <= row["rank5"] <= 1.0 and 0.0 < row["mAP"] <= 1.0
        assert row["num_valid_queries"] == 3  # one query per validation identity
    saved = json.loads((tmp_path / "reid_metrics.json").read_text())
    assert saved["results"]["weighted"]["mAP"] == pytest.approx(results["weighted"]["mAP"])
    assert len(list((tmp_path / "ranked_lists").glob("*.png"))) == 3
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    # on the training run's step axis: the step of the checkpoint's validation
    step = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")["validation_step"]
    assert step > 0 and [e.step for e in events.Images("reid/ranked_list_0")] == [step]
    mAP = [e.value for e in events.Scalars("reid/weighted/mAP")]
    assert mAP == pytest.approx([results["weighted"]["mAP"]])
    assert [e.step for e in events.Scalars("reid/euclidean/mAP")] == [step]
    # its own HParams session: the re-ID settings, the final figures as columns
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    assert start.hparams["distances"].string_value == "euclidean, weighted, random"
    assert start.hparams["mode"].string_value == "val"
    experiment = hparams_metadata.parse_experiment_plugin_data(
        content[hparams_metadata.EXPERIMENT_TAG]
    )
    columns = {m.name.tag for m in experiment.metric_infos}
    assert "reid/random/rank1" in columns and columns <= set(events.Tags()["scalars"])


def test_market1501_protocol(trained_run: Path, tmp_path: Path) -> None:
    results = _reid(trained_run, tmp_path, "mode=market1501", "features=embedding", "flip=true")
    row = results["euclidean"]
    assert row["num_valid_queries"] + row["num_skipped"] > 0 and 0.0 < row["mAP"] <= 1.0


def test_test_mode_writes_reid_test_txt(trained_run: Path, tmp_path: Path) -> None:
    results = _reid(
        trained_run,
        tmp_path,
        "mode=test",
        "max_results=5",
        "rerank=true",
        "rerank_k1=4",
        "rerank_k2=2",
    )
    lists = read_reid_results(tmp_path / "reid_test.txt")
    assert lists and all(1 <= len(v) <= 5 for v in lists.values())
    assert results["euclidean"]["max_list_length"] <= 5


def test_weighted_distance_needs_attribute_features(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs attribute features"):
        _reid(trained_run, tmp_path, "features=embedding", "distances=[weighted]")


def test_the_pipeline_from_python_gives_the_command_s_results(
    trained_run: Path, tmp_path: Path
) -> None:
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    module = load_attribute_module(checkpoint)
    source = SyntheticSource(
        tmp_path / "cache",
        num_train_ids=10,
        num_test_ids=4,
        images_per_id=4,
        height=64,
        width=32,
        num_junk=4,
        num_distractors=4,
    )
    datamodule = make_datamodule(
        source,
        image_size=module.spec.image_size,
        eval_batch_size=64,
        cache_images=False,
        split_file=str(trained_run / "split.json"),
    )
    overrides = ["ckpt_path=unused", "num_ranked_lists=2", "distances=[euclidean,weighted]"]
    options = reid_options(compose_config("reid", tmp_path, overrides))
    results = run_reid(module, datamodule, options, tmp_path / "python", checkpoint)
    command = _reid(trained_run, tmp_path / "command", "distances=[euclidean,weighted]")
    assert results == command
    saved = json.loads((tmp_path / "python" / "reid_metrics.json").read_text())
    assert saved["results"] == results and saved["checkpoint"] == str(checkpoint)
    assert len(list((tmp_path / "python" / "ranked_lists").glob("*.png"))) == 2
