"""Training: the one loop, checkpoints, distributed setup, evaluation and re-evaluation."""
