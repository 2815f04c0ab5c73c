"""Short training runs: data sets, the training engine, checkpoints."""
