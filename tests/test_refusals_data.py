"""The data side of "nothing lost, nothing silent": bad input as real files (a generic CSV over
real PNG crops, saved splits, 16-bit / palette / float images), run through the real config
composition or the console scripts. Each case asserts the outcome: the message names the file
and the line or field, the exit status, and that no file that existed before has changed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from PIL import Image

import attrnet
from attrnet.cli.predict import predict
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.decode import IMAGE_SUFFIXES, decode_rgb
from attrnet.data.errors import DataError
from attrnet.data.images import read_image
from attrnet.data.market import list_images
from attrnet.data.peta import scan_peta
from attrnet.inference.images import image_inputs
from tests.benchmark_files import write_image
from tests.helpers import compose_config

SCRIPTS = Path(sys.executable).parent
HEADER = "image,person_id,split,hat,coat"


def _row(pid: int, shot: int, split: str | None = None, hat: object = None, coat: object = None):
    """A CSV line of person ``pid``'s crop ``shot``: people 1-6 train, 7-8 test; hat and coat
    have both classes in both splits."""
    split = split or ("train" if pid <= 6 else "test")
    hat = pid % 2 if hat is None else hat
    coat = shot if coat is None else coat
    return f"images/{pid:03d}_{shot}.png,{pid},{split},{hat},{coat}"


ROWS = [_row(pid, shot) for pid in range(1, 9) for shot in range(2)]  # lines 2-17


def _write_dataset(root: Path, lines: list[str], name: str = "labels.csv") -> Path:
    """The 16 crops under ``root/images`` (real PNGs) and ``lines`` verbatim as the CSV."""
    for pid in range(1, 9):
        for shot in range(2):
            path = root / "images" / f"{pid:03d}_{shot}.png"
            if not path.exists():
                write_image(path, pid * 10 + shot)
    csv = root / name
    csv.write_text("\n".join(lines) + "\n")
    return csv


def _digests(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders``: proof that nothing changed."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _datamodule(csv: Path, run: Path, *overrides: str) -> AttributeDataModule:
    """``cfg.data`` of ``attrnet-train data=generic_csv data.source.csv=<csv> ...``."""
    tiny = ["data.num_workers=0", "data.image_size=[32,16]", "data.cache_images=false"]
    cfg = compose_config(
        "train", run, ["data=generic_csv", f"data.source.csv={csv}", *tiny, *overrides]
    )
    return instantiate(cfg.data)


def _refused(csv: Path, tmp_path: Path, *overrides: str) -> str:
    """The ``DataError`` message of setting up the data of ``csv``; no file has changed."""
    before = _digests(tmp_path)
    with pytest.raises(DataError) as error:
        _datamodule(csv, tmp_path / "run", *overrides).setup("fit")
    assert _digests(tmp_path) == before
    return str(error.value)


def _script(name: str, tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    """A console script run as a user would, its run folder ``tmp_path/run``."""
    return subprocess.run(
        [str(SCRIPTS / name), *arguments, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _error_line(stderr: str) -> str:
    """The user's message in a console script's stderr: the ``error: <message>`` line, or under
    Hydra's default handler the traceback's ``...DataError: <message>`` line."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
        if "DataError: " in line:
            return line.split("DataError: ", 1)[1]
    raise AssertionError(f"no error line in:\n{stderr[-3000:]}")


# ------------------------------------------------------------------------------ generic CSV


def test_blank_lines_unknown_labels_and_linked_folders_load(tmp_path: Path) -> None:
    """Empty cells are unknown (NaN in float64 columns, left out of the positive ratio); an
    image folder reached through a symbolic link inside the root is followed."""
    elsewhere = tmp_path / "mnt" / "datasets"
    _write_dataset(elsewhere, [HEADER])
    root = tmp_path / "project"
    root.mkdir()
    (root / "images").symlink_to(elsewhere / "images", target_is_directory=True)
    rows = list(ROWS)
    rows[1] = _row(1, 1, hat="")  # unknown
    rows[2] = _row(2, 0, hat="0.0", coat="1.0")  # as pandas writes a column holding NaN
    csv = root / "labels.csv"
    csv.write_text("\n".join([HEADER, "", *rows[:5], "", "", *rows[5:]]) + "\n")
    module = _datamodule(csv, tmp_path / "run", "data.val_count=2")
    module.setup("fit")
    frame = module.tables.labelled.set_index("image")
    assert [frame[a].dtype for a in module.attributes] == [np.float64, np.float64]
    assert np.isnan(frame.loc["images/001_1.png", "hat"])
    assert frame.loc["images/002_0.png", ["hat", "coat"]].tolist() == [0.0, 1.0]
    assert frame.loc["images/001_0.png", "path"] == str(root / "images" / "001_0.png")
    cells = pd.read_csv(csv)  # an independent reading
    assert frame["hat"].isna().sum() == cells["hat"].isna().sum() == 1
    known = module.train_frame["hat"].dropna()
    assert len(known) == len(module.train_frame) - 1
    assert module.positive_ratio[0] == pytest.approx(known.sum() / len(known))
    assert next(iter(module.train_dataloader()))["image"].shape[1:] == (3, 32, 16)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param(
            [*ROWS, ROWS[0]],
            r"the same image file \S+/images/001_0\.png is named by line 2 \('images/001_0\.png"
            r"', train, person_id 1\) and line 18 \('images/001_0\.png', train, person_id 1\); "
            r"1 image file\(s\) appear in more than one row, expected one row per image",
            id="identical-rows",
        ),
        pytest.param(
            [*ROWS, _row(1, 0, hat=0, coat=1)],
            r"images/001_0\.png is named by line 2 .* and line 18 \('images/001_0\.png'",
            id="contradictory-labels",
        ),
        pytest.param(
            [*ROWS, "./images/../images/002_1.png,8,test,0,1"],
            r"images/002_1\.png is named by line 5 \('images/002_1\.png', train, person_id 2\) "
            r"and line 18 \('\./images/\.\./images/002_1\.png', test, person_id 8\)",
            id="train-image-again-in-test",
        ),
        pytest.param(
            [ROWS[0].replace(",1,train,", ",2.7,train,"), *ROWS[1:]],
            r"labels\.csv: line 2, column 'person_id': '2\.7', expected an integer",
            id="fractional-person-id",
        ),
        pytest.param(
            [*ROWS[:4], _row(3, 0, hat="yes"), *ROWS[5:]],
            r"labels\.csv: line 6, column 'hat': 'yes', expected 0, 1 or an empty cell "
            r"\(unknown\)",
            id="label-yes",
        ),
        pytest.param(
            [*ROWS[:4], _row(3, 0, coat=0.5), *ROWS[5:]],
            r"labels\.csv: line 6, column 'coat': '0\.5', expected 0, 1 or an empty cell",
            id="label-fraction",
        ),
        pytest.param(
            [*ROWS[:4], _row(3, 0, hat=2), *ROWS[5:]],
            r"labels\.csv: line 6, column 'hat': '2', expected 0, 1",
            id="label-2",
        ),
        pytest.param(
            [*ROWS[:2], ROWS[2].rsplit(",", 1)[0], *ROWS[3:]],
            r"labels\.csv: line 4: 4 fields, expected 5 as in the header",
            id="short-row",
        ),
        pytest.param(
            ["", "", HEADER, *ROWS[:3], "", _row(2, 1, split="tset"), *ROWS[4:]],
            r"labels\.csv: line 8, column 'split': 'tset' is not a split",  # physical lines
            id="line-after-blank-lines",
        ),
        pytest.param(
            [*ROWS, "images/../../outside.png,9,train,1,1"],
            r"labels\.csv: line 18, column 'image': 'images/\.\./\.\./outside\.png' points "
            r"outside the dataset root",
            id="dotdot-escape",
        ),
        pytest.param(
            [*ROWS, "/etc/hostname,9,train,1,1"],
            r"labels\.csv: line 18, column 'image': '/etc/hostname' points outside",
            id="absolute-path",
        ),
    ],
)
def test_rows_that_would_make_results_wrong_are_refused_naming_the_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    header = [] if HEADER in lines else [HEADER]
    csv = _write_dataset(tmp_path, [*header, *lines])
    refused = _refused(csv, tmp_path)
    assert re.search(message, refused), refused
    assert refused.startswith(f"{csv}: ")


def test_the_same_file_through_a_symbolic_link_is_a_duplicate(tmp_path: Path) -> None:
    csv = _write_dataset(tmp_path, [HEADER, *ROWS, "alias/007_0.png,3,train,1,0"])
    (tmp_path / "alias").symlink_to(tmp_path / "images", target_is_directory=True)
    refused = _refused(csv, tmp_path)
    assert re.search(
        r"images/007_0\.png is named by line 14 \('images/007_0\.png', test, person_id 7\) and "
        r"line 18 \('alias/007_0\.png', train, person_id 3\)",
        refused,
    ), refused


def _separated(separator: str) -> list[str]:
    """The valid CSV with another separator, as a spreadsheet in some locales saves it."""
    return [line.replace(",", separator) for line in (HEADER, *ROWS)]


def _with_camera(cameras: list[object]) -> list[str]:
    header = "image,person_id,camera_id,split,hat,coat"
    rows = [row.replace(",train,", f",{c},train,").replace(",test,", f",{c},test,")
            for row, c in zip(ROWS, cameras, strict=True)]  # fmt: skip
    return [header, *rows]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param(
            _with_camera([1, 1.5, *[2] * 14]),
            r"line 3, column 'camera_id': '1\.5', expected an integer",
            id="fractional-camera-id",
        ),
        pytest.param(
            [f"{HEADER},hat", *(f"{row},1" for row in ROWS)],
            r"line 1: column 'hat' appears 2 times \(columns 4, 6\); column names must be unique",
            id="duplicated-column",
        ),
        *(
            pytest.param(
                _separated(separator),
                rf"line 1 \(the header\) is separated by {name}; expected a comma-separated file",
                id=label,
            )
            for separator, name, label in ((";", "';'", "semicolons"), ("\t", "a tab", "tabs"))
        ),
        pytest.param(
            [f"{HEADER},", *(f"{row}," for row in ROWS)],
            r"line 1: column 6 of the header has no name",
            id="unnamed-column",
        ),
        pytest.param(
            [HEADER.replace("image", "Image"), *ROWS],
            r"line 1: no 'image' column \(found 'Image'; names are case-sensitive\)",
            id="wrong-case",
        ),
    ],
)
def test_headers_and_ids_pandas_would_misread_are_refused(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    csv = _write_dataset(tmp_path, lines)
    refused = _refused(csv, tmp_path)
    assert re.search(message, refused) and refused.startswith(f"{csv}: "), refused


def test_an_attribute_without_a_known_training_label_is_refused(tmp_path: Path) -> None:
    rows = [_row(pid, shot, coat="" if pid <= 6 else None) for pid in range(1, 9)
            for shot in range(2)]  # fmt: skip
    csv = _write_dataset(tmp_path, [HEADER, *rows])
    assert re.search(
        r"attribute\(s\) coat: no known label in the train split", _refused(csv, tmp_path)
    )


def test_attrnet_train_refuses_a_test_image_in_training_before_any_step(tmp_path: Path) -> None:
    """The leak as a user makes it: a test crop listed again as a training image of another
    person. ``attrnet-train`` stops before any step or checkpoint, naming both lines."""
    csv = _write_dataset(tmp_path / "data", [HEADER, *ROWS, "images/007_1.png,5,train,1,1"])
    before = _digests(tmp_path / "data")
    done = _script("attrnet-train", tmp_path, "data=generic_csv", f"data.source.csv={csv}",
                   "trainer.accelerator=cpu")  # fmt: skip
    assert done.returncode in (1, 2), done.stderr[-2000:]
    assert _error_line(done.stderr) == (
        f"{csv}: the same image file {tmp_path / 'data' / 'images' / '007_1.png'} is named by "
        "line 15 ('images/007_1.png', test, person_id 7) and line 18 ('images/007_1.png', "
        "train, person_id 5); 1 image file(s) appear in more than one row, expected one row per "
        "image"
    )
    assert _digests(tmp_path / "data") == before
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_attrnet_data_names_a_semicolon_file(tmp_path: Path) -> None:
    """The console script: exit status of an error, the message naming file, line and what
    was found; nothing written into the data folder."""
    csv = _write_dataset(tmp_path / "data", _separated(";"))
    before = _digests(tmp_path / "data")
    done = _script("attrnet-data", tmp_path, "data=generic_csv", f"data.source.csv={csv}")
    assert done.returncode in (1, 2), done.stderr[-2000:]  # 2 once the one-line CLI errors land
    assert _error_line(done.stderr) == (
        f"{csv}: line 1 (the header) is separated by ';'; expected a comma-separated file (save "
        "it as CSV with ',' as the separator)"
    )
    assert _digests(tmp_path / "data") == before
    assert not (tmp_path / "run" / "dataset_summary.json").exists()


# ------------------------------------------------------------------------------------ splits


def test_a_split_file_must_name_exactly_the_training_pool(tmp_path: Path) -> None:
    """People 1-6 form the pool (7-8 are test rows). A split saved from this data is reused;
    one naming 4 of the 6, or a test identity, is refused with the counts."""
    csv = _write_dataset(tmp_path, [HEADER, *ROWS])
    module = _datamodule(csv, tmp_path / "first", "data.val_count=2")
    module.setup("fit")
    saved = module.save_split(tmp_path / "first")
    again = _datamodule(csv, tmp_path / "again", f"data.split_file={saved}")
    again.setup("fit")
    assert again.train_frame.equals(module.train_frame) and again.val_frame.equals(module.val_frame)

    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"train_ids": [1, 2, 3], "val_ids": [4], "seed": 0}))
    refused = _refused(csv, tmp_path, f"data.split_file={partial}")
    assert refused == (
        f"{partial}: names 4 of the 6 identities of the training pool; 2 would silently leave "
        "training (e.g. 5, 6); expected the split.json of a run on this data"
    )
    leaking = tmp_path / "leaking.json"
    leaking.write_text(json.dumps({"train_ids": [1, 2, 3, 4, 5, 7], "val_ids": [6], "seed": 0}))
    refused = _refused(csv, tmp_path, f"data.split_file={leaking}")
    assert refused == (
        f"{leaking}: names 6 of the 6 identities of the training pool; it names 1 identities "
        "that are not in the pool (e.g. 7); expected the split.json of a run on this data"
    )


# -------------------------------------------------------- missing files, attributes lacking a class


def test_missing_image_files_are_reported_by_attrnet_data_and_refused_by_training(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    rows = [_row(pid, shot, "val" if pid == 6 else None) for pid in range(1, 9) for shot in (0, 1)]
    csv = _write_dataset(data, [HEADER, *rows])
    missing = [data / "images" / "003_1.png", data / "images" / "008_0.png"]
    for path in missing:
        path.unlink()
    before = _digests(data)

    done = _script("attrnet-data", tmp_path, "data=generic_csv", f"data.source.csv={csv}")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "dataset_summary.json").read_text())
    train_missing = str(missing[0])
    assert summary["missing_images"] == {
        "train": {"count": 1, "first": [train_missing]},
        "test": {"count": 1, "first": [str(missing[1])]},
    }
    assert f"Missing image files (train): 1 do not exist: {train_missing}" in done.stdout

    message = (
        f"2 image file(s) the data source lists do not exist (train 1, test 1): {missing[0]}, "
        f"{missing[1]}; fix the paths or the root folder"
    )
    for cache in ("true", "false"):  # refused before any image is decoded
        assert _refused(csv, tmp_path, f"data.cache_images={cache}").startswith(message)
    assert _digests(data) == before
    skipping = _datamodule(csv, tmp_path / "skip", "data.skip_bad_images=true")
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        skipping.setup("fit")
    assert not {str(p) for p in missing} & set(pd.concat(skipping.split_frames().values()).path)


def test_attributes_lacking_a_class_are_flagged_by_attrnet_data_and_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """coat is 0 for every test image (no positive), hat 1 for every train image (no
    negative); attrnet-data lists them (printed and in the JSON), setup warns in the log."""
    rows = [_row(pid, shot, hat=1 if pid <= 6 else None, coat=0 if pid > 6 else None)
            for pid in range(1, 9) for shot in range(2)]  # fmt: skip
    csv = _write_dataset(tmp_path / "data", [HEADER, *rows])
    done = _script("attrnet-data", tmp_path, "data=generic_csv", f"data.source.csv={csv}",
                   "data.val_count=2")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "dataset_summary.json").read_text())
    expected = {"no_positive": [], "no_negative": ["hat"]}
    assert summary["single_class"] == {
        "train": expected, "val": expected, "test": {"no_positive": ["coat"], "no_negative": []}
    }  # fmt: skip
    flagged = (
        "attributes without a positive or a negative label in a split: train: hat (no "
        "negative); val: hat (no negative); test: coat (no positive)"
    )
    assert f"Warning: {flagged}" in done.stdout
    with caplog.at_level(logging.WARNING, logger="attrnet.data.datamodule"):
        _datamodule(csv, tmp_path / "run", "data.val_count=2").setup("fit")
    assert [r.getMessage() for r in caplog.records if flagged in r.getMessage()]


# ---------------------------------------------------------------------------------- images


def _gray16(path: Path) -> np.ndarray:
    """A 16-bit grayscale PNG spanning 0..65535 (PIL mode I;16); returns its values."""
    values = (np.arange(32 * 16, dtype=np.uint32).reshape(32, 16) * 128 + 7).astype(np.uint16)
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    return values


def test_16_bit_and_palette_images_convert_alike_by_path_and_as_objects(tmp_path: Path) -> None:
    """Training's decoder, inference by path and inference of the PIL object give the same
    pixels, equal to an independent conversion: 16 bits scaled by 255 / 65535, the palette
    looked up."""
    values = _gray16(tmp_path / "gray16.png")
    gray = np.rint(values / 257.0).astype(np.uint8)
    assert gray.max() - gray.min() > 200  # not the all-white image PIL's own conversion gives
    rgb = np.random.default_rng(0).integers(0, 256, (32, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).quantize(16).save(tmp_path / "palette.png")
    with Image.open(tmp_path / "palette.png") as image:
        assert image.mode == "P"
        lookup = np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)[np.asarray(image)]
    expected = {"gray16.png": np.repeat(gray[..., None], 3, axis=2), "palette.png": lookup}
    for name, pixels in expected.items():
        path = tmp_path / name
        assert np.array_equal(read_image(path, (32, 16)).numpy().transpose(1, 2, 0), pixels)
        with Image.open(path) as image:
            by_object = image_inputs([image], (32, 16))[0]
        by_path = image_inputs([path], (32, 16))[0]
        assert np.array_equal(by_path, by_object) and np.array_equal(
            by_path.transpose(1, 2, 0), pixels
        ), name


@pytest.mark.parametrize(("mode", "dtype"), [("F", np.float32), ("I", np.int32)])
def test_float_and_32_bit_images_are_refused_alike_by_path_and_as_objects(
    tmp_path: Path, mode: str, dtype: type
) -> None:
    path = tmp_path / f"{mode}.tif"
    Image.fromarray(np.full((32, 16), 300, dtype)).save(path)
    with Image.open(path) as image:
        assert image.mode == mode
    expected = (
        f"image of mode '{mode}'; expected an 8-bit image (RGB, grayscale, palette) or 16-bit "
        "grayscale (32-bit integer and float images have no fixed range to map to 0..255: "
        "convert it to 8 bits first)"
    )
    with pytest.raises(DataError) as by_path:
        decode_rgb(path, (32, 16))
    assert str(by_path.value) == f"{path}: {expected}"
    with pytest.raises(DataError) as inference_by_path:
        image_inputs([path], (32, 16))[0]
    assert str(inference_by_path.value) == f"{path}: {expected}"
    with Image.open(path) as image, pytest.raises(DataError) as by_object:
        image_inputs([image], (32, 16))
    assert str(by_object.value) == f"images[0]: {expected}"


def test_every_image_suffix_training_reads_is_listed_by_the_folder_scans(tmp_path: Path) -> None:
    """``attrnet-predict`` (``list_images``) and the PETA scan read one list of suffixes."""
    names = [f"crop{i}{suffix}" for i, suffix in enumerate(IMAGE_SUFFIXES)] + ["upper.PNG"]
    for index, name in enumerate(names):
        write_image(tmp_path / "crops" / name, index)
    (tmp_path / "crops" / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path / "crops")] == sorted(names)
    archive = tmp_path / "peta" / "VIPeR" / "archive"
    for index, suffix in enumerate(IMAGE_SUFFIXES):
        write_image(archive / f"{index + 1}_a{suffix}", index)
    labels = "".join(f"{index + 1} personalMale\n" for index in range(len(IMAGE_SUFFIXES)))
    (archive / "Label.txt").write_text(labels)
    frame, skipped = scan_peta(tmp_path / "peta")
    assert len(frame) == len(IMAGE_SUFFIXES) and not any(skipped.values())


def test_attrnet_predict_reads_bmp_and_16_bit_crops(tmp_path: Path, trained_run: Path) -> None:
    """A folder of .bmp, .tif and 16-bit PNG crops is predicted; each file's probabilities
    equal those of an 8-bit PNG of the same pixels, converted independently."""
    crops = tmp_path / "crops"
    crops.mkdir()
    values = _gray16(crops / "gray16.png")
    Image.fromarray(np.rint(values / 257.0).astype(np.uint8)).save(crops / "gray16_as_8.png")
    rgb = np.random.default_rng(1).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    for name in ("crop.bmp", "crop.tif", "crop_as.png"):
        Image.fromarray(rgb).save(crops / name)
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    overrides = [f"ckpt_path={checkpoint}", f"images_dir={crops}", "accelerator=cpu"]
    output = predict(compose_config("predict", tmp_path / "run", overrides))
    table = pd.read_csv(output, dtype={"id": str})
    assert sorted(table["id"]) == sorted(p.name for p in crops.iterdir())
    model = attrnet.load(checkpoint, device="cpu")
    probabilities = model.predict(sorted(crops.iterdir()))
    probabilities.index = [Path(p).name for p in probabilities.index]
    for name, twin in [("gray16.png", "gray16_as_8.png"), ("crop.bmp", "crop_as.png"),
                       ("crop.tif", "crop_as.png")]:  # fmt: skip
        np.testing.assert_allclose(probabilities.loc[name], probabilities.loc[twin], atol=1e-6)
