"""``python -m cnnviz graph``: the connections graph as text and as the JSON object
docs/graph-json.md describes; one-line errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnviz.cli import main
from cnnviz.presets import PRESETS
from cnnviz.specs import spec_to_json

NODE_FIELDS = ["key", "label", "kind", "shape", "depth", "members"]
EDGE_FIELDS = ["source", "target", "kind", "shape"]
COUNTS = ["additions", "projections", "concatenations", "dense blocks", "transitions",
          "inception blocks", "branches"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_the_documented_object(capsys):
    code, out, err = run(capsys, "graph", "lenet", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert list(data) == ["network", "depth", "open", "nodes", "edges", "counts"]
    assert (data["network"], data["depth"], data["open"]) == ("lenet", 1, [])
    assert [n["key"] for n in data["nodes"]] == ["input", "b1", "b2", "head", "output"]
    assert all(list(n) == NODE_FIELDS for n in data["nodes"])
    assert all(list(e) == EDGE_FIELDS for e in data["edges"])
    b1 = data["nodes"][1]
    assert b1 == {"key": "b1", "label": "b1 · Conv2d, Sigmoid, AvgPool2d", "kind": "group",
                  "shape": [6, 14, 14], "depth": 1, "members": ["b1.0", "b1.1", "b1.2"]}
    assert data["nodes"][0]["shape"] == [1, 28, 28] and data["nodes"][-1]["shape"] == [10]
    assert [(e["source"], e["target"], e["kind"]) for e in data["edges"]] == [
        ("input", "b1", "main"), ("b1", "b2", "main"), ("b2", "head", "main"),
        ("head", "output", "main")]
    assert data["counts"] == dict.fromkeys(COUNTS, 0)


def test_json_example_in_the_docs_is_what_the_command_prints(capsys):
    """docs/graph-json.md shows lenet at depth 1; it must stay the real output."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "graph-json.md").read_text()
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    code, out, _ = run(capsys, "graph", "lenet", "--json")
    assert code == 0 and json.loads(example) == json.loads(out)


def test_depth_and_open_unfold(capsys):
    code, out, _ = run(capsys, "graph", "resnet18", "--json", "--depth", "9")
    data = json.loads(out)
    assert code == 0 and data["depth"] == 9
    assert sum(n["kind"] == "add" for n in data["nodes"]) == 8
    assert sorted(e["kind"] for e in data["edges"] if e["target"].startswith("add")
                  and e["kind"] != "main") == ["identity"] * 5 + ["projection"] * 3
    assert data["counts"]["additions"] == 8 and data["counts"]["projections"] == 3
    code, out, _ = run(capsys, "graph", "resnet18", "--json", "--open", "b3", "--open", "b3.0")
    data = json.loads(out)
    keys = [n["key"] for n in data["nodes"]]
    assert data["open"] == ["b3", "b3.0"]
    assert "b3.0.shortcut.conv" in keys and "b3.1" in keys and "b2" in keys


def test_text_lists_nodes_edges_and_counts(capsys):
    code, out, _ = run(capsys, "graph", "densenet")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "densenet at depth 1: 8 nodes, 11 edges"
    assert lines[1] == "nodes" and "edges" in lines and "counts" in lines
    assert any(line.split()[:3] == ["b2", "group", "96×12×12"] and
               line.endswith("b2 · DenseBlock (4 conv blocks), Transition") for line in lines)
    assert any(line.split() == ["b1", "→", "b2", "dense", "64×24×24"] for line in lines)
    assert any(line.split() == ["b2", "→", "b3", "transition", "96×12×12"] for line in lines)
    assert "concatenations: 16, dense blocks: 4, transitions: 3" in lines[-1]


def test_config_file(tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_text(spec_to_json(PRESETS["googlenet"].spec))
    code, out, _ = run(capsys, "graph", str(path), "--json")
    data = json.loads(out)
    assert code == 0 and data["network"] == str(path)
    assert data["counts"]["inception blocks"] == 9 and data["counts"]["branches"] == 36


@pytest.mark.parametrize("argv, message", [
    (["graph", "nope"], "'nope' is neither a preset nor a config file"),
    (["graph", "lenet", "--depth", "0"], "--depth: must be 1 or more, got 0"),
    (["graph", "lenet", "--depth", "two"], "argument --depth: invalid int value: 'two'"),
    (["graph", "lenet", "--open", "b9"], "--open: 'b9' is not a stage or block of lenet; "
                                         "groups: b1, b2, head"),
    (["graph", "notes-alexnet", "--open", "0"], "groups: none"),
    (["graph", "missing.json"], "missing.json: cannot read missing.json"),
])
def test_errors_are_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnviz: error: ") and message in err
    assert err.count("\n") == 1


def test_real_process_exits_2_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "cnnviz", "graph", "lenet", "--depth", "-1"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "cnnviz: error: --depth: must be 1 or more, got -1\n"


def test_graph_loads_no_app_packages():
    probe = ("import contextlib, io, json, sys\nfrom cnnviz.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    code = main(['graph', 'resnet18'])\n"
             "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    report = json.loads(result.stdout)
    assert report["code"] == 0 and "cnnviz.graph.connections" in report["modules"]
    assert [m for m in report["modules"] if m.split(".")[0] in
            ("streamlit", "plotly", "torchvision")] == []
