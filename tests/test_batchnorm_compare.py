"""With vs without BatchNorm in one click: the plan pairs a network with its twin at the book's
learning rates (and a shared one) with equal data, seed, epochs and batch size; ResNet says why
it has no comparison; examples_to_reach reads epoch ends; a real tiny comparison trains every
run through the device queue."""
from __future__ import annotations

import pytest

from cnnviz.batchnorm.compare import (ComparisonRun, examples_per_epoch, examples_to_reach,
                                      plan, recorded, start_jobs)
from cnnviz.errors import CnnvizError
from cnnviz.presets import PRESETS
from cnnviz.training.engine import Point

LENET, LENET_BN = PRESETS["lenet"].spec, PRESETS["lenet-bn"].spec


def point(epoch: float, test_acc: float | None) -> Point:
    return Point(epoch, 1.0, 0.5, test_acc, 100.0, epoch)


def test_plan_for_lenet_pairs_it_with_lenet_bn_at_the_books_rates():
    runs = plan(LENET, epochs=3, limit=300)
    assert all(isinstance(r, ComparisonRun) for r in runs)
    assert [(r.spec, r.config.lr, r.batch_norm) for r in runs] == [
        (LENET, 0.9, False), (LENET_BN, 1.0, True)]
    assert [r.label for r in runs] == ["lenet (no BatchNorm) · lr 0.9 (book)",
                                       "lenet-bn · lr 1.0 (book)"]
    assert {(r.config.dataset, r.config.epochs, r.config.limit, r.config.seed,
             r.config.batch_size) for r in runs} == {("digits", 3, 300, 0, 256)}


def test_plan_from_lenet_bn_with_a_shared_rate_makes_four_equal_runs():
    runs = plan(LENET_BN, epochs=2, seed=7, shared_lr=0.5, batch_size=64)
    assert [r.label for r in runs] == [
        "lenet-bn · lr 1.0 (book)", "lenet (no BatchNorm) · lr 0.9 (book)",
        "lenet-bn · lr 0.5 (shared)", "lenet (no BatchNorm) · lr 0.5 (shared)"]
    assert [r.spec for r in runs] == [LENET_BN, LENET, LENET_BN, LENET]
    assert {(r.config.epochs, r.config.seed, r.config.batch_size, r.config.dataset)
            for r in runs} == {(2, 7, 64, "digits")}


def test_a_family_with_the_same_name_both_ways_says_which_is_which():
    runs = plan(PRESETS["vgg"].spec, epochs=1)
    assert [r.label.split(" · ")[0] for r in runs] == ["vgg (no BatchNorm)",
                                                        "vgg (with BatchNorm)"]
    assert runs[0].config.batch_size == runs[1].config.batch_size == 128


@pytest.mark.parametrize("name", ["resnet18", "densenet"])
def test_a_network_that_cannot_drop_batchnorm_has_no_comparison(name):
    with pytest.raises(CnnvizError, match="always have BatchNorm"):
        plan(PRESETS[name].spec)


def test_examples_to_reach_reads_the_first_test_at_or_above_the_level():
    points = [point(0.25, None), point(0.5, None), point(1.0, 0.6), point(1.5, None),
              point(2.0, 0.85), point(3.0, 0.9)]
    assert examples_to_reach(points, 0.5, 1000) == 1000
    assert examples_to_reach(points, 0.85, 1000) == 2000
    assert examples_to_reach(points, 0.88, 1000) == 3000
    assert examples_to_reach(points, 0.95, 1000) is None
    assert examples_to_reach([], 0.1, 1000) is None
    assert examples_to_reach([point(1.25, 0.7)], 0.7, 800) == 1000  # a stopped run's last test


def test_examples_per_epoch_follows_the_batch_plan():
    [run, _] = plan(LENET, limit=300, batch_size=64)
    assert examples_per_epoch(run.config) == 300
    [run, _] = plan(LENET, limit=257, batch_size=64)  # a last batch of one is dropped
    assert examples_per_epoch(run.config) == 256


def test_a_tiny_comparison_trains_every_run_through_the_queue():
    runs = plan(LENET, dataset="digits", epochs=2, limit=300, shared_lr=0.5, batch_size=64)
    jobs = start_jobs(runs, first_number=5)
    assert [(j.number, j.label) for j in jobs] == [(5 + i, r.label) for i, r in enumerate(runs)]
    for job in jobs:
        assert job.join(timeout=120), f"{job.label} did not end: {job.status()}"
    assert [j.state for j in jobs] == ["finished"] * 4, [j.message for j in jobs]
    per_epoch = examples_per_epoch(runs[0].config)
    for job in jobs:
        assert job.points()[-1].epoch == 2.0
        reached = examples_to_reach(job.points(), 0.0, per_epoch)
        assert reached == per_epoch  # the first test, at the end of epoch 1
    assert recorded(jobs[0]) is None and recorded(jobs[2]) is None
    history = recorded(jobs[1])
    assert len(history) == 4 and all(len(e) == len(jobs[1].points()) for e in history.values())
