"""Hostile config files at every command: ``python -m cnnviz summary|sizes|graph|train`` each
read random spec JSON (valid, and broken as tests/strategies.py's ``hostile_json`` breaks it)
with random options, valid and not; ``presets`` and ``limits`` get random arguments (and
``limits`` random cap variables). Run in-process through ``cnnviz.cli.main``, stdout and
stderr captured, plus a few real ``python -m cnnviz`` processes.

For every run: no traceback and no "internal error"; a refusal exits 2 with exactly one line on
stderr that names the broken field (the path the example broke), the option, or the layer that
cannot run; a valid network that runs exits 0 with the output the command promises. ``train``
runs for real with tiny settings on the offline digits (one epoch of 16 images). The counts are
printed (and written to ``$CNNVIZ_FUZZ_COUNTS`` when set).
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz import limits
from cnnviz.cli import main
from cnnviz.models import build_meta
from cnnviz.models.arithmetic import output_shape
from cnnviz.errors import ShapeError
from cnnviz.presets import PRESETS
from cnnviz.workbench import analyse
from tests.strategies import Hostile, hostile_json

EXAMPLES = int(os.environ.get("CNNVIZ_FUZZ_CLI_EXAMPLES", 1000))
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
            HealthCheck.data_too_large]
TINY_TRAINING = ["--dataset", "digits", "--epochs", "1", "--limit", "16", "--batch-size", "8",
                 "--device", "cpu"]
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)``'s exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_refusal(code: int, out: str, err: str, names, context) -> str:
    """Exit 2, nothing on stdout past what was printed before, one line on stderr naming one of
    ``names``; returns that line."""
    assert code == 2, (code, err, context)
    assert "Traceback" not in err and "internal error" not in err, (err, context)
    assert err.count("\n") == 1 and err.endswith("\n"), (err, context)
    assert err.startswith("cnnviz: error: "), (err, context)
    assert any(name in err for name in names), (names, err, context)
    return err


def _why_not(spec, size: int) -> list[str] | None:
    """What a refusal of a valid-by-field spec must name at ``size`` (the fields it cannot be
    built for, or the layer that fails), or None when it runs."""
    a = analyse(spec, (size, size))
    if a.problems:
        return [p.path for p in a.problems if p.path] or [a.problems[0].message]
    if a.failure is not None:
        return [f"{a.failure.layer_type} {a.failure.layer}"]
    return None


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    if not COUNTS:
        return
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print()
        for command, c in COUNTS.items():
            print(f"fuzz cli: {command}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if os.environ.get("CNNVIZ_FUZZ_COUNTS"):
        with open(os.environ["CNNVIZ_FUZZ_COUNTS"], "a") as out:
            out.write(json.dumps({"test": "cli", "counts": COUNTS}) + "\n")


# -- the commands that read a config file --------------------------------------------------------

def _options(command: str):
    """Random options for ``command``: (argv, the option name a refusal must name, or None
    when the options are valid)."""
    good = {"summary": st.sampled_from([[], ["--json"]]),
            "sizes": st.sampled_from([[], ["--json"], ["--max", "64", "--json"]]),
            "graph": st.sampled_from([[], ["--json"], ["--depth", "2", "--json"],
                                      ["--depth", "3"]]),
            "train": st.sampled_from([["--json"], []])}[command].map(lambda a: (a, None))
    bad = {"summary": st.sampled_from([(["--size", "0"], "size"), (["--size", "1e308"], "size"),
                                       (["--size", "nan"], "size"), (["--size", "3x"], "size"),
                                       (["--size", "9" * 400], "size"),
                                       (["--colour"], "--colour")]),
           "sizes": st.sampled_from([(["--max", "0"], "--max"), (["--max", "-1"], "--max"),
                                     (["--max", "10" * 200], "--max"),
                                     (["--max", "abc"], "--max")]),
           "graph": st.sampled_from([(["--depth", "0"], "--depth"), (["--depth", "x"], "--depth"),
                                     (["--open", "b99"], "--open")]),
           "train": st.sampled_from([(["--epochs", "0"], "epochs"), (["--lr", "nan"], "learning rate"),
                                     (["--lr", "-1"], "learning rate"),
                                     (["--batch-size", "0"], "--batch-size"),
                                     (["--dataset", "imagenet"], "--dataset"),
                                     (["--size", "0"], "--size"), (["--size", "2000"], "input size"),
                                     (["--limit", "-3"], "--limit"),
                                     (["--device", "tpu"], "--device")])}[command]
    return st.one_of(good, good, bad)


# Options argparse or the command refuses before it reads the file.
EARLY = ("--colour", "--max", "--depth", "--dataset", "--device")


@pytest.mark.parametrize("command", ["summary", "sizes", "graph", "train"])
def test_every_config_command_survives_hostile_config_files(command, tmp_path):
    path = tmp_path / "net.json"
    counts = COUNTS[command]

    @settings(max_examples=EXAMPLES, suppress_health_check=SUPPRESS)
    @given(hostile=hostile_json(), options=_options(command))
    def check(hostile: Hostile, options) -> None:
        extra, bad_option = options
        path.write_text(hostile.text)
        tiny = TINY_TRAINING if command == "train" else []
        code, out, err = cli([command, str(path), *tiny, *extra])  # the last option wins
        context = (hostile, extra)
        counts["valid" if hostile.valid else "invalid"] += 1
        counts[f"kind:{hostile.kind}"] += 1
        if bad_option in EARLY:
            assert_one_line_refusal(code, out, err, [bad_option], context)
            counts["refused: the option"] += 1
            return
        if not hostile.valid:
            assert_one_line_refusal(code, out, err, hostile.names, context)
            assert str(path) in err, context  # and which file
            counts["refused: the file"] += 1
            return
        spec = hostile.spec
        problems = analyse(spec).problems
        if problems:  # every field is valid, but the network cannot be built
            assert_one_line_refusal(code, out, err, [p.path or p.message for p in problems],
                                    context)
            counts["refused: cannot be built"] += 1
            return
        why_not = None if command == "sizes" else _why_not(spec, spec.input_size)
        if bad_option is not None:
            # graph checks that the network runs before it looks at --open
            names = why_not if command == "graph" and why_not else [bad_option]
            assert_one_line_refusal(code, out, err, names, context)
            counts["refused: the option"] += 1
            return
        if command == "train":
            why_not = why_not or _why_not_trained(spec)
        if why_not is not None:
            assert_one_line_refusal(code, out, err, why_not, context)
            counts["refused: does not run" + (" or train" if command == "train" else "")] += 1
            return
        assert code == 0 and err == "", (code, err, context)
        if "--json" in extra:
            lines = out.strip().splitlines()
            data = [json.loads(line) for line in lines]
            if command == "train":
                assert data[-1]["final"] is True and data[-1]["state"] == "finished", data
            elif command == "summary":
                assert data[0]["total_params"] == analyse(spec).summary.total_params
            elif command == "sizes":
                assert set(data[0]) >= {"valid", "min", "max", "checked_up_to"}
            else:
                assert data[0]["nodes"] and "edges" in data[0]
        counts["ran"] += 1

    check()


def _why_not_trained(spec) -> list[str] | None:
    """Why a network that runs cannot train on the digits: no weights, or too few class
    scores (what the refusal must say)."""
    model = build_meta(spec)
    if not any(True for _ in model.parameters()):
        return ["no parameters"]
    try:
        out = output_shape(model, (spec.in_channels, spec.input_size, spec.input_size))
    except ShapeError:
        return None
    return None if len(out) == 1 and out[0] >= 10 else ["classes"]


# -- presets and limits ------------------------------------------------------------------------

junk_args = st.lists(st.one_of(st.sampled_from(["--json", "--bogus", "-x", "lenet", "--", "-",
                                                "--json=1", "--help=no"]),
                               st.text(st.characters(codec="utf-8",
                                                     exclude_characters="\x00"), max_size=12)),
                     max_size=3)


@pytest.mark.parametrize("command", ["presets", "limits"])
def test_presets_and_limits_survive_junk_arguments(command, monkeypatch):
    counts = COUNTS[command]
    variables = [cap.env for cap in limits.CAPS.values()]
    settings_text = st.one_of(st.none(), st.sampled_from(["0", "-5", "abc", "1e308", "nan",
                                                          "inf", "2_000", " 7 ", "", "10**9"]),
                              st.text(max_size=8))

    @settings(max_examples=EXAMPLES, suppress_health_check=SUPPRESS)
    @given(args=junk_args, env=st.fixed_dictionaries({v: settings_text for v in variables}))
    def check(args: list[str], env: dict) -> None:
        for name, value in env.items():
            if value is None or command == "presets" or "\x00" in value:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        code, out, err = cli([command, *args])
        assert "Traceback" not in err and "internal error" not in err, (args, err)
        if args in ([], ["--json"]):
            assert code == 0, (args, err)
            if args:
                json.loads(out)
            warnings = limits.bad_settings() if command == "limits" else []
            assert err.count("\n") == len(warnings), (err, warnings)
            for line, warning in zip(err.splitlines(), warnings):
                assert line.startswith("cnnviz: warning: ") and warning.split("=")[0] in line
            counts["ran"] += 1
            counts["bad settings said"] += len(warnings)
        elif code == 0:  # argparse took them (e.g. "--json" twice)
            counts["ran"] += 1
        else:
            assert_one_line_refusal(code, out, err, ["argument", "unrecognized", "invalid",
                                                     "required", "error"], args)
            counts["refused"] += 1

    check()


# -- a few real processes ----------------------------------------------------------------------

@pytest.mark.parametrize("argv, code, says", [
    (["summary", "CONFIG"], 2, "family: must be one of"),
    (["sizes", "CONFIG", "--json"], 2, "family: must be one of"),
    (["graph", "NESTED"], 2, "nested too deeply"),
    (["train", "CONFIG"] + TINY_TRAINING, 2, "family: must be one of"),
    (["summary", "lenet", "--size", "1e308"], 2, "is not a size"),
    (["presets", "--json", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["limits", "--json"], 0, ""),
])
def test_real_processes_say_one_line_and_no_traceback(tmp_path, argv, code, says):
    config = tmp_path / "net.json"
    config.write_text(json.dumps({"family": "transformer", "layers": 1e308}))
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    argv = [str(config) if a == "CONFIG" else str(nested) if a == "NESTED" else a for a in argv]
    env = {**os.environ, "CNNVIZ_MAX_EPOCHS": "many"}  # a bad cap: said, the default holds
    done = subprocess.run([sys.executable, "-m", "cnnviz", *argv], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    if code:
        assert done.stderr.count("\n") == 1 and says in done.stderr
    else:
        epochs = {row["variable"]: row for row in json.loads(done.stdout)}["CNNVIZ_MAX_EPOCHS"]
        assert epochs["now"] == "100"
        assert done.stderr == "cnnviz: warning: CNNVIZ_MAX_EPOCHS='many' is not a positive " \
                              "number; the default 100 holds\n"


# -- what the fuzz found, each as its smallest example ------------------------------------------

TOO_SMALL = {"family": "custom", "input_size": 4, "layers": [
    {"type": "conv", "out_channels": 2, "kernel": 5}, {"type": "flatten"},
    {"type": "linear", "in_features": 2, "out_features": 10}]}


@pytest.mark.parametrize("argv, says", [
    # torch.fx printed its traceback on stderr, and graph exited 0 with half a graph
    (["graph", "CONFIG"], "does not run at 4×4: Conv2d 0: input 4×4 is smaller than kernel 5"),
    # the run broke off at its first step with torch's own words and "Start again"
    (["train", "CONFIG"] + TINY_TRAINING,
     "does not run at 4×4: Conv2d 0: input 4×4 is smaller than kernel 5"),
    (["train", "NO_WEIGHTS"] + TINY_TRAINING, "has no parameters to train"),
    (["train", "THREE_CLASSES"] + TINY_TRAINING,
     "outputs 3 per image, but digits has 10 classes"),
    # 0 was read as "not given": the book's batch size, the network's own size
    (["train", "lenet", "--batch-size", "0"] + TINY_TRAINING[:2], "--batch-size: must be 1"),
    (["train", "lenet", "--size", "0"] + TINY_TRAINING[:2], "--size: must be 1 or more"),
])
def test_commands_refuse_what_could_only_fail_later(tmp_path, argv, says):
    files = {"CONFIG": TOO_SMALL,
             "NO_WEIGHTS": {"family": "custom", "input_size": 8,
                            "layers": [{"type": "max_pool", "kernel": 2}]},
             "THREE_CLASSES": {"family": "custom", "input_size": 8, "layers": [
                 {"type": "flatten"}, {"type": "linear", "in_features": 64,
                                       "out_features": 3}]}}
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    argv = [str(tmp_path / f"{a}.json") if a in files else a for a in argv]
    code, out, err = cli(argv)
    assert_one_line_refusal(code, out, err, [says], argv)


def test_limits_lists_every_cap_in_force_and_says_a_bad_setting(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_EPOCHS", "7")
    monkeypatch.setenv("CNNVIZ_MAX_QUEUE", "lots")
    code, out, err = cli(["limits"])
    assert code == 0
    assert err == "cnnviz: warning: CNNVIZ_MAX_QUEUE='lots' is not a positive number; the " \
                  "default 30 holds\n"
    rows = out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [cap.env for cap in limits.CAPS.values()]
    assert next(r for r in rows if r.startswith("CNNVIZ_MAX_EPOCHS")).split()[1] == "7"
    code, out, _ = cli(["limits", "--json"])
    assert code == 0 and json.loads(out) == limits.table()
