"""The paper's update rule (section 5): v <- 0.9 v - wd*lr*w - lr*g; w <- w + v; its exemptions on every replica."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from alexnet.optim import PaperSGD
from helpers import ROOT


def paper_rule(w, grads, lr=0.1, momentum=0.9, wd=5e-4):
    """The update written out by hand, one step per gradient."""
    v = np.zeros_like(w)
    for g in grads:
        v = momentum * v - wd * lr * w - lr * g
        w = w + v
    return w


GRADS = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.2]), np.array([-0.4, 0.0, 1.0])]
W0 = np.array([1.0, -2.0, 3.0])


def run(optimizer, grads, w0=W0, name="kernel"):
    var = keras.Variable(w0.astype("float32"), name=name)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g.astype("float32")), var)])
    return np.asarray(var)


def test_three_steps_follow_the_papers_rule():
    got = run(PaperSGD(learning_rate=0.1, momentum=0.9, paper_weight_decay=5e-4), GRADS)
    np.testing.assert_allclose(got, paper_rule(W0, GRADS), rtol=1e-6)
    # A large decay makes the difference between coupled and decoupled decay visible.
    got = run(PaperSGD(learning_rate=0.1, momentum=0.9, paper_weight_decay=0.5), GRADS)
    np.testing.assert_allclose(got, paper_rule(W0, GRADS, wd=0.5), rtol=1e-6)


def test_keras_decoupled_weight_decay_is_a_different_rule():
    got = run(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.5), GRADS)
    assert not np.allclose(got, paper_rule(W0, GRADS, wd=0.5), rtol=1e-3)


def test_biases_can_be_exempt_from_decay_while_kernels_stay_decayed():
    no_decay = paper_rule(W0, GRADS, wd=0.0)
    exempt = PaperSGD(learning_rate=0.1, paper_weight_decay=0.5, decay_biases=False)
    np.testing.assert_allclose(run(exempt, GRADS, name="bias"), no_decay, rtol=1e-6)
    exempt = PaperSGD(learning_rate=0.1, paper_weight_decay=0.5, decay_biases=False)
    np.testing.assert_allclose(run(exempt, GRADS, name="kernel"), paper_rule(W0, GRADS, wd=0.5), rtol=1e-6)
    # In a model the variables are paths like "fc6/bias": the exemption reads the last part.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc6")])
    assert [exempt.decays(v) for v in (model.get_layer("fc6").kernel, model.get_layer("fc6").bias)] == [True, False]
    decayed = PaperSGD(learning_rate=0.1, paper_weight_decay=0.5, decay_biases=True)
    np.testing.assert_allclose(run(decayed, GRADS, name="bias"), paper_rule(W0, GRADS, wd=0.5), rtol=1e-6)


def test_config_round_trip():
    opt = PaperSGD(learning_rate=0.02, momentum=0.8, paper_weight_decay=1e-3, decay_biases=False)
    clone = PaperSGD.from_config(opt.get_config())
    assert (clone.paper_weight_decay, clone.decay_biases, clone.momentum) == (1e-3, False, pytest.approx(0.8))


MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from alexnet.optim import PaperSGD
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, bias_initializer="ones", name="fc6"),
                                  keras.layers.Dense(2, bias_initializer="ones", name="fc7")])
        model.compile(PaperSGD(learning_rate=1.0, momentum=0.0, paper_weight_decay=0.1, decay_biases=False,
                               frozen_layers=["fc7"]), loss=lambda y, p: 0.0 * tf.reduce_sum(p))
    model.optimizer.build(model.trainable_variables)
    model.optimizer.freeze_active.assign(1.0)
    before = {v.path: np.asarray(v).tolist() for v in model.trainable_variables}
    model.fit(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32), batch_size=4, epochs=1, verbose=0)
    print(json.dumps({v.path: [np.asarray(c).tolist() for c in strategy.experimental_local_results(v.value)]
                      for v in model.trainable_variables} | {"before": before}))
""")


@pytest.mark.slow  # subprocesses
def test_bias_exemption_and_frozen_layers_hold_on_every_replica(tmp_path):
    """Under MirroredStrategy the optimizer sees each replica's copy of a variable, named ".../replica_1:0" on
    the second: the rules must follow the Keras variable, or the replicas' weights part ways."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    values = json.loads(result.stdout.strip().splitlines()[-1])
    before = {path.split("/", 1)[1]: value for path, value in values.pop("before").items()}  # "sequential/fc6/..."
    values = {path.split("/", 1)[1]: copies for path, copies in values.items()}
    for path, copies in values.items():
        assert len(copies) == 2 and copies[0] == copies[1], (path, copies)  # the replicas agree
    # Zero gradients: only the decay moves a weight. fc6's kernel decays by 1 - lr * 0.1, its bias does not
    # (decay_biases=false), and frozen fc7 does not move at all.
    np.testing.assert_allclose(values["fc6/kernel"][0], np.asarray(before["fc6/kernel"]) * 0.9, rtol=1e-6)
    assert values["fc6/bias"][0] == before["fc6/bias"] == [1.0, 1.0]
    assert values["fc7/kernel"][0] == before["fc7/kernel"] and values["fc7/bias"][0] == before["fc7/bias"]
