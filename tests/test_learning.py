"""Learning on data, not only running: a small network beats chance by far on the demo shapes."""

import pytest

from alexnet.config import load_config
from alexnet.data.demo import ensure_demo_data
from alexnet.training.driver import train_and_evaluate
from helpers import ROOT, TINY

pytestmark = pytest.mark.slow  # trainings in subprocesses or in this process


def test_tiny_variant_learns_the_demo_shapes(tmp_path):
    root = tmp_path / "demo"
    ensure_demo_data(load_config(None, ["data.demo_images_per_class=40", f"data.dir={root}"]).data)
    overrides = [*TINY[:-1], "model.width=0.125", f"data.dir={root}", "train.epochs=20", "train.global_batch_size=16",
                 "train.learning_rate=0.01", "train.schedule=constant", "train.warmup_epochs=1", "model.dropout=0.2",
                 "tensorboard.images=false", "tensorboard.histograms=false"]
    final = train_and_evaluate(load_config(ROOT / "configs" / "demo.yaml", overrides), tmp_path / "run")
    # 10 classes: chance is 90% top-1 error; this run reaches about 57%.
    assert final.best.val_top1_error < 0.7, final  # at least 3x chance accuracy
