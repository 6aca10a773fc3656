"""The tf.data input pipeline: a source's encoded examples, shuffled, pre-processed and batched as uint8.

Sources live in `sources`, the image functions in `preprocess`; this module only joins them for one
input pipeline (sharded for tf.distribute) of the training or validation split.

Example:
    data = load_config("demo").data
    for images, labels in make_dataset(data, "train", image_size=227, global_batch_size=128).take(1):
        print(images.shape, labels.shape)   # (128, 227, 227, 3) uint8, (128,) int32
"""

from __future__ import annotations

import tensorflow as tf

from alexnet.data.demo import demo_data_on_first_use
from alexnet.data.options import fixed_parallelism
from alexnet.data.preprocess import eval_preprocess, resized_square, train_crop_of_square, train_preprocess
from alexnet.data.records import read_records_info, records_epochs
from alexnet.data.sources import (
    SPLITS,
    DatasetInfo,
    folder_epochs,
    folder_files,
    tfds_builder,
    tfds_epochs,
    tfds_split,
)
from alexnet.seeds import epoch_seed

AUTOTUNE = tf.data.AUTOTUNE
PIPELINE_GRAPH_SEED = 1  # the graph-level seed of every epoch's pipeline (see training_stream)
TRAINING_SAMPLE_SEED = 0  # training_sample's images, the same whatever the run's seed


def dataset_info(data) -> DatasetInfo:
    """Class names and usable example counts of the data section's source (scans a folder once, see folder_files).
    Every command reads this first: the demo set is made here when there is none (demo_data_on_first_use)."""
    demo_data_on_first_use(data)
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


def encoded_epochs(data, split: str, pipelines: int = 1, pipeline_id: int = 0, shuffle: bool = False,
                   seed: int | None = None):
    """A function epoch -> (encoded image bytes, int64 label) of split ("train"/"val") for input pipeline
    pipeline_id of pipelines, from the data section's source; the source is listed once, here.

    shuffle: in the order of the epoch (an int, or the tensor tf.data hands a pass), from seed's streams (None:
    drawn afresh). A folder shuffles its whole list of files before any is read; records and TFDS shuffle
    their file order, then data.shuffle_buffer examples (both are written in a shuffled order).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if data.source == "records":
        return records_epochs(data.dir, split, pipelines, pipeline_id, data.shuffle_buffer if shuffle else 0, seed)
    epochs = tfds_epochs if data.source == "tfds" else folder_epochs
    return epochs(data, split, pipelines, pipeline_id, shuffle, seed)


def encoded_examples(data, split: str, pipelines: int = 1, pipeline_id: int = 0, shuffle: bool = False,
                     seed: int | None = None, epoch: int = 0) -> tf.data.Dataset:
    """encoded_epochs' examples of one epoch."""
    return encoded_epochs(data, split, pipelines, pipeline_id, shuffle, seed)(epoch)


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

    data is the config's data section; S = image_size. train: the first epoch of training_stream (the
    batches of epoch 0), not repeated. val: eval preprocessing, in order, last partial batch kept
    (data.cache: kept in memory after the first pass). With an input_context the data is sharded by
    input_pipeline_id and B is the per-replica batch size; auto-sharding is turned off so tf.distribute
    does not shard again.
    """
    pipelines, pipeline_id = _pipeline(input_context)
    batch = _batch_size(global_batch_size, input_context)
    if split == "train":
        return training_stream(data, image_size, global_batch_size, seed, deterministic, input_context, epochs=1)
    ds = encoded_examples(data, split, pipelines, pipeline_id).map(
        lambda encoded, label: (eval_preprocess(encoded, data.resize_size, image_size), tf.cast(label, tf.int32)),
        num_parallel_calls=AUTOTUNE)
    ds = ds.cache() if data.cache else ds
    ds = ds.batch(batch).prefetch(AUTOTUNE)
    return ds.with_options(_options(deterministic=True))  # validation stays in order


def training_sample(data, image_size: int, batch: int, count: int) -> tf.data.Dataset:
    """Batches of `count` training images with the evaluation pre-processing (the central crop), in order:
    the same images for every run on this data whatever its seed (a shuffle of the whole split with a seed
    of its own), for what is measured on the training split in inference mode."""
    encoded = encoded_examples(data, "train", shuffle=True, seed=TRAINING_SAMPLE_SEED).take(count)
    return encoded.map(lambda e, label: (eval_preprocess(e, data.resize_size, image_size), tf.cast(label, tf.int32)),
                       num_parallel_calls=AUTOTUNE).batch(batch).with_options(_options(deterministic=True))


def training_stream(data, image_size: int, global_batch_size: int, seed: int | None = 0, deterministic: bool = False,
                    input_context: tf.distribute.InputContext | None = None, start_epoch: int = 0,
                    skip_batches: int = 0, steps_per_epoch: int | None = None,
                    epochs: int | None = None) -> tf.data.Dataset:
    """The training batches of one input pipeline, epoch after epoch from start_epoch (`epochs` of them, or
    without end).

    Every epoch is a pass over the pipeline's share of the training split (the batches of its first
    steps_per_epoch steps when given), shuffled and augmented (data.augment, see training_examples) from
    seed's streams for that epoch (None: drawn afresh), in batches of equal size (drop_remainder, so every
    worker takes the same number of steps). Epoch e is the same whichever process trains it, so a resumed run
    starts at its epoch (and skip_batches steps into it, skipped before any image is decoded) and sees what
    an uninterrupted run sees. deterministic fixes the order of a parallel map's results.
    """
    pipelines, pipeline_id = _pipeline(input_context)
    batch = _batch_size(global_batch_size, input_context)
    examples = training_examples(data, image_size, seed, pipelines, pipeline_id)
    # A step takes one batch from each of this pipeline's replicas (MirroredStrategy: all of them, in turn).
    per_step = input_context.num_replicas_in_sync // pipelines if input_context else 1

    def epoch_batches(epoch):
        if seed is not None:
            # The epoch's shuffles draw from the run's seeds alone: tf.data would mix TensorFlow's global seed
            # into them (and reads a tensor seed as a Python bool when that global seed is 0). The graph is
            # this function's own, traced once.
            tf.compat.v1.set_random_seed(PIPELINE_GRAPH_SEED)
        skip = tf.where(epoch == start_epoch, tf.constant(skip_batches * per_step * batch, tf.int64), 0)
        batches = examples(epoch, skip).batch(batch, drop_remainder=True)
        return batches.take(steps_per_epoch * per_step - skip // batch) if steps_per_epoch else batches

    end = tf.int64.max if epochs is None else start_epoch + epochs
    stream = tf.data.Dataset.range(start_epoch, end).flat_map(epoch_batches)
    return stream.prefetch(AUTOTUNE).with_options(_options(deterministic))


def training_examples(data, image_size: int, seed: int | None, pipelines: int = 1, pipeline_id: int = 0):
    """A function (epoch, skip) -> that epoch's augmented (uint8 crop, int32 label) training examples of one
    input pipeline, in a shuffled order, the first `skip` left out before they are decoded.

    The order is drawn before any image is decoded (encoded_examples); with data.cache every image is
    decoded once into its resized square and kept, and the squares are shuffled instead. Every example
    gets a stateless seed of its own from (seed, epoch, its place in the epoch), so the augmentation is
    reproducible even with a parallel map.
    """
    if data.cache:
        squares = encoded_examples(data, "train", pipelines, pipeline_id).map(
            lambda encoded, label: (resized_square(encoded, data.resize_size), label),
            num_parallel_calls=AUTOTUNE).cache()
        count = int(squares.cardinality())  # every square of this pipeline: they are in memory anyway

        def ordered(epoch):
            if not data.shuffle:
                return squares
            return squares.shuffle(count if count > 0 else data.shuffle_buffer,
                                   seed=epoch_seed(seed, f"shuffle/{pipeline_id}", epoch))

        augment = lambda square, s: train_crop_of_square(square, image_size, data.augment, s, data.flip)  # noqa: E731
    else:
        ordered = encoded_epochs(data, "train", pipelines, pipeline_id, data.shuffle, seed)

        augment = lambda encoded, s: train_preprocess(  # noqa: E731
            encoded, data.resize_size, image_size, data.augment, s, data.flip)

    def examples(epoch, skip=0):
        base = epoch_seed(seed, f"augment/{pipeline_id}", epoch)

        def prepare(index, example):
            crop_seed = None if base is None else tf.stack([base, index])
            return augment(example[0], crop_seed), tf.cast(example[1], tf.int32)

        return ordered(epoch).enumerate().skip(skip).map(prepare, num_parallel_calls=AUTOTUNE)

    return examples


def _pipeline(input_context) -> tuple[int, int]:
    """(number of input pipelines, this one's id)."""
    return (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0)


def _batch_size(global_batch_size: int, input_context) -> int:
    """The per-replica batch of a distributed pipeline, the global one otherwise."""
    return input_context.get_per_replica_batch_size(global_batch_size) if input_context else global_batch_size


def _options(deterministic: bool) -> tf.data.Options:
    """Fixed parallelism, the order kept when deterministic, no auto-sharding (each pipeline reads its share)."""
    options = fixed_parallelism()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # map then batch fuse into one op that writes each image straight into its batch (no extra copy).
    options.experimental_optimization.map_and_batch_fusion = True
    return options
