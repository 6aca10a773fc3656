"""Training: the driver (`train_and_evaluate`), checkpoints, the learning-rate schedule, TensorBoard reporting,
per-layer statistics, fine-tuning, multi-worker clusters and the upstream workarounds they need."""
