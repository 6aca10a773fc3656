"""The model's random streams: their own on every replica (MirroredStrategy on two CPU devices), and a
function of the training step, so that a restarted process draws what an uninterrupted one would."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from alexnet.model import build_alexnet
from alexnet.random_streams import ReplicaSeedGenerator, StepSeeds, step_seed_generators
from helpers import ROOT

REPLICAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from alexnet.model import build_alexnet
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_alexnet("paper", num_classes=5, image_size=67, width=0.25, init="he_normal",
                              input_scale=1 / 64, seed=int(sys.argv[1]))
    fc6 = np.ones((8, model.get_layer("fc6").units), np.float32)
    pixels = np.zeros((8, 2, 2, 3), np.uint8)

    @tf.function
    def draw(features, images):
        kept = model.get_layer("dropout6")(features, training=True) != 0
        return kept, model.get_layer("colour_noise")(images, training=True)

    kept, noise = strategy.run(draw, args=(fc6, pixels))  # the same input on both replicas
    kept, noise = strategy.experimental_local_results(kept), strategy.experimental_local_results(noise)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "mask_agreement": float(np.mean(kept[0].numpy() == kept[1].numpy())),
                      "kept": [float(np.mean(k.numpy())) for k in kept],
                      "noise": [n.numpy()[:, 0, 0].tolist() for n in noise]}))
""")


def replica_draws(tmp_path, seed: int) -> dict:
    """One training-mode call of dropout6 and the colour noise on each of 2 replicas, in a fresh process."""
    script = tmp_path / "replicas.py"
    script.write_text(REPLICAS_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(seed)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # subprocesses
def test_replicas_drop_different_units_and_add_different_noise_and_a_seed_repeats_them(tmp_path):
    first, again = replica_draws(tmp_path, 5), replica_draws(tmp_path, 5)
    assert first["replicas"] == 2
    # Independent masks at rate 0.5 agree on half the units (shared masks: all of them).
    assert 0.45 < first["mask_agreement"] < 0.55, first["mask_agreement"]
    assert all(0.45 < kept < 0.55 for kept in first["kept"])
    noise = np.asarray(first["noise"])  # (replica, image, channel)
    assert np.abs(noise[0] - noise[1]).min() > 1e-3  # every image's colour shift differs between the replicas
    assert first == again  # one seed, one run


def test_a_generator_set_to_a_step_draws_that_steps_numbers_in_any_process():
    first, second = ReplicaSeedGenerator(11), ReplicaSeedGenerator(11)
    for _ in range(3):  # a generator that has already drawn: another process's history
        first.next()
    first.set_step(40)
    second.set_step(40)
    draws = [keras.random.uniform((4,), seed=g) for g in (first, second)]
    np.testing.assert_array_equal(np.asarray(draws[0]), np.asarray(draws[1]))
    second.set_step(41)
    assert not np.array_equal(np.asarray(keras.random.uniform((4,), seed=second)), np.asarray(draws[0]))


def test_step_seeds_sets_every_random_layer_to_the_optimizers_step():
    model = build_alexnet("paper", num_classes=5, image_size=67, width=1 / 16, seed=2)
    assert {g.name for g in step_seed_generators(model)} == {
        model.get_layer(n).seed_generator.name for n in ("colour_noise", "dropout6", "dropout7")}
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(123)
    callback = StepSeeds()
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    for generator in step_seed_generators(model):
        assert np.asarray(generator.state).tolist() == [generator.base, 123]
