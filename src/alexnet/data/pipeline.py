"""The tf.data input pipeline: a source's encoded examples, shuffled, pre-processed and batched as uint8.

Sources live in `sources`, the image functions in `preprocess`; this module only joins them for one
input pipeline (sharded for tf.distribute) of the training or validation split.

Example:
    data = load_config("configs/demo.yaml").data
    for images, labels in make_dataset(data, "train", image_size=227, global_batch_size=128).take(1):
        print(images.shape, labels.shape)   # (128, 227, 227, 3) uint8, (128,) int32
"""

from __future__ import annotations

import tensorflow as tf

from alexnet.data.options import fixed_parallelism
from alexnet.data.preprocess import eval_preprocess, resized_square, train_crop_of_square, train_preprocess
from alexnet.data.records import read_records, read_records_info
from alexnet.data.sources import (
    SPLITS,
    DatasetInfo,
    folder_examples,
    folder_files,
    tfds_builder,
    tfds_examples,
    tfds_split,
)
from alexnet.seeds import stream_seed

AUTOTUNE = tf.data.AUTOTUNE


def dataset_info(data) -> DatasetInfo:
    """Class names and usable example counts of the data section's source (scans a folder once, see folder_files)."""
    if data.source == "records":
        info = read_records_info(data.dir)
        return DatasetInfo(info["class_names"], info["counts"]["train"], info["counts"]["val"])
    if data.source == "tfds":
        builder = tfds_builder(data)
        counts = [int(tfds_split(builder, data, role).cardinality()) for role in SPLITS]
        return DatasetInfo(list(builder.info.features["label"].names), *counts)
    class_names, train_files, _ = folder_files(data.dir, data.train_split)
    _, val_files, _ = folder_files(data.dir, data.val_split, class_names)
    return DatasetInfo(class_names, len(train_files), len(val_files))


def encoded_examples(data, split: str, pipelines: int = 1, pipeline_id: int = 0, shuffle: bool = False,
                     seed: int | None = None) -> tf.data.Dataset:
    """(encoded image bytes, int64 label) of split ("train"/"val") for input pipeline pipeline_id of pipelines,
    from the data section's source.

    shuffle: in an order redrawn at every pass (epoch), from seed's streams (None: drawn afresh). A folder
    shuffles its whole list of files before any is read; records and TFDS shuffle their file order, then
    data.shuffle_buffer examples (both are written in a shuffled order).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if data.source == "records":
        return read_records(data.dir, split, pipelines, pipeline_id, data.shuffle_buffer if shuffle else 0, seed)
    examples = tfds_examples if data.source == "tfds" else folder_examples
    return examples(data, split, pipelines, pipeline_id, shuffle, seed)


def make_dataset(
    data,
    split: str,
    image_size: int,
    global_batch_size: int,
    seed: int | None = 0,
    deterministic: bool = False,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches (uint8 images (B, S, S, 3), int32 labels (B,)) of split "train" or "val" for one input pipeline.

    data is the config's data section; S = image_size. train: shuffled, augmented (data.augment, see
    training_examples), batches of equal size (drop_remainder, so every worker takes the same number of
    steps), not repeated; seed fixes the shuffle and the augmentation (None: drawn afresh), deterministic
    the order. val: eval preprocessing, in order, last partial batch kept (data.cache: kept in memory after
    the first pass). With an input_context the data is sharded by input_pipeline_id and B is the
    per-replica batch size; auto-sharding is turned off so tf.distribute does not shard again.
    """
    train = split == "train"
    pipelines, pipeline_id = (
        (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0))
    if train:
        ds = training_examples(data, image_size, seed, pipelines, pipeline_id)
    else:
        ds = encoded_examples(data, split, pipelines, pipeline_id).map(
            lambda encoded, label: (eval_preprocess(encoded, data.resize_size, image_size), tf.cast(label, tf.int32)),
            num_parallel_calls=AUTOTUNE)
        ds = ds.cache() if data.cache else ds
    batch = input_context.get_per_replica_batch_size(global_batch_size) if input_context else global_batch_size
    ds = ds.batch(batch, drop_remainder=train).prefetch(AUTOTUNE)
    options = fixed_parallelism()
    options.deterministic = deterministic or not train  # validation stays in order
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # map then batch fuse into one op that writes each image straight into its batch (no extra copy).
    options.experimental_optimization.map_and_batch_fusion = True
    return ds.with_options(options)


def training_examples(data, image_size: int, seed: int | None, pipelines: int = 1,
                      pipeline_id: int = 0) -> tf.data.Dataset:
    """Augmented (uint8 crop, int32 label) training examples of one input pipeline, in a shuffled order.

    The order is drawn before any image is decoded (encoded_examples); with data.cache every image is
    decoded once into its resized square and kept, and the squares are shuffled instead. Every example
    gets a stateless seed of its own, so the augmentation is reproducible even with a parallel map.
    """
    if data.cache:
        ds = encoded_examples(data, "train", pipelines, pipeline_id).map(
            lambda encoded, label: (resized_square(encoded, data.resize_size), label),
            num_parallel_calls=AUTOTUNE).cache()
        if data.shuffle:  # every square of this pipeline: they are in memory anyway
            count = int(ds.cardinality())
            ds = ds.shuffle(count if count > 0 else data.shuffle_buffer,
                            seed=stream_seed(seed, f"shuffle/{pipeline_id}"), reshuffle_each_iteration=True)
        augment = lambda square, s: train_crop_of_square(square, image_size, data.augment, s, data.flip)  # noqa: E731
    else:
        ds = encoded_examples(data, "train", pipelines, pipeline_id, shuffle=data.shuffle, seed=seed)
        augment = lambda encoded, s: train_preprocess(  # noqa: E731
            encoded, data.resize_size, image_size, data.augment, s, data.flip)
    seeds = tf.data.Dataset.random(seed=stream_seed(seed, f"augment/{pipeline_id}"),
                                   rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds).map(
        lambda example, s: (augment(example[0], s), tf.cast(example[1], tf.int32)), num_parallel_calls=AUTOTUNE)
