"""alexnet-keras: the paper's AlexNet in Keras 3, trained with model.fit on tf.data, reported in TensorBoard.

As a library:

    import alexnet
    model = alexnet.AlexNet(weights="imagenet")     # keras.applications-style; see alexnet/applications.py

Importing the package registers every custom object this project's .keras files name (layers, loss, metrics,
optimizer and its learning-rate schedule), so keras.models.load_model reads any best.keras it writes. It imports
nothing but keras, its backend and NumPy for that (`make bench-gpu` runs where only keras and JAX are installed);
alexnet.AlexNet, which reads YAML configs, is imported when first used.
"""

import os

from alexnet.native_logs import import_tensorflow_quietly

if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":  # under JAX, TensorFlow stays unloaded
    import_tensorflow_quietly()  # TensorFlow's start-up lines at the level TF_CPP_MIN_LOG_LEVEL asks for

from alexnet import metrics, model, optim, random_streams  # noqa: E402, F401  registers the custom objects
from alexnet.training import schedule  # noqa: E402, F401  registers ScheduledRate

__all__ = ["AlexNet"]


def __getattr__(name: str):
    """alexnet.AlexNet, imported on first use (alexnet.applications needs PyYAML, which registering does not)."""
    if name == "AlexNet":
        from alexnet.applications import AlexNet

        return AlexNet
    raise AttributeError(f"module 'alexnet' has no attribute {name!r}")
