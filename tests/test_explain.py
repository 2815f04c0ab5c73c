"""Each connection is explained with the network's own numbers."""
from __future__ import annotations

import dataclasses

from cnnviz.graph.explain import explanations
from cnnviz.presets import PRESETS


def by_path(name: str) -> dict[str, str]:
    return {e.path: e.text for e in explanations(PRESETS[name].spec)}


def test_a_chain_is_explained_once_as_a_chain():
    for name in ("lenet", "alexnet", "vgg", "nin"):
        [only] = explanations(PRESETS[name].spec)
        assert only.kind == "main" and "chain" in only.text


def test_residual_shortcuts_say_when_x_needs_a_projection():
    found = explanations(PRESETS["resnet18"].spec)
    assert [e.kind for e in found].count("projection") == 3
    assert [e.kind for e in found].count("identity") == 5
    text = by_path("resnet18")["b3.0"]
    assert "x is 64×24×24 and F(x) is 128×12×12" in text
    assert "1×1 conv with stride 2 (64 → 128 channels and 24×24 → 12×12)" in text
    assert "64×24×24 and F(x) is 64×24×24, the same shape" in by_path("resnet18")["b2.0"]


def test_dense_blocks_add_up_their_growth_and_the_transition_halves():
    text = by_path("densenet")["b2.dense"]
    assert "takes 64 channels and concatenates 4 × 32 more" in text
    assert "64 + 128 = 192 channels at 24×24" in text
    assert "halves them to 96" in text and "24×24 → 12×12" in text
    assert "transition" not in by_path("densenet")["b5.dense"]  # the last block has none


def test_inception_blocks_name_their_four_paths_and_the_sum():
    text = by_path("googlenet")["b3.0"]
    assert "192×12×12 input" in text
    assert "c1 = 64" in text and "c2[1] = 128" in text and "c3[1] = 32" in text
    assert "64 + 128 + 32 + 32 = 256" in text


def test_the_numbers_follow_the_network_as_edited():
    spec = PRESETS["densenet"].spec
    edited = dataclasses.replace(spec, growth_rate=16)
    assert "4 × 16" in {e.path: e.text for e in explanations(edited)}["b2.dense"]


def test_every_preset_is_explained():
    for name, preset in PRESETS.items():
        assert explanations(preset.spec), name
