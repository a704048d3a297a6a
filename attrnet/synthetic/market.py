"""The embedded default dataset: a synthetic Market-1501 written from a seed.

No dataset can be downloaded on the machines attrnet targets, so the default run trains on a
generated one that has real signal:

- identity attribute vectors are sampled from a small Bayesian network whose conditional
  tables are the counts of the real Market-1501 train split (``market_attribute.mat``, 751
  identities), baked into ``identities`` because the real file is not redistributable;
- the attributes are drawn into the pixels (see ``render``), with per-identity
  details and per-camera conditions so re-ID is harder than reading attributes;
- the output uses the real layout (``bounding_box_train/``, ``bounding_box_test/``,
  ``query/`` with Market file names, junk ``-1`` and distractors ``0000``, a
  ``market_attribute.mat`` of the real structure and the study's ``annotations_train.csv``),
  so the same readers serve real and synthetic data;
- it is byte-identical for the same parameters (with the same numpy and Pillow/libjpeg) and
  cached by ``ensure_synthetic_market``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from attrnet.attributes import ANNOTATION_FIELDS
from attrnet.io import atomic_open, atomic_write_text
from attrnet.synthetic.camera import Camera, make_camera, make_tracklet
from attrnet.synthetic.identities import sample_identity_attributes
from attrnet.synthetic.look import make_look
from attrnet.synthetic.render import encode_jpeg, render_fragment, render_person

#: Bumped whenever the output of a given parameter set changes (it names cache folders).
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic.json"
TRAIN_DIR, TEST_DIR, QUERY_DIR = "bounding_box_train", "bounding_box_test", "query"
NUM_CAMERAS = 6
JPEG_QUALITY = 90
PARALLEL_MIN_IMAGES = 1000

#: Field order of the real file's ``train`` struct (its ``test`` struct uses
#: ``ANNOTATION_FIELDS`` order); mirrored so readers are exercised on both orders.
REAL_TRAIN_FIELD_ORDER: tuple[str, ...] = (
    "age", "backpack", "bag", "handbag", "downblack", "downblue", "downbrown", "downgray",
    "downgreen", "downpink", "downpurple", "downwhite", "downyellow", "upblack", "upblue",
    "upgreen", "upgray", "uppurple", "upred", "upwhite", "upyellow", "clothes", "down", "up",
    "hair", "hat", "gender",
)


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that determines a generated dataset (and names its cache folder)."""

    seed: int = 0
    num_train_ids: int = 200
    num_test_ids: int = 100
    images_per_id: int = 12
    height: int = 128
    width: int = 64
    num_junk: int = 40
    num_distractors: int = 40

    def __post_init__(self) -> None:
        """Reject parameters that cannot give a Market-style set, saying which and why."""
        total = self.num_train_ids + self.num_test_ids
        checks = (
            (self.num_train_ids >= 1 and self.num_test_ids >= 1,
             "num_train_ids and num_test_ids must be >= 1"),
            (total <= 9999, f"at most 9999 identities fit 4-digit person ids, got {total}"),
            (self.images_per_id >= 4,
             "images_per_id must be >= 4 (two cameras with two images each per identity)"),
            (32 <= self.height <= 1024 and 16 <= self.width <= 1024,
             "height must be in 32..1024 and width in 16..1024"),
            (self.num_junk >= 0 and self.num_distractors >= 0,
             "num_junk and num_distractors must be >= 0"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"synthetic Market-1501: {message} ({self})")

    @property
    def folder_name(self) -> str:
        """Cache folder name derived from all parameters and the generator version."""
        return (
            f"market_synthetic-v{GENERATOR_VERSION}-seed{self.seed}"
            f"-ids{self.num_train_ids}+{self.num_test_ids}-img{self.images_per_id}"
            f"-{self.height}x{self.width}-junk{self.num_junk}-distr{self.num_distractors}"
        )


@dataclass(frozen=True)
class _ImageName:
    """Market-1501 file name parts: ``PPPP_cCsS_FFFFFF_BB.jpg`` (pid -1 written as ``-1``)."""

    pid: int
    camera: int
    sequence: int
    frame: int
    box: int

    def __str__(self) -> str:
        pid = "-1" if self.pid < 0 else f"{self.pid:04d}"
        return f"{pid}_c{self.camera}s{self.sequence}_{self.frame:06d}_{self.box:02d}.jpg"


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """Independent generator for one purpose (keys), so parts do not shift each other."""
    return np.random.default_rng([seed, *keys])


_STREAM_IDS, _STREAM_ATTRIBUTES, _STREAM_CAMERA, _STREAM_IDENTITY, _STREAM_FRAGMENT = range(5)


def _person_ids(params: SyntheticParams) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted train and test person ids, interleaved over 1..max(1501, total)."""
    rng = _rng(params.seed, _STREAM_IDS)
    total = params.num_train_ids + params.num_test_ids
    pool = np.arange(1, max(1501, total) + 1)
    chosen = rng.permutation(rng.choice(pool, size=total, replace=False))
    return np.sort(chosen[: params.num_train_ids]), np.sort(chosen[params.num_train_ids:])


def _camera_counts(rng: np.random.Generator, images: int) -> dict[int, int]:
    """Cameras of one identity (2 to 6) and its images per camera (at least two each)."""
    num_cameras = int(rng.integers(2, min(NUM_CAMERAS, images // 2) + 1))
    cameras = np.sort(rng.choice(np.arange(1, NUM_CAMERAS + 1), size=num_cameras, replace=False))
    extra = rng.multinomial(images - 2 * num_cameras, np.full(num_cameras, 1.0 / num_cameras))
    return {int(c): 2 + int(e) for c, e in zip(cameras, extra, strict=True)}


def _tracklet_names(
    rng: np.random.Generator, pid: int, camera: int, count: int
) -> list[_ImageName]:
    """Names of ``count`` consecutive frames of one person in one camera sequence."""
    sequence = int(rng.integers(1, 7))
    frames = int(rng.integers(1, 150_000)) + np.cumsum(rng.integers(5, 40, size=count))
    boxes = rng.integers(1, 5, size=count)
    return [_ImageName(pid, camera, sequence, int(f), int(b))
            for f, b in zip(frames, boxes, strict=True)]


def _write_identity(
    root: Path, pid: int, fields: Mapping[str, int], test: bool, cameras: list[Camera],
    params: SyntheticParams,
) -> None:
    """Render and write all images of one identity.

    Test identities give one image from each of two cameras to ``query/``; every camera
    keeps at least one other image in ``bounding_box_test/``, so each query has gallery images
    from another camera.
    """
    rng = _rng(params.seed, _STREAM_IDENTITY, pid)
    look = make_look(fields, rng, params.height)
    counts = _camera_counts(rng, params.images_per_id)
    query_cameras: set[int] = set()
    if test:
        query_cameras = set(rng.choice(sorted(counts), size=2, replace=False).tolist())
    gallery = TEST_DIR if test else TRAIN_DIR
    for camera, count in counts.items():
        shots = make_tracklet(cameras[camera - 1], rng, count, params.height, params.width)
        names = _tracklet_names(rng, pid, camera, count)
        query_index = int(rng.integers(count)) if camera in query_cameras else -1
        for index, (shot, name) in enumerate(zip(shots, names, strict=True)):
            image = render_person(look, shot, cameras[camera - 1], rng, params.width)
            folder = QUERY_DIR if index == query_index else gallery
            (root / folder / str(name)).write_bytes(encode_jpeg(image, JPEG_QUALITY))


#: One identity to render: person id, its 27 annotated fields, whether it is a test identity.
_Job = tuple[int, dict[str, int], bool]


def _cameras(params: SyntheticParams) -> list[Camera]:
    """The six cameras of a parameter set (the same in every process)."""
    return [make_camera(_rng(params.seed, _STREAM_CAMERA, c), params.height, params.width)
            for c in range(1, NUM_CAMERAS + 1)]


def _render_identities(root: Path, params: SyntheticParams, jobs: list[_Job]) -> None:
    """Render and write a share of the identities (in a worker process when parallel)."""
    cameras = _cameras(params)
    for pid, fields, test in jobs:
        _write_identity(root, pid, fields, test, cameras, params)


def _worker_count(workers: int | None, images: int) -> int:
    """Processes to render with: ``workers``, or by default the CPUs (at most 8) for big sets."""
    if workers is None:
        return min(os.cpu_count() or 1, 8) if images >= PARALLEL_MIN_IMAGES else 1
    if workers < 1:
        raise ValueError(f"synthetic Market-1501: workers must be >= 1, got {workers}")
    return workers


def _render_all(root: Path, params: SyntheticParams, jobs: list[_Job], workers: int) -> None:
    """Render all identities, split round-robin over ``workers`` processes when more than one.

    Every identity draws from its own seeded generator, so the files do not depend on how
    the work is split.
    """
    workers = min(workers, len(jobs))
    if workers == 1:
        _render_identities(root, params, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        shares = [pool.submit(_render_identities, root, params, jobs[i::workers])
                  for i in range(workers)]
        for share in shares:
            share.result()


def _write_fragments(root: Path, cameras: list[Camera], params: SyntheticParams) -> None:
    """Junk (pid -1, mostly scene) and distractor (pid 0000, body parts) crops in the gallery."""
    rng = _rng(params.seed, _STREAM_FRAGMENT)
    total = params.num_junk + params.num_distractors
    fields = sample_identity_attributes(total, rng)
    taken: set[str] = set()
    for index in range(total):
        junk = index < params.num_junk
        camera = int(rng.integers(1, NUM_CAMERAS + 1))
        look = make_look(fields.iloc[index], rng, params.height)
        zoom = rng.uniform(0.8, 1.3) if junk else rng.uniform(1.5, 2.6)
        image = render_fragment(look, cameras[camera - 1], rng, params.width, float(zoom))
        name = str(_tracklet_names(rng, -1 if junk else 0, camera, 1)[0])
        while name in taken:
            name = str(_tracklet_names(rng, -1 if junk else 0, camera, 1)[0])
        taken.add(name)
        (root / TEST_DIR / name).write_bytes(encode_jpeg(image, JPEG_QUALITY))


# ----------------------------------------------------------------------------- annotations


def _mat_split(fields: pd.DataFrame, order: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One split struct as in the real file: (1, N) uint8 fields and ``image_index`` cells."""
    split: dict[str, np.ndarray] = {
        name: fields[name].to_numpy(dtype=np.uint8).reshape(1, -1) for name in order
    }
    index = np.empty((1, len(fields)), dtype=object)
    for position, pid in enumerate(fields.index):
        index[0, position] = f"{int(pid):04d}"
    split["image_index"] = index
    return split


def _write_mat(path: Path, train: pd.DataFrame, test: pd.DataFrame) -> None:
    """``market_attribute.mat`` with the real structure, byte-identical across runs.

    scipy stamps the creation time into the 116-byte text header; it is replaced by a fixed one.
    """
    content = {"market_attribute": {
        "test": _mat_split(test, ANNOTATION_FIELDS),
        "train": _mat_split(train, REAL_TRAIN_FIELD_ORDER),
    }}
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content, format="5", oned_as="row")
    raw = bytearray(buffer.getvalue())
    header = f"MATLAB 5.0 MAT-file, attrnet synthetic Market-1501 v{GENERATOR_VERSION}"
    raw[:116] = header.encode("ascii").ljust(116, b" ")
    with atomic_open(path, "wb") as handle:
        handle.write(bytes(raw))


def _write_course_csv(path: Path, train: pd.DataFrame) -> None:
    """The study's ``annotations_train.csv``: ``id`` (integer person id) + 27 fields."""
    lines = [",".join(("id", *ANNOTATION_FIELDS))]
    for pid, row in train.iterrows():
        lines.append(",".join([str(int(pid)), *(str(int(row[f])) for f in ANNOTATION_FIELDS)]))
    atomic_write_text(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- entry points


def generate_synthetic_market(
    root: Path | str, *, workers: int | None = None, **params: int
) -> Path:
    """Write a synthetic Market-1501 into ``root`` and return ``root``; ``params`` are those of
    :class:`SyntheticParams` (seed, identities, images per identity, size, junk, distractors).

    Layout: ``bounding_box_train/`` (train ids), ``bounding_box_test/`` (test ids, junk
    ``-1`` and distractors ``0000``), ``query/`` (one image from each of two cameras per test
    id),
    ``market_attribute.mat`` (train and test splits) and ``annotations_train.csv``. The
    same parameters always give byte-identical files. ``root`` must be absent or empty, so
    no stale file of another generation can mix in.

    ``workers`` processes render the identities (default: one per CPU, at most 8, for sets of
    1000+ images; the output does not depend on it). Like DataLoader workers, processes started
    by "spawn" (macOS, Windows) need the calling script's code under ``if __name__ ==
    "__main__":``.
    """
    params = SyntheticParams(**params)
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"synthetic Market-1501: {root} is not empty; give a new folder")
    for folder in (TRAIN_DIR, TEST_DIR, QUERY_DIR):
        (root / folder).mkdir(parents=True, exist_ok=True)
    train_ids, test_ids = _person_ids(params)
    all_ids = np.concatenate([train_ids, test_ids])
    attributes_rng = _rng(params.seed, _STREAM_ATTRIBUTES)
    fields = pd.concat([sample_identity_attributes(len(ids), attributes_rng)
                        for ids in (train_ids, test_ids)])
    fields.index = pd.Index(all_ids, name="id")
    jobs = [(int(pid), {name: int(v) for name, v in fields.iloc[position].items()},
             position >= len(train_ids)) for position, pid in enumerate(all_ids)]
    _render_all(root, params, jobs, _worker_count(workers, len(jobs) * params.images_per_id))
    _write_fragments(root, _cameras(params), params)
    _write_mat(root / "market_attribute.mat", fields.loc[train_ids], fields.loc[test_ids])
    _write_course_csv(root / "annotations_train.csv", fields.loc[train_ids])
    return root


def default_cache_dir() -> Path:
    """Cache root: ``$ATTRNET_CACHE`` if set, else ``~/.cache/attrnet``."""
    configured = os.environ.get("ATTRNET_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "attrnet"


def _manifest(params: SyntheticParams, root: Path) -> dict:
    """Record of a complete generation: parameters, version and image counts per folder."""
    counts = {f: len(list((root / f).glob("*.jpg"))) for f in (TRAIN_DIR, TEST_DIR, QUERY_DIR)}
    return {"generator": "attrnet.synthetic", "version": GENERATOR_VERSION,
            "params": asdict(params), "images": counts}


def _is_complete(target: Path, params: SyntheticParams) -> bool:
    """True when ``target`` holds a manifest written for exactly these parameters."""
    try:
        manifest = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = {"version": GENERATOR_VERSION, "params": asdict(params)}
    return all(manifest.get(key) == value for key, value in expected.items())


def ensure_synthetic_market(
    cache_dir: Path | str | None = None, workers: int | None = None, **params: int
) -> Path:
    """Return the cached synthetic set for ``params``, generating it first if needed.

    The set is written into a temporary folder that is renamed into place, and the manifest
    is written last, so an interrupted run never looks complete and is regenerated. Meant to
    be called by one process (e.g. Lightning's ``prepare_data``), not by every DDP rank.
    ``params`` are those of ``SyntheticParams``; ``workers`` as for
    ``generate_synthetic_market``.
    """
    settings = SyntheticParams(**params)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / settings.folder_name
    if _is_complete(target, settings):
        return target
    partial = cache / f".{settings.folder_name}.partial"
    for stale in (partial, target):
        if stale.exists():
            shutil.rmtree(stale)
    generate_synthetic_market(partial, workers=workers, **asdict(settings))
    os.replace(partial, target)
    manifest = json.dumps(_manifest(settings, target), indent=2, sort_keys=True)
    atomic_write_text(target / MANIFEST_NAME, manifest + "\n")
    return target

