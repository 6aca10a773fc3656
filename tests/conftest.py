"""Shared test set-up: the package on the path, quiet TensorFlow, and a fresh Keras session per test."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end test that runs real training in a subprocess")
    # Keras 3.15's TensorFlow backend calls np.array(x, copy=False) on every metric read (upstream).
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Layer-name counters, seeds and dtype policies must not leak from one test into the next."""
    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")
    yield
    keras.backend.clear_session()
