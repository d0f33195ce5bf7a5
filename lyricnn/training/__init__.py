"""How a model learns: the one loop, the optimizer, held-out evaluation, the log, data
parallelism and the local launcher."""
