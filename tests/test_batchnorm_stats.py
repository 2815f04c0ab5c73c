"""BatchNorm statistics: held to hand computations and to nn.BatchNorm's own buffers."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cnnviz.batchnorm.stats import (BatchNormError, BatchOfOne, NoBatchNormError,
                                    after_step_running, batch_memory, batch_of_one,
                                    batch_spread, batch_statistics, bn_layers, layer_outputs,
                                    normalised, spread_memory, train_vs_eval, undo, with_affine)
from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import spec_sizes
from cnnviz.training.batches import prepare
from cnnviz.training.data import load_dataset

LENET_BN = ["b1.1", "b2.1", "head.2", "head.5"]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def batch(digits):
    return prepare(digits.train_images[:64], channels=1, size=28)


def _lenet_bn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(PRESETS["lenet-bn"].spec)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    now = model.state_dict()
    assert now.keys() == snapshot.keys()
    for key, value in snapshot.items():
        assert torch.equal(now[key], value), key


def _trained(digits, steps: int = 40) -> nn.Module:
    model = _lenet_bn(1).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        index = torch.randperm(len(digits.train_labels), generator=gen)[:128]
        x = prepare(digits.train_images[index], channels=1, size=28)
        loss = nn.functional.cross_entropy(model(x), digits.train_labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_bn_layers_in_forward_order():
    assert bn_layers(_lenet_bn()) == LENET_BN
    paths = bn_layers(build(PRESETS["resnet18"].spec, device="meta"))
    assert paths[0] == "b1.1" and paths[1:3] == ["b2.0.body.bn1", "b2.0.body.bn2"]
    assert len(paths) == 17


def test_batch_statistics_equal_a_hand_computation(batch):
    model = _lenet_bn()
    stats = batch_statistics(model, batch)
    assert list(stats) == LENET_BN
    first = stats["b1.1"]
    with torch.no_grad():
        x = model.b1[0](batch)  # the first BatchNorm's input, computed independently
    assert torch.allclose(first.input, x)
    assert first.kind == "BatchNorm2d" and first.channels == 6
    assert first.count == 64 * 24 * 24
    assert torch.allclose(first.batch_mean, x.mean(dim=(0, 2, 3)))
    assert torch.allclose(first.batch_var_biased, x.var(dim=(0, 2, 3), unbiased=False))
    assert torch.allclose(first.batch_var_unbiased, x.var(dim=(0, 2, 3), unbiased=True))
    assert torch.equal(first.running_mean, torch.zeros(6))
    assert torch.equal(first.running_var, torch.ones(6))
    assert torch.equal(first.gamma, model.b1[1].weight.detach())
    assert first.eps == 1e-5 and first.momentum == 0.1
    dense = stats["head.2"]
    assert dense.kind == "BatchNorm1d" and dense.count == 64 and dense.channels == 120
    assert torch.allclose(dense.batch_mean, dense.input.mean(dim=0))
    assert torch.allclose(dense.batch_var_biased, dense.input.var(dim=0, unbiased=False))


def test_eval_mode_statistics_see_running_normalised_inputs(batch):
    model = _lenet_bn()
    train, evald = batch_statistics(model, batch, "train"), batch_statistics(model, batch, "eval")
    assert torch.allclose(train["b1.1"].input, evald["b1.1"].input)
    assert not torch.allclose(train["b2.1"].input, evald["b2.1"].input)
    with pytest.raises(BatchNormError, match="mode"):
        batch_statistics(model, batch, "predict")


def test_running_statistics_after_one_step_follow_pytorch_unbiased_update(batch, digits):
    model = _lenet_bn()
    stats = batch_statistics(model, batch)
    stepped = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(stepped.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(stepped(batch), digits.train_labels[:64])
    loss.backward()
    optimizer.step()
    layers = dict(stepped.named_modules())
    for path, s in stats.items():
        mean, var = after_step_running(s)
        assert torch.allclose(layers[path].running_mean, mean, atol=1e-6), path
        assert torch.allclose(layers[path].running_var, var, atol=1e-6), path
        biased = 0.9 * s.running_var + 0.1 * s.batch_var_biased
        assert not torch.allclose(layers[path].running_var, biased, rtol=0, atol=1e-7), path


def test_momentum_none_is_the_cumulative_average():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, momentum=None))
    trained = copy.deepcopy(model).train()
    torch.manual_seed(0)
    batches = [torch.randn(5, 2, 6, 6) * (i + 1) + i for i in range(4)]
    means, variances = [], []
    for x in batches:
        s = batch_statistics(trained, x)["1"]
        assert s.momentum is None
        expected = after_step_running(s)
        with torch.no_grad():
            trained(x)
        assert torch.allclose(trained[1].running_mean, expected[0], atol=1e-5)
        assert torch.allclose(trained[1].running_var, expected[1], atol=1e-4)
        means.append(s.batch_mean)
        variances.append(s.batch_var_unbiased)
    # the init (0, 1) counts for nothing: the running values are the plain average
    assert torch.allclose(trained[1].running_mean, torch.stack(means).mean(0), atol=1e-5)
    assert torch.allclose(trained[1].running_var, torch.stack(variances).mean(0), atol=1e-4)


def test_normalised_channel(batch):
    model = _lenet_bn()
    with torch.no_grad():
        model.b2[1].weight.copy_(torch.linspace(0.5, 2.0, 16))
        model.b2[1].bias.copy_(torch.linspace(-1.0, 1.0, 16))
    s = batch_statistics(model, batch)["b2.1"]
    for channel in (0, 7, 15):
        x, x_hat, y = normalised(s, channel)
        assert x.shape == x_hat.shape == y.shape == (64 * 8 * 8,)
        assert torch.allclose(x, s.input[:, channel].reshape(-1))
        assert abs(float(x_hat.mean())) < 1e-4
        assert float(x_hat.var(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
        assert torch.allclose(y, s.gamma[channel] * x_hat + s.beta[channel])
    # x̂ is what the layer itself outputs with γ = 1, β = 0 in train mode
    plain = with_affine(model, "b2.1", None, torch.ones(16), torch.zeros(16))
    out = layer_outputs(plain, batch)["b2.1"]
    assert torch.allclose(out[:, 3].reshape(-1), normalised(s, 3)[1], atol=1e-5)
    with pytest.raises(BatchNormError, match="channels 0…15"):
        normalised(s, 16)


@pytest.mark.parametrize("path", ["b2.1", "head.2"])
def test_undo_gives_the_input_back(batch, path):
    model = _lenet_bn()
    before = _snapshot(model)
    s = batch_statistics(model, batch)[path]
    gamma, beta = undo(s)
    undone = model
    for channel in range(s.channels):
        undone = with_affine(undone, path, channel, gamma[channel], beta[channel])
    _assert_same(model, before)
    assert torch.allclose(layer_outputs(undone, batch)[path], s.input, atol=1e-4, rtol=1e-4)
    at_once = with_affine(model, path, None, gamma, beta)
    assert torch.allclose(layer_outputs(at_once, batch)[path], s.input, atol=1e-4, rtol=1e-4)
    # one channel alone changes that channel only
    one = layer_outputs(with_affine(model, path, 0, gamma[0], beta[0]), batch)[path]
    plain = layer_outputs(model, batch)[path]
    assert torch.allclose(one[:, 0], s.input[:, 0], atol=1e-4, rtol=1e-4)
    assert torch.equal(one[:, 1:], plain[:, 1:])


def test_train_vs_eval_gap_shrinks_once_running_statistics_catch_up(batch, digits):
    untrained = train_vs_eval(_lenet_bn(), batch)
    assert [g.path for g in untrained.layers] == LENET_BN
    assert untrained.total == 64
    trained_model = _trained(digits)
    before = _snapshot(trained_model)
    trained = train_vs_eval(trained_model, batch)
    _assert_same(trained_model, before)
    assert not trained_model.training
    # untrained: running statistics are the init 0 / 1, far from the batch's
    assert max(g.relative for g in untrained.layers) > 0.5
    assert (sum(g.relative for g in trained.layers)
            < 0.5 * sum(g.relative for g in untrained.layers))
    assert trained.changed < 64 * 0.2
    assert all(g.mean_abs_diff >= 0 for g in trained.layers)


def test_train_vs_eval_on_untrained_resnet18(digits):
    torch.manual_seed(0)
    model = build(PRESETS["resnet18"].spec)
    x = prepare(digits.train_images[:8], channels=1, size=96)
    gap = train_vs_eval(model, x)
    assert len(gap.layers) == 17 and gap.total == 8
    assert gap.layers[0].relative > 0.5


def test_no_function_changes_the_callers_model(batch, digits):
    model = _lenet_bn()
    before = _snapshot(model)
    s = batch_statistics(model, batch)
    batch_statistics(model, batch, "eval")
    after_step_running(s["b1.1"])
    with_affine(model, "b1.1", 0, 2.0, 1.0)
    layer_outputs(model, batch)
    train_vs_eval(model, batch)
    batch_spread(model, batch, "b2.1", [4, 8], 3, torch.Generator().manual_seed(0))
    batch_of_one(model, 28)
    _assert_same(model, before)
    assert model.training  # build() leaves it in train mode; nothing switched it


def test_batch_of_one_on_lenet_bn():
    records = batch_of_one(_lenet_bn(), 28)
    assert [r.path for r in records] == LENET_BN
    assert all(isinstance(r, BatchOfOne) for r in records)
    by_path = {r.path: r for r in records}
    assert by_path["b1.1"].ok and by_path["b1.1"].values_per_channel == 24 * 24
    assert by_path["b2.1"].ok and by_path["b2.1"].values_per_channel == 8 * 8
    for path in ("head.2", "head.5"):
        assert not by_path[path].ok and by_path[path].values_per_channel == 1
        assert "Expected more than 1 value per channel" in by_path[path].message


def test_batch_of_one_on_resnet18_at_32_finds_the_1x1_map():
    spec = PRESETS["resnet18"].spec
    model = build(spec, device="meta")
    refused = [r for r in batch_of_one(model, 32) if not r.ok]
    assert refused and all(r.path.startswith("b5.") for r in refused)
    assert all(r.values_per_channel == 1 and "1×1 map" in r.message for r in refused)
    # the Input size page's report agrees: batch size 1 in training needs a larger size
    report = spec_sizes(spec).batch_one
    assert report.min_size > 32
    assert all(r.ok for r in batch_of_one(model, report.min_size))
    assert not all(r.ok for r in batch_of_one(model, report.min_size - 1))


def test_batch_of_one_refusal_is_pytorchs(batch):
    model = _lenet_bn()
    with pytest.raises(BatchNormError, match="one value per channel"):
        batch_statistics(model, batch[:1])
    stats = batch_statistics(model, batch[:1], "eval")  # eval mode runs a batch of one
    assert stats["head.2"].count == 1


def test_batch_spread_shrinks_as_the_batch_grows(digits):
    model = _trained(digits, steps=10)
    pool = prepare(digits.train_images[:512], channels=1, size=28)
    gen = torch.Generator().manual_seed(0)
    spread = batch_spread(model, pool, "b2.1", [1, 4, 64], 40, gen)
    assert set(spread) == {1, 4, 64}
    for size in (1, 4, 64):
        assert spread[size].shape == (40, 16)
    std = {size: spread[size].std(dim=0).mean() for size in spread}
    assert std[1] > std[4] > std[64]
    dense = batch_spread(model, pool, "head.2", [1, 8], 5, gen)
    assert isinstance(dense[1], BatchOfOne) and not dense[1].ok and dense[1].path == "head.2"
    assert dense[8].shape == (5, 120)
    with pytest.raises(BatchNormError, match="outside"):
        batch_spread(model, pool, "b2.1", [1000], 2, gen)


def test_user_facing_problems_raise_batchnorm_errors(batch):
    plain = build(PRESETS["lenet"].spec)
    for call in (lambda: batch_statistics(plain, batch), lambda: train_vs_eval(plain, batch),
                 lambda: batch_of_one(plain, 28)):
        with pytest.raises(NoBatchNormError, match="no BatchNorm"):
            call()
    with pytest.raises(BatchNormError, match="no BatchNorm layer at 'b1.0'"):
        with_affine(_lenet_bn(), "b1.0", 0, 1.0, 0.0)
    with pytest.raises(BatchNormError, match="channels 0…5"):
        with_affine(_lenet_bn(), "b1.1", 6, 1.0, 0.0)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_one_layers_statistics_are_those_of_the_whole_pass(batch, digits, mode):
    model = _trained(digits, steps=5)
    every = batch_statistics(model, batch, mode)
    assert list(every) == LENET_BN
    for path in LENET_BN:
        one = batch_statistics(model, batch, mode, paths=[path])
        assert list(one) == [path]
        for field in ("batch_mean", "batch_var_biased", "batch_var_unbiased", "running_mean",
                      "running_var", "gamma", "beta", "input"):
            assert torch.equal(getattr(one[path], field), getattr(every[path], field)), field
        assert one[path].batches_tracked == every[path].batches_tracked == 5
    with pytest.raises(BatchNormError, match="no BatchNorm layer at 'b1.0'"):
        batch_statistics(model, batch, paths=["b1.0"])


def test_train_vs_eval_is_the_two_modes_outputs_compared(batch, digits):
    model = _trained(digits, steps=5)
    gap = train_vs_eval(model, batch)
    train, evald = layer_outputs(model, batch, "train"), layer_outputs(model, batch, "eval")
    for layer in gap.layers:
        diff = (train[layer.path] - evald[layer.path]).abs().mean()
        rms = train[layer.path].pow(2).mean().sqrt()
        assert layer.mean_abs_diff == pytest.approx(float(diff), rel=1e-6)
        assert layer.relative == pytest.approx(float(diff / rms), rel=1e-6)
    assert [g.path for g in gap.layers] == LENET_BN


def test_a_copy_shares_the_weights_and_owns_what_it_changes(batch):
    model = _lenet_bn()
    changed = with_affine(model, "b1.1", 0, 2.0, 1.0)
    mine = dict(model.named_parameters())
    for name, p in changed.named_parameters():
        shared = p.data_ptr() == mine[name].data_ptr()
        assert shared is (not name.startswith("b1.1.")), name
    assert float(changed.get_submodule("b1.1").weight.detach()[0]) == 2.0
    assert float(model.get_submodule("b1.1").weight.detach()[0]) == 1.0
    for name, b in changed.named_buffers():  # a training copy writes its running statistics
        assert b.data_ptr() != dict(model.named_buffers())[name].data_ptr(), name


def test_batch_memory_is_counted_from_the_shapes():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 8 * 8, 10), nn.BatchNorm1d(10))
    # BatchNorm outputs: 4·8·8 + 10 values an image; the largest activation 4·8·8
    expected = 1.4 * 4 * ((256 + 10) + 8 * 256)
    assert batch_memory(model, (1, 8, 8)) == int(expected)
    # the spread: a pool of 100 images of 1·8·8 and one forward pass of 16
    assert spread_memory(model, (1, 8, 8), 16, 100) == int(1.4 * 4 * (100 * 64 + 16 * 8 * 256))
    with pytest.raises(NoBatchNormError):
        batch_memory(nn.Sequential(nn.Conv2d(1, 4, 3)), (1, 8, 8))
