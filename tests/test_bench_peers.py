"""`make bench`'s peers: keras image_dataset_from_directory beside make_dataset, PyTorch's step (only where torch is
installed: `make bench PEERS=torch`; CI has none), the ratios to them, and the one-line error without torch."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from alexnet.__main__ import main
from alexnet.bench import peers
from alexnet.bench import suite as bench
from alexnet.config import Config
from alexnet.data.demo import ensure_demo_data
from alexnet.errors import ConfigError

NO_TORCH = importlib.util.find_spec("torch") is None
# Runs peers.py as the torch process does, with TensorFlow, keras and this package unimportable.
WITHOUT_TENSORFLOW = ("import runpy, sys\n"
                      "for name in ('tensorflow', 'keras', 'alexnet'):\n"
                      "    sys.modules[name] = None\n"
                      "namespace = runpy.run_path(sys.argv[1])\n")


def test_the_torch_process_loads_no_tensorflow():
    result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW + "print(sorted(namespace['SETTINGS']))",
                             peers.__file__], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["['bfloat16_autocast',", "'channels_last',", "'float32']"]


def test_torch_missing_fails_at_once_naming_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setitem(sys.modules, "torch", None)  # find_spec("torch") is None: as where it is not installed
    code = main(["bench", "--config", "configs/demo.yaml", "--logs", str(tmp_path / "logs"), "--peers", "torch",
                 f"data.dir={tmp_path / 'demo'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "`make bench PEERS=torch`" in err and "pip install torch==2.13.0" in err
    assert not (tmp_path / "logs").exists() and not (tmp_path / "demo").exists()  # nothing measured or made
    with pytest.raises(ConfigError, match="no peer jax"):
        bench.run_benchmarks(Config(), tmp_path / "logs", peers=["jax"])


def test_ratios_to_torch_name_what_they_divide():
    step = {("float32", False): 56.0, ("float32", True): 40.0, ("mixed_bfloat16", False): 70.0,
            ("mixed_bfloat16", True): 90.0}
    torch = {"float32": 28.0, "bfloat16_autocast": 30.0, "channels_last": 36.0}
    ratios = {r.key: r for r in bench.torch_ratios(step, torch)}
    assert [(r.label, r.value, r.target) for r in ratios.values()] == [
        ("step float32, XLA off / PyTorch step float32", 2.0, None),
        ("step mixed_bfloat16, XLA on / PyTorch step bfloat16 autocast", 3.0, None),
        ("best step (mixed_bfloat16, XLA on) / PyTorch's best (float32 channels-last)", 2.5, None)]
    only_float32 = bench.torch_ratios({("float32", False): 56.0}, torch)
    assert [r.key for r in only_float32] == ["peer_torch_float32", "peer_torch_best"]


def test_keras_directory_row_crops_and_flips_the_same_files(tmp_path):
    config = Config()
    config.data.dir, config.data.demo_images_per_class, config.data.resize_size = str(tmp_path / "demo"), 2, 74
    ensure_demo_data(config.data)
    batches = bench.keras_directory_batches(config.data, 67, 4, seed=0)
    images, labels = next(iter(batches))
    assert images.shape == (4, 67, 67, 3) and images.dtype == np.uint8
    classes = len(list((tmp_path / "demo" / "train").iterdir()))
    assert set(labels.numpy()) <= set(range(classes))
    settings = bench.BenchSettings(batch=4, reps=2, pipeline_batches=2, pipeline_warmup=1)
    samples = bench.time_pipeline(batches, settings)
    assert len(samples) == 2 and min(samples) > 0


@pytest.mark.skipif(NO_TORCH, reason="torch is installed only by `make bench PEERS=torch`")
def test_torch_network_is_the_papers():
    code = WITHOUT_TENSORFLOW + ("model = namespace['torch_alexnet'](1.0, 1000, 227)\n"
                                 "lrn = model[2]\n"
                                 "print(sum(p.numel() for p in model.parameters()), lrn.size, lrn.alpha / lrn.size, "
                                 "lrn.beta, lrn.k)\n")
    result = subprocess.run([sys.executable, "-c", code, peers.__file__], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    parameters, size, alpha, beta, k = result.stdout.split()
    assert int(parameters) == 62_378_344  # the Keras paper model's count (alexnet/model.py VARIANTS)
    assert (int(size), float(alpha), float(beta), float(k)) == (5, pytest.approx(1e-4), 0.75, 2.0)


@pytest.mark.slow
@pytest.mark.skipif(NO_TORCH, reason="torch is installed only by `make bench PEERS=torch`")
def test_torch_step_tiny(capsys):
    settings = bench.BenchSettings(width=0.0625, batch=4, steps=1, reps=1)
    for setting, what in peers.SETTINGS.items():
        samples = peers.torch_step_in_own_process(setting, settings.width, settings.batch, settings.steps,
                                                  settings.reps, 10, 227)
        assert len(samples) == 1 and samples[0] > 0, setting
        with capsys.disabled():
            print(f"\nPyTorch step, {what}, width 0.0625, batch 4, 1 step, 1 rep: {samples[0]:.1f} img/s")
