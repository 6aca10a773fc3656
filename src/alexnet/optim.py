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
    frozen_layers (fine-tuning): the variables of these layers get a learning rate of 0 while the
    optimizer's `freeze_active` variable is 1 (set by alexnet.training.finetune.FreezeLayers), so they keep their
    values, momentum and decay included, and train normally once it is 0.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, paper_weight_decay=5e-4, decay_biases=True,
                 frozen_layers=(), **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=False, **kwargs)
        self.paper_weight_decay = paper_weight_decay
        self.decay_biases = decay_biases
        self.frozen_layers = tuple(frozen_layers)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        if self.frozen_layers:  # only then: optimizers saved without it keep loading without a warning
            self.freeze_active = self.add_variable((), initializer="zeros", name="freeze_active")

    def decays(self, variable) -> bool:
        """Whether the paper's weight decay applies to this variable."""
        is_bias = self._path_parts(variable)[-1] == "bias"
        return self.paper_weight_decay > 0 and (self.decay_biases or not is_bias)

    def is_frozen(self, variable) -> bool:
        """Whether variable belongs to one of frozen_layers."""
        parts = self._path_parts(variable)
        return bool(self.frozen_layers) and len(parts) > 1 and parts[-2] in self.frozen_layers

    def _path_parts(self, variable) -> list[str]:
        """["fc6", "bias"] for fc6's bias, from the Keras variable's path. update_step receives, on TensorFlow, the
        backing tf.Variable, and under a tf.distribute strategy one replica's copy of it (named
        "fc6/bias/replica_1:0" on the second replica): the optimizer's own index finds the Keras variable."""
        if self.built and not isinstance(variable, keras.Variable):
            variable = self._trainable_variables[self._get_variable_index(variable)]
        return variable.path.split("/")

    def update_step(self, gradient, variable, learning_rate):
        if self.decays(variable):
            gradient = gradient + ops.cast(self.paper_weight_decay, variable.dtype) * variable
        if self.is_frozen(variable):
            learning_rate = ops.cast(learning_rate, variable.dtype) * (1 - ops.cast(self.freeze_active, variable.dtype))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov")  # always False: the paper's rule is plain momentum
        return {**config, "paper_weight_decay": self.paper_weight_decay, "decay_biases": self.decay_biases,
                "frozen_layers": list(self.frozen_layers)}

