"""Benchmark: training and inference images/s per backbone, at one size, on the machine at hand.

Each backbone is a model config: ``resnet50``, ``resnet50_attention``, or any other name as a timm
network (``model=timm model.net.name=<name>``; default ConvNeXt-T, ViT-S/16 and Swin-T). On the
CPU, and on the GPU when there is one, it times

- training: attrnet's real config and Lightning Trainer on the synthetic set at ``--size``
  (``bench_runs.attrnet_run``: the device's trainer preset, ``trainer=cpu`` in fp32 or
  ``trainer=gpu`` in bf16 with channels_last, the swap's AdamW phase), steady-state images/s
  over ``--steps`` steps after ``--warmup`` steps;
- inference: ``attrnet.load``'s path (``run_module``: ``trainer.predict`` in fp32 over uint8
  batches of ``--batch``, the deployed graph with its normalisation and outputs), batch size
  over the median of ``--repeats`` calls;

all in this process, one backbone after another, with random weights. Prints a markdown table
and writes JSON. Peak memory is CUDA's per run (the CPU's peak RSS would be the process's, over
all rows, so it is not shown).

    python experiments/bench_backbones.py --size 256x128 --batch 32 --steps 20   # a GPU machine
    python experiments/bench_backbones.py --size 64x32 --batch 16 --steps 4      # a small CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import traceback
from typing import Any

import torch
from bench_runs import NATIVE_SIZE, attrnet_run, compose  # experiments/ is on sys.path
from omegaconf import OmegaConf

from attrnet.attributes import MARKET_TARGETS
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from attrnet.inference.info import OUTPUT_NAMES
from attrnet.inference.predict import prediction_trainer, run_module
from attrnet.io import atomic_write_text
from attrnet.models.loading import module_from_hparams
from attrnet.models.spec import ModelSpec

CONFIG_MODELS = ("resnet50", "resnet50_attention")
DEFAULT_BACKBONES = (
    *CONFIG_MODELS,
    "convnext_tiny",
    "vit_small_patch16_224",
    "swin_tiny_patch4_window7_224",
)
#: the trainer preset of each device
PRESETS = {"cpu": "cpu", "cuda": "gpu"}
INFERENCE_OUTPUTS = OUTPUT_NAMES[:3]  # logits, probabilities, embedding


def model_overrides(backbone: str) -> tuple[str, list[str]]:
    """The model config of a backbone name and the overrides that pick the network."""
    if backbone in CONFIG_MODELS:
        return backbone, []
    return "timm", [f"model.net.name={backbone}"]


def run_spec(args: argparse.Namespace, backbone: str, device: str) -> dict[str, Any]:
    """The ``bench_runs`` description of one backbone's training run on ``device``."""
    model, overrides = model_overrides(backbone)
    return {
        "kind": "attrnet",
        "backbone": backbone,
        "preset": PRESETS[device],
        "model": model,
        "size": list(args.size),
        "batch_size": args.batch,
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "workers": None,
        "augment_on_device": "preset",
        "overrides": overrides,
        "profile": 0,
        "train_ids": args.train_ids,
        "val_ids": 2,
        "images_per_id": 4,
    }


def inference_speed(spec: dict[str, Any], device: str, repeats: int) -> dict[str, Any]:
    """Images/s of ``run_module`` on the backbone's deployed graph (random weights, fp32)."""
    with tempfile.TemporaryDirectory() as folder:
        cfg = compose(spec, folder)
    names = tuple(MARKET_TARGETS)
    net = {**OmegaConf.to_container(cfg.model.net, resolve=True), "num_attributes": len(names)}
    model_spec = ModelSpec(names, tuple(spec["size"]), IMAGENET_MEAN, IMAGENET_STD).to_dict()
    plan = [{"optimizer": "adamw", "epochs": 1}]
    hparams = {"net": net, "optimizer": plan, "spec": model_spec, "threshold": 0.5}
    module = module_from_hparams(hparams).eval()
    trainer = prediction_trainer("gpu" if device == "cuda" else "cpu")
    batch = torch.randint(0, 256, (spec["batch_size"], 3, *spec["size"]), dtype=torch.uint8)

    def call() -> None:
        run_module(module, batch, INFERENCE_OUTPUTS, trainer=trainer, batch_size=len(batch))

    times = []
    for index in range(2 + repeats):  # two untimed warm-up calls
        start = time.perf_counter()
        call()
        if index >= 2:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    parameters = sum(p.numel() for p in module.net.parameters())
    return {
        "images_per_s": len(batch) / median,
        "median_s": median,
        "parameters_m": parameters / 1e6,
        "embedding_dim": module.net.embedding_dim,
    }


def measure(args: argparse.Namespace, backbone: str, device: str) -> dict[str, Any]:
    """One table row: training and inference of ``backbone`` on ``device`` (errors kept)."""
    spec = run_spec(args, backbone, device)
    row: dict[str, Any] = {"backbone": backbone, "device": device, "size": list(args.size)}
    try:
        trained = attrnet_run(spec)
        row["train"] = {
            key: trained[key]
            for key in ("images_per_s", "precision", "channels_last", "batch_size", "peak_memory")
        }
        row["inference"] = inference_speed(spec, device, args.repeats)
    except Exception as error:  # one backbone's failure (e.g. timm absent) is a row, not a crash
        traceback.print_exc()
        reason = error.__cause__ or error  # the network's own error, not Hydra's wrapper
        row["error"] = f"{type(reason).__name__}: {reason}".splitlines()[0]
    return row


def print_table(report: dict[str, Any]) -> None:
    env = report["environment"]
    print(f"\n{env['device']}; torch {env['torch']}; {env['cpu_count']} CPUs; ", end="")
    print(f"size {'x'.join(map(str, report['size']))}, batch {report['batch']}")
    print(
        "\n| device | backbone | params (M) | embedding | train precision "
        "| train img/s | inference img/s | train peak memory |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in report["rows"]:
        head = f"| {row['device']} | {row['backbone']} |"
        if "error" in row:
            print(f"{head} {row['error'][:100]} ||||||")
            continue
        train, infer = row["train"], row["inference"]
        memory = train["peak_memory"]
        shown = f"{memory['allocated_gib']:.2f} GiB" if memory.get("kind") == "cuda" else "-"
        print(
            f"{head} {infer['parameters_m']:.1f} | {infer['embedding_dim']} "
            f"| {train['precision']} | {train['images_per_s']:.1f} "
            f"| {infer['images_per_s']:.1f} | {shown} |"
        )


def parse_size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(256, 128), help="HxW input")
    parser.add_argument("--batch", type=int, default=32, help="training and inference batch")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--repeats", type=int, default=5, help="timed inference calls")
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES))
    parser.add_argument(
        "--devices", nargs="+", choices=sorted(PRESETS), default=None, help="default: all here"
    )
    parser.add_argument("--train-ids", type=int, default=32, help="synthetic identities")
    parser.add_argument("--out", default="experiments/results/bench_backbones.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("--devices cuda: no CUDA device here")
    load_before = os.getloadavg()[0]
    rows = []
    for device in devices:
        for backbone in args.backbones:
            print(f"{device} {backbone} ...", flush=True)
            rows.append(measure(args, backbone, device))
    report = {
        "size": list(args.size),
        "batch": args.batch,
        "rows": rows,
        "environment": {
            "device": torch.cuda.get_device_name() if "cuda" in devices else "cpu only",
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "synthetic_native_size": list(NATIVE_SIZE),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "args": {k: v for k, v in vars(args).items()},
        },
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
