"""The BatchNorm page's memory on large networks: the peak of its two computations on one batch
(one layer's statistics, then train against eval mode), against the shape estimate that sets
the batch sizes it offers (``batchnorm.stats.batch_memory``, capped by CNNVIZ_MAX_BATCH_MB).

Each network (BatchNorm twin where it has none) runs in its own process from fresh weights, on
a batch of the digits at its input size. Measured: the peak above the process's memory before
the batch (the resident set's high-water mark on the CPU; ``torch.cuda.max_memory_allocated``
on a GPU). Baseline, in a process of its own on the same batch: what the page did before,
every layer's input kept at once and train and eval outputs held side by side
(``layer_outputs`` in both modes), from deep copies. Run from the repository root:

    .venv/bin/python benchmarks/bench_batchnorm_memory.py [--batch 16] [--device cpu|cuda]
        [--presets densenet121-imagenet vgg11-imagenet ...]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PRESETS = ["densenet121-imagenet", "vgg11-imagenet", "resnet18-imagenet", "googlenet-imagenet",
           "densenet", "vgg"]


def _peak_mb(device: str) -> float:
    import torch
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(preset: str, batch: int, device: str, what: str) -> dict:
    import torch

    from cnnviz.batchnorm import stats as bs
    from cnnviz.batchnorm.twins import has_batch_norm, twin
    from cnnviz.models import build, build_meta
    from cnnviz.presets import PRESETS as ALL
    from cnnviz.training.batches import prepare
    from cnnviz.training.data import load_dataset

    spec = ALL[preset].spec
    if not has_batch_norm(spec):
        spec = twin(spec).spec
    shape = (spec.in_channels, spec.input_size, spec.input_size)
    estimate = bs.batch_memory(build_meta(spec), shape) * batch / 2**20
    model = build(spec, seed=0).to(device)
    data = load_dataset("digits")
    x = prepare(data.train_images[:batch], channels=spec.in_channels,
                size=spec.input_size).to(device)
    paths = bs.bn_layers(model)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = (torch.cuda.memory_allocated() / 2**20 if device == "cuda" else _peak_mb(device))
    if what == "page":
        bs.batch_statistics(model, x, paths=[paths[-1]])
        bs.train_vs_eval(model, x)
    else:
        held = [bs.batch_statistics(copy.deepcopy(model), x),
                bs.layer_outputs(copy.deepcopy(model), x, "train"),
                bs.layer_outputs(copy.deepcopy(model), x, "eval")]
        del held
    return {"preset": preset, "batch": batch, "layers": len(paths), "estimate_mb": estimate,
            "mb": _peak_mb(device) - before}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", nargs="*", default=PRESETS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--what", default="page", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.batch, args.device, args.what)))
        return 0
    print(f"BatchNorm page memory, batch {args.batch}, device {args.device}")
    print(f"{'network':22s} {'BN layers':>9s} {'estimate':>9s} {'page':>9s} {'est/page':>8s} "
          f"{'before':>9s} {'before/page':>11s}")
    for preset in args.presets:
        r = {}
        for what in ("page", "before"):
            out = subprocess.run([sys.executable, __file__, "--one", preset, "--batch",
                                  str(args.batch), "--device", args.device, "--what", what],
                                 capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                print(f"{preset} ({what}): failed: {out.stderr.strip().splitlines()[-1:]}")
                break
            r[what] = json.loads(out.stdout.strip().splitlines()[-1])
        else:
            page, before = r["page"], r["before"]
            print(f"{preset:22s} {page['layers']:9d} {page['estimate_mb']:8,.0f}M "
                  f"{page['mb']:8,.0f}M {page['estimate_mb'] / max(page['mb'], 1):8.2f} "
                  f"{before['mb']:8,.0f}M {before['mb'] / max(page['mb'], 1):11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
