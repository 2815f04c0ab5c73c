"""On a real CUDA GPU: faults the device itself raises, runs sharing it, and the BatchNorm page's
memory estimate against the allocator's own peak.

Skipped where torch sees no CUDA device (this machine and CI have none); run on a GPU machine
with ``python -m pytest tests/test_gpu.py`` (docs/benchmarks.md records the last such run).
Everything the CPU can show about the same code is tested elsewhere with simulated faults
(tests/test_faults.py); here the faults are the GPU's own.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cnnviz.batchnorm import stats as bs
from cnnviz.batchnorm.twins import has_batch_norm, twin
from cnnviz.models import build, build_meta
from cnnviz.presets import PRESETS
from cnnviz.training.batches import prepare
from cnnviz.training.config import TrainConfig
from cnnviz.training.data import load_dataset
from cnnviz.training.engine import TrainingRun
from cnnviz.training.job import TrainingJob
from cnnviz.training.queue import DEVICES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

ROOT = Path(__file__).resolve().parents[1]
LENET_BN = PRESETS["lenet-bn"].spec


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# A device-side assert breaks the process's CUDA context for good: every later CUDA call fails,
# as when the GPU goes away. It runs in a process of its own.
DEVICE_FAULT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    import torch
    import torch.nn.functional as F
    from cnnviz.presets import PRESETS
    from cnnviz.training.config import TrainConfig, lost_devices, resolve_device
    from cnnviz.training.engine import TrainingRun

    calls = {{"n": 0}}
    real = F.cross_entropy

    def faulty(scores, labels, *args, **kwargs):  # the 30th step's labels are out of range
        calls["n"] += 1
        if calls["n"] == 30:
            labels = labels + 1000
        return real(scores, labels, *args, **kwargs)

    F.cross_entropy = faulty
    spec = PRESETS["lenet-bn"].spec
    config = TrainConfig(dataset="digits", epochs=3, batch_size=32, lr=0.5, device="cuda")
    first = TrainingRun(spec, config).start()
    first.join(300)
    auto = str(resolve_device("auto"))
    second = TrainingRun(spec, TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.5,
                                           limit=300, device="auto")).start()
    second.join(300)
    print(json.dumps({{"first": [first.state, first.message, first.device],
                      "lost": sorted(lost_devices()), "auto": auto,
                      "second": [second.state, second.message, second.device]}}))
""")


def test_a_real_device_fault_fails_the_run_by_name_and_auto_moves_to_the_cpu():
    out = subprocess.run([sys.executable, "-c", DEVICE_FAULT.format(root=str(ROOT))],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    state, message, device = found["first"]
    assert state == "failed" and device.startswith("cuda")
    assert message.startswith(f"the device {device} stopped responding in epoch ")
    assert "CUDA error" in message and "choose cpu and Start again" in message
    assert "Traceback" not in message
    assert "cuda" in found["lost"]
    assert found["auto"] == "cpu"  # auto passes over the broken device
    assert found["second"][0] == "finished" and found["second"][2] == "cpu", found["second"]


def test_a_run_out_of_gpu_memory_says_so_frees_it_and_the_next_run_trains():
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    free, _ = torch.cuda.mem_get_info()
    # another program holds all but 256 MB of the GPU; VGG at 224 with a batch of 128 needs GBs
    filler = torch.empty(free - 256 * 2**20, dtype=torch.uint8, device="cuda")
    try:
        config = TrainConfig(dataset="digits", epochs=1, batch_size=128, lr=0.01, limit=512,
                             device="cuda")
        run = TrainingRun(PRESETS["vgg"].spec, config).start()
        assert run.join(600)
        assert run.state == "failed", run.message
        assert run.message.startswith("out of memory at batch size 128 on cuda"), run.message
        assert "try batch size 64" in run.message
        assert run.model is None
    finally:
        del filler
        torch.cuda.empty_cache()  # back to the driver: CUDA's own allocations need it too
    assert torch.cuda.memory_allocated() - base < 64 * 2**20  # the run's memory was let go
    small = TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.5, limit=300,
                        device="cuda")
    again = TrainingRun(LENET_BN, small).start()
    assert again.join(300) and again.state == "finished", again.message


def test_runs_on_the_gpu_queue_one_at_a_time_and_each_knows_its_place():
    long = TrainConfig(dataset="digits", epochs=50, batch_size=16, lr=0.5, device="cuda")
    short = TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.5, limit=300,
                        device="cuda")
    first = TrainingJob(1, "lenet-bn", LENET_BN, long).start()
    wait_for(lambda: first.points())
    second = TrainingJob(2, "lenet-bn", LENET_BN, short).start()
    third = TrainingJob(3, "lenet-bn", LENET_BN, short).start()
    wait_for(lambda: second.queue_position() == 1 and third.queue_position() == 2)
    assert first.queue_position() == 0 and first.state == "running"
    assert second.state == third.state == "queued"
    assert DEVICES.waiting(first.device) == 2
    first.stop()
    assert first.join(120) and first.state == "stopped"
    assert second.join(300) and third.join(300)
    assert second.state == third.state == "finished"
    assert second.device == third.device == first.device


@pytest.mark.parametrize("preset", ["densenet121-imagenet", "vgg11-imagenet", "resnet18-imagenet",
                                    "googlenet-imagenet", "densenet", "vgg", "nin", "lenet-bn"])
def test_the_batchnorm_pages_memory_estimate_bounds_the_gpus_peak(preset, record_property):
    spec = PRESETS[preset].spec
    if not has_batch_norm(spec):
        spec = twin(spec).spec
    shape = (spec.in_channels, spec.input_size, spec.input_size)
    batch = 16 if spec.input_size > 64 else 64
    model = build(spec, seed=0).cuda()
    x = prepare(load_dataset("digits").train_images[:batch], channels=spec.in_channels,
                size=spec.input_size).cuda()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    bs.batch_statistics(model, x, paths=[bs.bn_layers(model)[-1]])
    bs.train_vs_eval(model, x)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    estimate = bs.batch_memory(build_meta(spec), shape) * batch
    record_property("peak_mb", round(peak / 2**20, 1))
    record_property("estimate_mb", round(estimate / 2**20, 1))
    print(f"{preset}: batch {batch}, GPU peak {peak / 2**20:,.1f} MB, "
          f"estimate {estimate / 2**20:,.1f} MB")
    assert peak <= estimate
