"""Fixtures: quiet TensorFlow, a fresh Keras session per test, the small demo set and a tiny finished run.

Helpers (images, configs, readers) are in helpers.py.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

from alexnet.config import load_config  # noqa: E402
from alexnet.data.demo import ensure_demo_data  # noqa: E402
from helpers import tiny_config  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Layer-name counters, seeds and dtype policies must not leak from one test into the next."""
    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")
    yield
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """The demo generator's classes, 12 training and 3 validation images each."""
    root = tmp_path_factory.mktemp("data") / "demo"
    ensure_demo_data(load_config(None, ["data.demo_images_per_class=12", f"data.dir={root}"]).data)
    return root


@pytest.fixture(scope="session")
def tiny_run(small_data, tmp_path_factory):
    """A finished one-epoch run of the tiny network on small_data, trained once for every test that reads it.

    With label smoothing, so the command-line tests load a model whose loss is this project's own class in
    a fresh process (as `make eval` and `make export` do), and the training images scored at the end.
    """
    from alexnet.training.driver import train_and_evaluate

    run_dir = tmp_path_factory.mktemp("logs") / "tiny"
    keras.backend.clear_session()
    train_and_evaluate(tiny_config(small_data, "tensorboard.profile_steps=0,1", "train.label_smoothing=0.1",
                                   "eval.train_error_images=120"), run_dir)
    keras.backend.clear_session()
    return run_dir
