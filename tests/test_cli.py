"""The command line as the README shows it: presets, summary, sizes, train's text output;
one-line errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cnnviz.cli import main
from cnnviz.presets import PRESETS
from cnnviz.specs import spec_to_json

PRESET_NAMES = ["lenet", "lenet-bn", "alexnet", "vgg", "nin", "googlenet", "resnet18",
                  "densenet", "notes-alexnet", "notes-nin", "alexnet-imagenet",
                  "vgg11-imagenet", "googlenet-imagenet", "resnet18-imagenet",
                  "densenet121-imagenet"]
DEFAULT_SIZES = {"lenet": 28, "lenet-bn": 28, "alexnet": 224, "vgg": 224, "nin": 224,
                 "googlenet": 96, "resnet18": 96, "densenet": 96}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_every_named_network(capsys):
    code, out, _ = run(capsys, "presets", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == PRESET_NAMES
    by_name = {r["name"]: r for r in rows}
    for name, size in DEFAULT_SIZES.items():
        assert (by_name[name]["input_size"], by_name[name]["in_channels"],
                by_name[name]["num_classes"]) == (size, 1, 10)
    for name in PRESET_NAMES[-5:]:
        assert (by_name[name]["in_channels"], by_name[name]["num_classes"]) == (3, 1000)
    code, out, _ = run(capsys, "presets")
    assert code == 0 and all(name in out for name in PRESET_NAMES)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_summary_and_sizes_json_on_every_preset(capsys, name):
    code, out, err = run(capsys, "summary", name, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == ["input_shape", "layers", "total_params", "mult_adds"]
    spec = PRESETS[name].spec
    assert data["input_shape"] == [1, spec.in_channels, spec.input_size, spec.input_size]
    assert all(list(layer) == ["name", "type", "output_shape", "params"]
               for layer in data["layers"])
    assert data["layers"][-1]["output_shape"] == [1, spec.num_classes]
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])

    code, out, err = run(capsys, "sizes", name, "--json")
    assert code == 0, err
    sizes = json.loads(out)
    assert list(sizes) == ["valid", "min", "max", "checked_up_to", "below_min"]
    assert sizes["checked_up_to"] == 1024
    assert sizes["min"] == sizes["valid"][0][0]
    assert any(lo <= spec.input_size <= hi for lo, hi in sizes["valid"])
    if sizes["min"] > 1:
        assert set(sizes["below_min"]) == {"size", "layer", "reason"}
        assert sizes["below_min"]["size"] == sizes["min"] - 1


def test_sizes_text_explains_a_band(capsys):
    code, out, _ = run(capsys, "sizes", "notes-alexnet", "--max", "300")
    assert code == 0
    assert "193–224" in out and "minimum: 193   maximum: 224" in out
    assert ("below: size 192: Linear 12: expects 6400 input features but gets 4096 "
            "(256×4×4 after Flatten)") in out
    assert "add an adaptive_avg_pool layer before the flatten" in out


def test_sizes_text_reports_batch_size_one(capsys):
    _, out, _ = run(capsys, "sizes", "lenet-bn")
    assert "batch size 1 in training mode: fails at every size" in out
    _, out, _ = run(capsys, "sizes", "resnet18")
    assert "batch size 1 in training mode: needs size ≥ 33" in out


def test_summary_text_shows_the_arithmetic(capsys):
    code, out, _ = run(capsys, "summary", "notes-alexnet")
    assert code == 0
    assert "⌊(26 + 2·2 − 5) / 1⌋ + 1 = 26" in out and "256·5·5 = 6400" in out
    assert "Total params: 28,655,946" in out


def test_summary_non_square(capsys):
    code, out, _ = run(capsys, "summary", "resnet18", "--size", "64x96", "--json")
    assert code == 0 and json.loads(out)["input_shape"] == [1, 1, 64, 96]


def test_config_file(tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_text(spec_to_json(PRESETS["notes-nin"].spec))
    code, out, _ = run(capsys, "sizes", str(path), "--json")
    assert code == 0 and json.loads(out)["min"] == 67


@pytest.mark.parametrize("argv, message", [
    (["summary", "lenet5"], "'lenet5' is neither a preset nor a config file; presets: lenet,"),
    (["summary", "missing.json"], "missing.json: cannot read missing.json"),
    (["summary", "notes-alexnet", "--size", "100"],
     "notes-alexnet does not run at 100×100: Linear 12: expects 6400 input features but gets "
     "1024 (256×2×2 after Flatten) (square sizes that run: 193–224)"),
    (["summary", "lenet", "--size", "0"], "size: '0' is not a size"),
    (["summary", "lenet", "--size", "big"], "size: 'big' is not a size"),
    (["summary", "lenet", "--size", ""], "size: '' is not a size"),
    (["summary", "nin", "--size", "1" + "0" * 2500], "is not a size"),
    (["summary", "lenet", "--size", "1000000000"], "is not a size"),
    (["summary", "/dev/zero"], "/dev/zero: the spec is 1,024,001 bytes: Size of a spec (JSON) "
                                   "upload is 1,001 KB, over this server's cap of 1,000 KB"),
    (["sizes", "lenet", "--max", "0"], "--max: must be between 1 and 100,000, got 0"),
    (["sizes", "lenet", "--max", "x"], "argument --max: invalid int value: 'x'"),
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
])
def test_errors_are_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("cnnviz: error: ")
    assert message in err


@pytest.mark.parametrize("content, message", [
    ("{not json", "bad.json: not valid JSON at line 1 column 2"),
    ('{"family": "vgg", "arch": [[1, "x"]], "colour": 1}',
     'bad.json: colour: unknown key'),
    ('{"family": "custom", "layers": [{"type": "conv", "out_channels": 4, "kernel": 3}, '
     '{"type": "flatten"}, {"type": "conv", "out_channels": 4, "kernel": 3}]}',
     "bad.json: layers[2]: conv needs a C×H×W feature map"),
    ('{"family": "lenet", "input_size": 3}', "bad.json: input_size: 3 is too small"),
])
def test_bad_config_files(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, out, err = run(capsys, "summary", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert message in err


def test_control_characters_stay_on_one_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"family": "custom", "layers": [{"type": "relu"}], '
                    '"a\\nb\\u001b[31mRED": 1}')
    code, _, err = run(capsys, "summary", str(path))
    assert code == 2 and err.count("\n") == 1 and "\x1b" not in err
    assert "a\\nb\\x1b[31mRED: unknown key" in err


def test_sizes_json_max_stays_within_the_checked_range(capsys):
    _, out, _ = run(capsys, "sizes", "lenet", "--max", "29", "--json")
    assert json.loads(out)["valid"] == [[28, 29]] and json.loads(out)["max"] is None
    _, out, _ = run(capsys, "sizes", "lenet", "--max", "29")
    assert "maximum: 31 (beyond the checked range)" in out


def test_batch_norm_on_a_1x1_map_everywhere(tmp_path, capsys):
    path = tmp_path / "gap.json"
    path.write_text('{"family": "custom", "layers": [{"type": "adaptive_avg_pool", '
                    '"output_size": 1}, {"type": "batchnorm"}, {"type": "flatten"}]}')
    _, out, _ = run(capsys, "sizes", str(path))
    assert ("batch size 1 in training mode: fails at every valid size up to 1024 — "
            "BatchNorm2d 1 sees a 1×1 map") in out


def test_real_process_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x00\xff garbage")
    for argv in (["summary", str(bad)], ["sizes", "nope"], ["summary", "lenet", "--size", "3"]):
        proc = subprocess.run([sys.executable, "-m", "cnnviz", *argv], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "sizes", "nin", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["min"] == 67


def test_train_text_output_matches_the_readme(capsys):
    """Per epoch ``epoch 1: loss 1.0652, train acc 0.712, test acc 0.803, 2,502 examples/s,
    0.6 s``, then ``finished on cpu: done; test accuracy 0.97``: the README's lines."""
    code, out, err = run(capsys, "train", "lenet-bn", "--dataset", "digits", "--epochs", "2",
                         "--batch-size", "64", "--lr", "0.5", "--limit", "300",
                         "--device", "cpu")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    for number, line in enumerate(lines[:2], 1):
        assert re.fullmatch(rf"epoch {number}: loss \d+\.\d{{4}}, train acc [01]\.\d{{3}}, "
                            r"test acc [01]\.\d{3}, [\d,]+ examples/s, \d+\.\d s", line), line
    assert re.fullmatch(r"finished on cpu: done; test accuracy [01]\.\d\d", lines[2]), lines[2]
    # the final accuracy is the last epoch's (given to 3 places), rounded to 2
    last_epoch = float(re.search(r"test acc ([\d.]+)", lines[1]).group(1))
    assert abs(float(lines[2].rsplit(" ", 1)[1]) - last_epoch) <= 0.0051


def test_train_help_gives_the_books_defaults(capsys):
    from cnnviz.training.config import book_defaults_text

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"default: the book's for the family ({book_defaults_text('batch_size')})" in out
    assert f"default: the book's for the family ({book_defaults_text('lr')})" in out
    assert "ResNet 256, DenseNet 256" in out
