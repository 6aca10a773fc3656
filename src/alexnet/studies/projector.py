"""TensorBoard's embedding projector: vectors with their labels and thumbnails, to rotate in 3-D (PCA, t-SNE).

Writes into a TensorBoard log directory: a checkpoint holding the vectors, with the `checkpoint` state file
that names it (the plugin finds a run's vectors only through that file), metadata.tsv (true and predicted
class per vector), sprite.png (the thumbnails in one grid) and projector_config.pbtxt, which ties them
together. TensorBoard's Projector tab reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

CHECKPOINT = "embedding.ckpt"
METADATA = "metadata.tsv"
SPRITE = "sprite.png"
CONFIG = "projector_config.pbtxt"
TENSOR_NAME = "embedding/.ATTRIBUTES/VARIABLE_VALUE"  # where tf.train.Checkpoint puts `embedding`


def sprite(thumbnails: np.ndarray) -> np.ndarray:
    """(N, h, w, 3) thumbnails as one square uint8 grid, row by row, the rest white."""
    n, h, w, _ = thumbnails.shape
    side = int(np.ceil(np.sqrt(n)))
    grid = np.full((side * h, side * w, 3), 255, np.uint8)
    for i, image in enumerate(thumbnails):
        r, c = divmod(i, side)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    return grid


def write_projector(directory: str | Path, vectors: np.ndarray, labels: list[str], predicted: list[str],
                    thumbnails: np.ndarray) -> None:
    """Writes vectors (N, D) with their true and predicted class names and (N, h, w, 3) thumbnails to directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # A manager writes the state file beside the checkpoint and keeps only the latest of repeated evals.
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(vectors.astype(np.float32)))
    tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=1, checkpoint_name=CHECKPOINT).save()
    rows = ["class\tpredicted", *(f"{t}\t{p}" for t, p in zip(labels, predicted, strict=True))]
    (directory / METADATA).write_text("\n".join(rows) + "\n")
    tf.io.write_file(str(directory / SPRITE), tf.io.encode_png(sprite(thumbnails)))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = TENSOR_NAME
    embedding.metadata_path = METADATA
    embedding.sprite.image_path = SPRITE
    embedding.sprite.single_image_dim.extend(thumbnails.shape[1:3][::-1])  # width, height
    projector.visualize_embeddings(str(directory), config)
