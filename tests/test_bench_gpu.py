"""`make bench-gpu` needs only keras and a backend: it runs with PyYAML, TFDS, SciPy, matplotlib and PIL unimportable
(and, under JAX, TensorFlow), and `import alexnet` still offers alexnet.AlexNet."""

import importlib.util
import subprocess
import sys

import pytest

import alexnet

# What the project installs but bench-gpu must do without (JAX itself needs SciPy, so only TensorFlow's runs lose it).
UNNEEDED = {"tensorflow": ("yaml", "tensorflow_datasets", "scipy", "matplotlib", "PIL"),
            "jax": ("yaml", "tensorflow_datasets", "matplotlib", "PIL", "tensorflow")}
WITHOUT = ("import runpy, sys\n"
           "for name in sys.argv[1].split(','):\n"
           "    sys.modules[name] = None  # import fails\n"
           "sys.argv = ['alexnet.bench.gpu', *sys.argv[2:]]\n"
           "runpy.run_module('alexnet.bench.gpu', run_name='__main__', alter_sys=True)\n")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_bench_gpu_runs_with_only_keras_and_a_backend(backend, monkeypatch):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed here")
    monkeypatch.setenv("KERAS_BACKEND", backend)
    flags = ["--batch", "4", "--steps", "1", "--reps", "1", "--width", "0.0625", "--image-size", "67", "--allow-cpu",
             "--precisions", "float32"]
    result = subprocess.run([sys.executable, "-c", WITHOUT, ",".join(UNNEEDED[backend]), *flags],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"backend: {backend}" in result.stdout
    assert "float32:" in result.stdout and "img/s" in result.stdout, result.stdout


def test_import_alexnet_offers_alexnet_lazily():
    from alexnet.applications import AlexNet

    assert alexnet.AlexNet is AlexNet
    with pytest.raises(AttributeError, match="no attribute 'Alexnet'"):
        alexnet.Alexnet  # noqa: B018
