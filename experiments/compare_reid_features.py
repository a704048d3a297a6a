"""Experiment: which features retrieve people best? Attribute logits vs identity embedding vs both.

Trains on the synthetic Market set (the default CPU settings of ``attrnet-train``):
  A. the study's attribute model (weighted BCE only),
  B. a joint attribute + identity model (``objective=apr``: BNNeck, label-smoothed ID loss,
     batch-hard triplet, P x K batches), same epochs,
  C. the study's re-ID step: A fine-tuned with ``experiment=reid_finetune`` for a few epochs,
then evaluates each available feature with ``attrnet-reid`` on the synthetic test set
(Market-1501 rules: query vs bounding_box_test) and on the validation identities (the study's
protocol). Prints a markdown table and writes it with the JSON of every figure.

    python experiments/compare_reid_features.py [--finetune-epochs 6] [--out experiments/results]

Each step runs the real entry points through Hydra's compose API, so every run folder under
``logs/experiments/reid_features/`` is the same as the command-line tools would write.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from attrnet.aggregate import markdown_table
from attrnet.config import compose_run_config
from attrnet.io import atomic_write_text
from attrnet.retrieval.from_config import evaluate
from attrnet.training import train

#: (model run, feature kind) rows of the table, in order.
ROWS = (
    ("A attributes", "logits"),
    ("B attributes + identity", "logits"),
    ("B attributes + identity", "identity"),
    ("B attributes + identity", "identity+logits"),
    ("C A fine-tuned (APR)", "logits"),
    ("C A fine-tuned (APR)", "identity"),
    ("C A fine-tuned (APR)", "identity+logits"),
)


def _config(name: str, folder: Path, overrides: list[str]) -> DictConfig:
    """The config in ``folder``, with data and caches found from the launch directory."""
    folder.mkdir(parents=True, exist_ok=True)
    return compose_run_config(name, folder, overrides, root_dir=Path.cwd())


def _train(folder: Path, overrides: list[str]) -> tuple[Path, float]:
    start = time.perf_counter()
    # a rerun replaces the earlier run in the folder (attrnet.run_folder refuses it otherwise)
    options = [*overrides, "trainer.enable_progress_bar=false", "overwrite=true"]
    train(_config("train", folder, options))
    return folder / "checkpoints" / "last.ckpt", time.perf_counter() - start


def _reid(checkpoint: Path, folder: Path, mode: str, features: str) -> dict[str, dict[str, float]]:
    overrides = [f"ckpt_path={checkpoint}", f"mode={mode}", f"features={features}"]
    return evaluate(_config("reid", folder, [*overrides, "distances=[euclidean,cosine]"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--root", type=Path, default=Path("logs/experiments/reid_features"))
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    args = parser.parse_args()

    models: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    models["A attributes"], seconds["A"] = _train(args.root / "A", [])
    models["B attributes + identity"], seconds["B"] = _train(args.root / "B", ["objective=apr"])
    models["C A fine-tuned (APR)"], seconds["C"] = _train(
        args.root / "C",
        [
            "experiment=reid_finetune",
            f"init_from={models['A attributes']}",
            f"optimizer.epochs={args.finetune_epochs}",
        ],
    )
    rows = []
    for model, features in ROWS:
        row = {"model": model, "features": features}
        for mode in ("market1501", "val"):
            folder = args.root / "reid" / f"{model.split()[0]}_{features}_{mode}"
            result = _reid(models[model], folder, mode, features)
            prefix = "test" if mode == "market1501" else "val"
            row |= {
                f"{prefix} rank1": result["euclidean"]["rank1"],
                f"{prefix} mAP": result["euclidean"]["mAP"],
                f"{prefix} mAP (cosine)": result["cosine"]["mAP"],
            }
        rows.append(row)
    table = pd.DataFrame(rows)
    markdown = "\n".join(markdown_table(table))
    command = (
        f"python experiments/compare_reid_features.py --finetune-epochs {args.finetune_epochs}"
    )
    text = (
        "# Re-ID features on the synthetic Market set\n\n"
        "test: query vs bounding_box_test of the synthetic test identities, Market-1501 rules; "
        "val: the study's protocol on the 151 validation identities (one query each). "
        "Euclidean distance (and mAP with the cosine distance), no re-ranking.\n\n"
        f"{markdown}\n\nTraining time (s, CPU): "
        + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
        + f"\n\nCommand: `{command}`\n"
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "reid_features.md", text)
    payload = {"rows": rows, "train_seconds": seconds, "command": command}
    atomic_write_text(args.out / "reid_features.json", json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
