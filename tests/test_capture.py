"""One forward pass keeps what every layer sees; the insides of the blocks add up."""
from __future__ import annotations

import pytest
import torch

from cnnviz.activations.capture import (blocks, block_of, capture, dense_parts, first_conv,
                                        fresh_model, inception_parts, layers, residual_parts)
from cnnviz.graph.trace import module_path_order, symbolic_graph
from cnnviz.presets import PRESETS


def picture(spec, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    size = spec.input_size
    return torch.rand(1, spec.in_channels, size, size, generator=generator)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_captured_shapes_equal_the_layer_table(name):
    spec = PRESETS[name].spec
    model = fresh_model(spec)
    cap = capture(model, picture(spec))
    table = layers(spec)
    assert table and {layer.key for layer in table} <= set(cap.outputs)
    for layer in table:
        assert tuple(cap.outputs[layer.key].shape) == layer.shape, layer.key
    # the leaves are the fx graph's call_module nodes, in the order the forward pass calls them
    leaves = [layer.key for layer in table if layer.is_leaf]
    assert leaves == module_path_order(symbolic_graph(model))
    assert cap.logits.shape == (spec.num_classes,)


def test_a_fresh_model_is_the_training_runs_initialisation():
    spec = PRESETS["lenet"].spec
    a, b = fresh_model(spec), fresh_model(spec)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not a.training
    other = fresh_model(spec, seed=1)
    assert not torch.equal(next(a.parameters()), next(other.parameters()))


def test_capture_leaves_the_model_as_it_was_and_takes_one_image():
    spec = PRESETS["lenet-bn"].spec
    model = fresh_model(spec).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    capture(model, picture(spec))
    assert model.training  # put back; BatchNorm ran in eval mode, so its statistics stayed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="one image"):
        capture(model, torch.rand(2, 1, 28, 28))


def test_x_plus_f_of_x_is_what_the_residual_block_adds_before_its_relu():
    spec = PRESETS["resnet18"].spec
    model = fresh_model(spec)
    before_relu = {}
    paths = blocks(model)["residual"]
    assert len(paths) == 8
    hooks = [model.get_submodule(f"{p}.act").register_forward_hook(
        lambda m, args, out, p=p: before_relu.__setitem__(p, args[0][0].detach()))
        for p in paths]
    cap = capture(model, picture(spec))
    for h in hooks:
        h.remove()
    projected = 0
    for path in paths:
        parts = residual_parts(model, cap, path)
        torch.testing.assert_close(parts.sum, before_relu[path], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(parts.out, torch.relu(parts.sum))
        if parts.projected:  # the 1×1 projection changes x's channels to F(x)'s
            projected += 1
            assert parts.shortcut.shape == parts.fx.shape != parts.x.shape
        else:
            assert torch.equal(parts.shortcut, parts.x)
        norms = parts.norms(0)
        assert norms["F(x)"] == pytest.approx(float(parts.fx[0].norm()))
    assert projected == 3  # the first block of b3, b4 and b5


def captured_blocks(preset: str, kind: str):
    """(model, capture, the paths of its ``kind`` blocks) of a fresh preset on a picture."""
    spec = PRESETS[preset].spec
    model = fresh_model(spec)
    return model, capture(model, picture(spec)), blocks(model)[kind]


def test_a_dense_blocks_colouring_adds_up_to_its_output_channels():
    model, cap, paths = captured_blocks("densenet", "dense")
    assert len(paths) == 4
    for path in paths:
        parts = dense_parts(model, cap, path)
        assert parts.producers[0][:2] == ("block input", 0)
        ends = [(start, end) for _, start, end in parts.producers]
        assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))  # contiguous, in order
        assert ends[-1][1] == parts.out.shape[0] == model.get_submodule(path).out_channels
        growth = {end - start for start, end in ends[1:]}
        assert growth == {32}
        # the block input is the output's first channels, untouched by the concatenation
        torch.testing.assert_close(parts.out[:ends[0][1]], cap.inputs[path])
    # a transition follows every dense block but the last and halves channels and size
    transitions = [dense_parts(model, cap, p).transition for p in paths]
    assert transitions[-1] is None
    for before, after, size_in, size_out in transitions[:-1]:
        assert after == before // 2 and size_out == size_in // 2


def test_the_inception_paths_concatenate_to_the_blocks_output():
    model, cap, paths = captured_blocks("googlenet", "inception")
    assert len(paths) == 9
    for path in paths:
        parts = inception_parts(model, cap, path)
        assert [label.split(":")[0] for label, _ in parts] == ["p1", "p2", "p3", "p4"]
        torch.testing.assert_close(torch.cat([t for _, t in parts]), cap.outputs[path])
        assert all(f"= {t.shape[0]}" in label for label, t in parts)


def test_block_of_finds_the_innermost_block_around_a_layer():
    model = fresh_model(PRESETS["resnet18"].spec)
    paths = blocks(model)["residual"]
    assert block_of("b3.0.body.conv1", paths) == "b3.0"
    assert block_of("b3.0", paths) == "b3.0"
    assert block_of("b1.0", paths) is None


def test_top_classes_use_the_data_sets_names_when_they_fit():
    spec = PRESETS["lenet"].spec
    cap = capture(fresh_model(spec), picture(spec))
    top = cap.top(tuple(str(d) for d in range(10)))
    assert len(top) == 5 and all(name in "0123456789" for name, _ in top)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert sum(p for _, p in cap.top(None, k=10)) == pytest.approx(1.0, abs=1e-5)
    assert cap.top(("a", "b"))[0][0].startswith("class ")  # 10 outputs, 2 names: no names


def test_the_first_convolution_is_found():
    name, conv = first_conv(fresh_model(PRESETS["alexnet"].spec))
    assert name == "b1.0" and conv.in_channels == 1
    assert conv.weight.dim() == 4
