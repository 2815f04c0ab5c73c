"""BatchNorm, looked at with the network's own numbers.

- ``stats.py``: per-channel batch statistics next to the running ones, γ and β, the
  normalisation step by step, train vs eval mode, how batch statistics scatter with the batch
  size, and which layers can train at batch size 1.
- ``twins.py``: a network's BatchNorm twin, the same spec with BatchNorm or without it, and
  one sentence with what the switch changes (ResNet and DenseNet have none).
- ``recorder.py``: an engine callback that records every BatchNorm layer's running_mean,
  running_var, γ and β per channel at each metric point of a run.
- ``compare.py``: with BatchNorm vs without in one click: the runs (a network and its twin at
  the book's learning rates, and at a shared one), starting them through the device queue, and
  the examples each took to reach an accuracy.
"""
