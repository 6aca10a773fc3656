"""The paper's update rule (section 5): v <- 0.9 v - wd*lr*w - lr*g; w <- w + v."""

import keras
import numpy as np
import pytest

from alexnet.optim import PaperSGD


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
