"""alexnet-keras: the paper's AlexNet in Keras 3, trained with model.fit on tf.data, reported in TensorBoard."""
