"""The GPU checks of one short device session: the Feature maps library and the training engine on
CUDA, against the CPU, with the estimate's accuracy on the GPU. Printed as Markdown; nothing
is asserted, a failure is printed as a row (the session then still reports the rest).

1. Capture (one forward pass, every layer kept) on CUDA against the CPU for the book presets at
   their book sizes: the largest difference over all layers, and the milliseconds of a warm
   capture on each device.
2. Grad-CAM on CUDA against the CPU (the same weights and picture).
3. Training runs on CUDA: lenet-bn on the digits (10 epochs, batch 256, book recipe) and
   resnet18 at 96 (2 epochs): state, test accuracy, training examples/s.
4. The run-time estimate against the run on CUDA for the large book presets at their book
   sizes, one epoch of the first ``--limit`` digits.

Needs only torch, torchvision, numpy and scikit-learn (no Streamlit, Plotly or torchinfo).
Run from the repository root on a machine with a GPU:

    python3 benchmarks/bench_gpu.py [--limit 2048]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from cnnviz.activations.capture import capture, fresh_model  # noqa: E402
from cnnviz.activations.gradcam import grad_cam  # noqa: E402
from cnnviz.presets import PRESETS  # noqa: E402
from cnnviz.training.config import TrainConfig  # noqa: E402
from cnnviz.training.data import load_dataset  # noqa: E402
from cnnviz.training import recipe  # noqa: E402
from cnnviz.training.engine import TrainingRun, estimate_seconds  # noqa: E402

BOOK = ["lenet", "lenet-bn", "alexnet", "vgg", "nin", "googlenet", "resnet18", "densenet"]


def picture(spec) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, spec.in_channels, spec.input_size, spec.input_size, generator=g)


def warm_ms(model, x) -> float:
    capture(model, x)
    if x.is_cuda or next(model.parameters()).is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    capture(model, x)
    return (time.perf_counter() - start) * 1000


def check_capture(cuda) -> None:
    print("\n### 1. Capture on CUDA against the CPU (fresh weights, one random picture)\n")
    print("| preset | layers | largest |difference| | max |value| | CPU ms | CUDA ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in BOOK:
        try:
            spec = PRESETS[name].spec
            model, x = fresh_model(spec), picture(spec)
            cpu = capture(model, x)
            cpu_ms = warm_ms(model, x)
            gpu_model = fresh_model(spec).to(cuda)
            gpu = capture(gpu_model, x)
            gpu_ms = warm_ms(gpu_model, x)
            diff = max(float((cpu.outputs[k] - gpu.outputs[k]).abs().max()) for k in cpu.outputs)
            scale = max(float(t.abs().max()) for t in cpu.outputs.values())
            print(f"| {name} | {len(cpu.outputs)} | {diff:.2e} | {scale:.3g} | {cpu_ms:.0f} "
                  f"| {gpu_ms:.0f} |", flush=True)
        except Exception as exc:  # noqa: BLE001 - reported as a row
            print(f"| {name} | failed: {type(exc).__name__}: {exc} | | | | |", flush=True)
            traceback.print_exc()


def check_grad_cam(cuda) -> None:
    print("\n### 2. Grad-CAM on CUDA against the CPU\n")
    print("| preset | layer | map | largest |difference| |")
    print("|---|---|---|---:|")
    for name in ("lenet", "resnet18", "googlenet", "densenet"):
        try:
            spec = PRESETS[name].spec
            x = picture(spec)
            cam, layer = grad_cam(fresh_model(spec), x, 3)
            gpu_cam, gpu_layer = grad_cam(fresh_model(spec).to(cuda), x.to(cuda), 3)
            diff = float((cam - gpu_cam.cpu()).abs().max())
            print(f"| {name} | {layer} / {gpu_layer} | {tuple(cam.shape)} | {diff:.2e} |",
                  flush=True)
        except Exception as exc:  # noqa: BLE001
            print(f"| {name} | failed: {type(exc).__name__}: {exc} | | |", flush=True)
            traceback.print_exc()


def run(spec, config, data) -> TrainingRun:
    training = TrainingRun(spec, config, dataset=data).start()
    training.join()
    return training


def check_training() -> None:
    print("\n### 3. Training on CUDA (digits)\n")
    print("| preset | size | epochs | state | device | test acc | training examples/s | "
          "whole run s |")
    print("|---|---:|---:|---|---|---:|---:|---:|")
    data = load_dataset("digits")
    for name, size, epochs, batch in (("lenet-bn", 28, 10, 256), ("resnet18", 96, 2, 256)):
        try:
            spec = PRESETS[name].spec
            config = TrainConfig(dataset="digits", epochs=epochs, batch_size=batch, size=size,
                                 device="cuda")
            training = run(spec, config, data)
            last = training.points()[-1] if training.points() else None
            acc = f"{last.test_acc:.1%}" if last and last.test_acc is not None else "—"
            speed = f"{last.examples_per_sec:,.0f}" if last else "—"
            seconds = f"{last.seconds:.2f}" if last else "—"
            print(f"| {name} | {size} | {epochs} | {training.state} {training.message} | "
                  f"{training.device} | {acc} | {speed} | {seconds} |", flush=True)
        except Exception as exc:  # noqa: BLE001
            print(f"| {name} | failed: {type(exc).__name__}: {exc} | | | | | | |", flush=True)
            traceback.print_exc()


def check_estimate(limit: int) -> None:
    print(f"\n### 4. The estimate against the run on CUDA (the digits, first {limit}; book "
          "sizes; LeNets 10 epochs, the others 1), with cuDNN's autotuning off (the app's "
          "setting) and on\n")
    print("| preset | size | estimate s | actual s | estimate / actual | actual s with "
          "autotuning | its estimate / actual |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    data = load_dataset("digits", limit=limit)
    for name in BOOK:
        try:
            spec = PRESETS[name].spec
            epochs = 10 if spec.input_size <= 32 else 1
            config = TrainConfig(dataset="digits", epochs=epochs, size=spec.input_size,
                                 limit=limit, device="cuda")
            cells = []
            for tuned in (False, True):
                recipe.CUDNN_BENCHMARK = tuned
                estimate = estimate_seconds(spec, config)
                actual = run(spec, config, data).points()[-1].seconds
                cells.append((estimate, actual))
            recipe.CUDNN_BENCHMARK = False
            (e0, a0), (e1, a1) = cells
            print(f"| {name} | {spec.input_size} | {e0:.2f} | {a0:.2f} | {e0 / a0:.2f} | "
                  f"{a1:.2f} | {e1 / a1:.2f} |", flush=True)
        except Exception as exc:  # noqa: BLE001
            print(f"| {name} | failed: {type(exc).__name__}: {exc} | | | | | |", flush=True)
            traceback.print_exc()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2048)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check")
        return 1
    cuda = torch.device("cuda")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · "
          f"{torch.cuda.get_device_name(0)} · torch {torch.__version__} · Python "
          f"{platform.python_version()} · {os.cpu_count()} CPUs · `{' '.join(sys.argv)}`")
    check_capture(cuda)
    check_grad_cam(cuda)
    check_training()
    check_estimate(args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
