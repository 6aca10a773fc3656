"""The tf.data service: an epoch through a local dispatcher and worker holds the local pipeline's examples, and
training through it takes the same steps."""

import collections
import os
import subprocess
import sys

import pytest

from alexnet import rundir
from alexnet.data.service import start_service, through_service
from helpers import ROOT, TINY, folder_config, make_folder, pipeline, scalars, steps


@pytest.mark.slow
def test_an_epoch_through_the_service_holds_the_local_pipelines_examples(tmp_path):
    make_folder(tmp_path, with_bad=False)
    config = folder_config(tmp_path, "train.global_batch_size=1")  # no last partial batch to drop at random
    dispatcher, _workers = start_service()
    local = pipeline(config, "train")
    served = through_service(local, dispatcher.target, job_name="one-epoch")
    labels = {name: collections.Counter(int(label) for _, batch in ds for label in batch.numpy())
              for name, ds in (("local", local), ("served", served))}
    shapes = {tuple(images.shape) for images, _ in served}
    assert labels["served"] == labels["local"] and sum(labels["local"].values()) == 17
    assert shapes == {(1, 40, 40, 3)}


@pytest.mark.slow
def test_training_through_the_service_takes_the_same_steps(small_data, tmp_path):
    dispatcher, _workers = start_service()
    common = ["--logs", str(tmp_path), *TINY, f"data.dir={small_data}", "train.epochs=1",
              "train.global_batch_size=8", "tensorboard.images=false", "tensorboard.histograms=false",
              "tensorboard.layer_stats_steps=0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name, extra in (("local", []), ("served", [f"data.service={dispatcher.target}"])):
        result = subprocess.run([sys.executable, "-m", "alexnet", "train", "--run", name, *common, *extra], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "120 training and 30 validation images in 10 classes; 15 steps per epoch" in result.stdout
    local, served = (scalars(tmp_path / name / rundir.TRAIN_EVENTS)["loss"] for name in ("local", "served"))
    assert steps(served) == steps(local) == list(range(1, 16))
