"""The paper's optimiser: SGD with momentum and weight decay coupled through the momentum (section 5)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="alexnet")
class PaperSGD(keras.optimizers.SGD):
    """v <- momentum * v - weight_decay * lr * w - lr * g;  w <- w + v.

    The decay is added to the gradient, so it goes through the momentum as in the paper. Keras's own
    `weight_decay=` argument is decoupled (applied outside the momentum) and is a different rule.
    With decay_biases=False, variables named "bias" are not decayed (Caffe's convention).
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, paper_weight_decay=5e-4, decay_biases=True, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=False, **kwargs)
        self.paper_weight_decay = paper_weight_decay
        self.decay_biases = decay_biases

    def decays(self, variable) -> bool:
        """Whether the paper's weight decay applies to this variable."""
        # On TensorFlow the optimizer sees the backing tf.Variable, named like "fc6/bias:0".
        is_bias = variable.name.split(":")[0].split("/")[-1] == "bias"
        return self.paper_weight_decay > 0 and (self.decay_biases or not is_bias)

    def update_step(self, gradient, variable, learning_rate):
        if self.decays(variable):
            gradient = gradient + ops.cast(self.paper_weight_decay, variable.dtype) * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov")  # always False: the paper's rule is plain momentum
        return {**config, "paper_weight_decay": self.paper_weight_decay,
                "decay_biases": self.decay_biases}
