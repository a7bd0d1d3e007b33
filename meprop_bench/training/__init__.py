"""The training experiments: MNIST data, the paper's MLP, recipes, one run's loop, sets
of runs in worker processes and their journal."""
