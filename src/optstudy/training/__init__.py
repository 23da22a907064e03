"""One training run, or many trained as one stacked model: flags, setup, loop, optimizers, workloads."""
