"""Benchmark: inference throughput and latency, PyTorch eager vs onnxruntime, batch 1 and 32.

The deployed graph (``attrnet.inference.network.InferenceNetwork``: uint8 images in, in-graph
normalisation, logits + probabilities + embedding out) of a ResNet50 with 32 attributes (random
weights, or ``--ckpt``) at each input size, run by PyTorch eager (``torch.inference_mode``),
by the library's torch path (``run_module``, i.e. ``trainer.predict``, what ``attrnet.load(ckpt)``
uses) and by onnxruntime on the exported graph; on the CPU, and on the GPU when one is present.
Prints a markdown table and writes JSON.

    python experiments/bench_inference.py [--sizes 256x128 64x32] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch

from attrnet.attributes import MARKET_TARGETS
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from attrnet.inference.export import onnx_bytes
from attrnet.inference.network import InferenceNetwork, model_info
from attrnet.inference.predict import prediction_trainer, run_module
from attrnet.io import atomic_write_text
from attrnet.models.legacy import RESNET50
from attrnet.models.loading import load_attribute_module, module_from_hparams
from attrnet.models.module import AttributeModule
from attrnet.models.spec import ModelSpec

OUTPUTS = ("logits", "probabilities", "embedding")


def timed(call: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def build_module(args: argparse.Namespace, size: tuple[int, int]) -> AttributeModule:
    if args.ckpt:
        return load_attribute_module(args.ckpt)
    torch.manual_seed(0)
    names = list(MARKET_TARGETS)
    net = {"_target_": RESNET50, "num_attributes": len(names), "attention": args.attention}
    spec = ModelSpec(tuple(names), size, IMAGENET_MEAN, IMAGENET_STD).to_dict()
    plan = [{"optimizer": "adamw", "epochs": 1}]
    return module_from_hparams({"net": net, "optimizer": plan, "spec": spec, "threshold": 0.5})


def engines(module: AttributeModule, device: str) -> dict[str, Callable[[np.ndarray], object]]:
    """Callables that run the whole graph on a uint8 batch, keyed by engine name."""
    info = model_info(module)
    network = InferenceNetwork(module, info, OUTPUTS).eval().to(device)

    def eager(batch: np.ndarray) -> None:
        with torch.inference_mode():
            network(torch.from_numpy(batch).to(device))
            if device == "cuda":
                torch.cuda.synchronize()

    trainer = prediction_trainer("gpu" if device == "cuda" else "cpu")  # once, as attrnet.load

    def lightning(batch: np.ndarray) -> None:
        run_module(
            module, torch.from_numpy(batch), OUTPUTS, trainer=trainer, batch_size=len(batch)
        )

    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    found = {"pytorch eager": eager, "pytorch trainer.predict (run_module)": lightning}
    if provider in ort.get_available_providers():
        session = ort.InferenceSession(onnx_bytes(module.cpu(), info), providers=[provider])
        found["onnxruntime"] = lambda batch: session.run(list(OUTPUTS), {"images": batch})
        module.to(device)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results/bench_inference.json")
    parser.add_argument("--sizes", nargs="+", default=["256x128", "64x32"], help="HxW inputs")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--ckpt", default=None, help="benchmark this checkpoint (its own size)")
    parser.add_argument("--attention", action="store_true", help="CBAM model (random weights)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    load_before = os.getloadavg()[0]
    for text in [None] if args.ckpt else args.sizes:
        size = tuple(int(v) for v in text.split("x")) if text else None
        module = build_module(args, size).eval()
        size = module.spec.image_size
        for device in devices:
            for engine, call in engines(module, device).items():
                for batch_size in args.batches:
                    batch = np.random.default_rng(0).integers(
                        0, 256, (batch_size, 3, *size), dtype=np.uint8
                    )
                    repeats = args.repeats if batch_size > 1 else 4 * args.repeats
                    times = timed(lambda c=call, b=batch: c(b), 2, repeats)
                    median = statistics.median(times)
                    rows.append(
                        {
                            "device": device,
                            "engine": engine,
                            "image_size": list(size),
                            "batch": batch_size,
                            "latency_ms": 1000 * median,
                            "images_per_s": batch_size / median,
                            "times_s": times,
                        }
                    )
                    print(f"{device} {engine} {size} batch {batch_size}: {1000 * median:.1f} ms")
    report = {
        "model": args.ckpt or f"ResNet50{' + CBAM' if args.attention else ''}, 32 attributes",
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "results": rows,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(
        f"\n{report['model']}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"onnxruntime {ort.__version__}; median of {args.repeats} (batch 1: {4 * args.repeats})"
    )
    print("\n| device | input | engine | batch | latency (ms) | images/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        height, width = r["image_size"]
        print(
            f"| {r['device']} | {height}x{width} | {r['engine']} | {r['batch']} "
            f"| {r['latency_ms']:.1f} | {r['images_per_s']:.1f} |"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
