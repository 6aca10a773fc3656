"""`make bench-gpu`: AlexNet training images/s on one GPU, under TensorFlow or JAX.

Imports nothing but keras and alexnet.model, so it also runs where only keras and JAX are installed:
    KERAS_BACKEND=jax PYTHONPATH=src python -m alexnet.bench.gpu
    python -m alexnet.bench.gpu --batch 8 --steps 2 --width 0.125 --allow-cpu   # a quick CPU check
The host feeds uint8 images (the model converts them on the GPU), batch 256, mixed_bfloat16 and float32;
each figure is the median of --reps timed epochs of --steps model.fit steps, after one untimed epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import keras
import numpy as np

from alexnet.model import build_alexnet


def find_gpu() -> str | None:
    """The name of the first GPU the Keras backend sees, or None."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name) if gpus else None
    raise SystemExit(f"bench-gpu supports KERAS_BACKEND=jax or tensorflow, not {backend!r}")


def repeated_batch(images: np.ndarray, labels: np.ndarray):
    """The same host batch forever, in the form model.fit streams best on this backend."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.data.Dataset.from_tensors((images, labels)).repeat().prefetch(2)

    def forever():
        while True:
            yield images, labels

    return forever()


class EpochTimer(keras.callbacks.Callback):
    """Seconds of every epoch, from its first step to its last loss value on the host (`make bench` uses it too)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        float(logs["loss"])  # waits for the epoch's last step on the device
        self.seconds.append(time.perf_counter() - self._start)


def bench(precision: str, args) -> list[float]:
    """Images/s of each timed epoch of model.fit at the given dtype policy."""
    keras.backend.clear_session()
    model = build_alexnet(args.variant, 1000, args.image_size, args.width, dtype_policy=precision, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, args.image_size, args.image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, args.batch, dtype=np.int32)
    timer = EpochTimer()
    # The first epoch compiles the step and is not timed.
    model.fit(repeated_batch(images, labels), steps_per_epoch=args.steps, epochs=1 + args.reps, verbose=0,
              shuffle=False, callbacks=[timer])
    return [args.batch * args.steps / s for s in timer.seconds[1:]]


def main(argv=None) -> int:
    """Parses flags, benchmarks each precision, prints one line per precision; 0 also when there is no GPU."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="training steps per timed epoch")
    parser.add_argument("--reps", type=int, default=5, help="timed epochs per precision")
    parser.add_argument("--width", type=float, default=1.0, help="network width multiplier (1.0 = the paper)")
    parser.add_argument("--variant", default="paper", choices=("paper", "paper_grouped", "owt"))
    parser.add_argument("--image-size", type=int, default=227)
    parser.add_argument("--precisions", default="mixed_bfloat16,float32")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when no GPU is found")
    args = parser.parse_args(argv)

    gpu = find_gpu()
    print(f"backend: {keras.backend.backend()}, keras {keras.__version__}, device: {gpu or 'CPU'}")
    if gpu is None and not args.allow_cpu:
        print("no GPU available: nothing measured (--allow-cpu runs on the CPU)")
        return 0
    print(f"{args.variant} AlexNet (width {args.width}), batch {args.batch}, uint8 input, jit_compile, "
          f"median of {args.reps} epochs of {args.steps} steps after one untimed epoch")
    for precision in args.precisions.split(","):
        samples = bench(precision, args)
        print(f"{precision:>15}: {statistics.median(samples):10,.0f} img/s  "
              f"(min {min(samples):,.0f}, max {max(samples):,.0f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
