"""alexnet-keras: the paper's AlexNet in Keras 3, trained with model.fit on tf.data, reported in TensorBoard.

As a library:

    import alexnet
    model = alexnet.AlexNet(weights="imagenet")     # keras.applications-style; see alexnet/applications.py

Importing the package registers every custom object this project's .keras files name (layers, loss, metrics,
optimizer and its learning-rate schedule), so keras.models.load_model reads any best.keras it writes.
"""

from alexnet.native_logs import import_tensorflow_quietly

import_tensorflow_quietly()  # TensorFlow's start-up lines at the level TF_CPP_MIN_LOG_LEVEL asks for

from alexnet import metrics, model, optim, random_streams  # noqa: E402, F401  registers the custom objects
from alexnet.applications import AlexNet  # noqa: E402
from alexnet.training import schedule  # noqa: E402, F401  registers ScheduledRate

__all__ = ["AlexNet"]
