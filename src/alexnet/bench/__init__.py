"""`make bench` (suite; peers: PyTorch's step beside it, in a process with no TensorFlow) and `make bench-gpu` (gpu).
gpu needs only keras, so it also runs where TensorFlow is not installed (KERAS_BACKEND=jax): nothing here may import
TensorFlow at package level."""
