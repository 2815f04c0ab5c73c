"""The BatchNorm recorder on real runs of the digits: one entry per metric point per layer, the
last one the trained model's own numbers, the first already moved from the initialisation;
nothing recorded (and nothing broken) without BatchNorm; a stopped run and a reader polling
while the run goes."""
from __future__ import annotations

import time

import pytest
import torch

from cnnviz.batchnorm.recorder import BatchNormRecorder, Entry, batch_norm_layers, history
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from cnnviz.training.config import TrainConfig
from cnnviz.training.data import load_dataset
from cnnviz.training.engine import TrainingRun

LIMIT = 300
# BatchNorm2d on 8×8 digits at their own size: trains in a blink.
TINY = CustomSpec(1, 10, 8, (L.Conv(8, 3, padding=1), L.BatchNorm(), L.ReLU(),
                             L.MaxPool(2), L.Flatten(), L.Linear(128, 10)))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", limit=LIMIT)


def config(**changes) -> TrainConfig:
    return TrainConfig(**{"dataset": "digits", "epochs": 2, "batch_size": 64, "device": "cpu",
                          "limit": LIMIT, **changes})


def train(spec, data, **changes) -> tuple[TrainingRun, BatchNormRecorder]:
    recorder = BatchNormRecorder()
    run = TrainingRun(spec, config(**changes), dataset=data, callbacks=[recorder]).start()
    assert run.join(300), "the run did not finish in time"
    return run, recorder


def same(entry: Entry, layer: torch.nn.Module) -> bool:
    return all(torch.equal(got, want.detach().float().cpu()) for got, want in (
        (entry.running_mean, layer.running_mean), (entry.running_var, layer.running_var),
        (entry.gamma, layer.weight), (entry.beta, layer.bias)))


@pytest.fixture(scope="module")
def lenet_bn_run(digits):
    return train(PRESETS["lenet-bn"].spec, digits)


def test_one_entry_per_metric_point_per_layer(lenet_bn_run):
    run, recorder = lenet_bn_run
    assert run.state == "finished", run.message
    layers = batch_norm_layers(run.result.model)
    recorded = history(recorder)
    assert list(recorded) == [path for path, _ in layers] == ["b1.1", "b2.1", "head.2",
                                                              "head.5"]
    points = run.points()
    for path, layer in layers:
        entries = recorded[path]
        assert len(entries) == len(points) >= 2 * 2
        assert [e.epoch for e in entries] == [p.epoch for p in points]
        assert all(e.running_mean.shape == e.gamma.shape == (layer.num_features,)
                   and e.running_var.dtype == torch.float32 and e.beta.device.type == "cpu"
                   for e in entries)
    # training examples seen: exact at every point, a whole epoch at each epoch's end
    examples = [e.examples for e in recorded["b1.1"]]
    assert examples == sorted(examples) and examples[0] > 0
    ends = [e.examples for e, p in zip(recorded["b1.1"], points) if p.test_acc is not None]
    assert ends == [LIMIT, 2 * LIMIT]
    assert recorder.ended


def test_the_last_entry_is_the_trained_model_and_the_first_has_moved(lenet_bn_run):
    run, recorder = lenet_bn_run
    recorded = history(recorder)
    for path, layer in batch_norm_layers(run.result.model):
        first, last = recorded[path][0], recorded[path][-1]
        assert same(last, layer)
        c = layer.num_features  # the initialisation: mean 0, variance 1, γ = 1, β = 0
        assert not torch.equal(first.running_mean, torch.zeros(c))
        assert not torch.equal(first.running_var, torch.ones(c))
        assert not torch.equal(first.gamma, torch.ones(c))
        assert not torch.equal(first.beta, torch.zeros(c))
        assert not same(first, layer)  # and training went on after it


def test_a_network_without_batchnorm_records_nothing(digits):
    run, recorder = train(PRESETS["lenet"].spec, digits, epochs=1)
    assert run.state == "finished", run.message
    assert history(recorder) == {} and recorder.ended


def test_a_stopped_run_read_while_it_trains(digits):
    recorder = BatchNormRecorder()
    run = TrainingRun(TINY, config(epochs=10_000, batch_size=16, lr=0.1), dataset=digits,
                      callbacks=[recorder]).start()
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(seen) < 3 and time.monotonic() < deadline:  # a page polling the recorder
        count = len(history(recorder).get("1", []))
        if not seen or count > seen[-1]:
            seen.append(count)
        time.sleep(0.01)
    run.stop()
    assert run.join(60) and run.state == "stopped", run.message
    assert seen == sorted(seen) and seen[-1] >= 1
    [(path, entries)] = history(recorder).items()
    assert path == "1" and len(entries) == len(run.points())
    [(_, layer)] = batch_norm_layers(run.result.model)
    assert same(entries[-1], layer)


def test_examples_count_an_epoch_without_its_dropped_last_example():
    """257 examples at batch 64: the engine drops the last batch of one (it would break
    BatchNorm), so an epoch is 256 examples."""
    data = load_dataset("digits", limit=257)
    run, recorder = train(TINY, data, limit=257, lr=0.1)
    assert run.state == "finished", run.message
    entries = history(recorder)["1"]
    ends = [e.examples for e, p in zip(entries, run.points()) if p.test_acc is not None]
    assert ends == [256, 512]
