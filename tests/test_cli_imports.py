"""``presets``, ``summary`` and ``sizes`` import only what they use: each is a whole process a
learner waits for, and torch alone is most of that wait."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Packages the shape commands never need (the app, training and the tests use them). The
# parser's help for `train` reads the book's defaults from cnnviz.training.config, which
# imports torch alone; the engine and the data sets stay unloaded.
UNUSED = ("torchvision", "sklearn", "plotly", "streamlit", "torchinfo", "pandas", "scipy",
          "sympy", "PIL", "torch._dynamo", "cnnviz.training.engine", "cnnviz.training.data",
          "cnnviz.training.recipe", "cnnviz.training.job", "cnnviz.graph", "cnnviz.ui")

PROBE = """
import contextlib, io, json, sys
from cnnviz.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("argv", [["presets"], ["summary", "resnet18"], ["sizes", "alexnet"],
                                  ["summary", "densenet", "--json"]])
def test_shape_commands_import_nothing_they_do_not_use(argv):
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                            text=True, check=True)
    report = json.loads(result.stdout)
    assert report["code"] == 0
    loaded = [m for m in report["modules"] if any(m == u or m.startswith(u + ".")
                                                   for u in UNUSED)]
    assert loaded == []
    assert "torch" in report["modules"] and "cnnviz.shapes.summary" in report["modules"]
