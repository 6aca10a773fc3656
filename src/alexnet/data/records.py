"""The records source: a data source written once by `make prepare` as sharded TFRecords of resize_size x
resize_size JPEGs, and read back with data.source=records.

Each image becomes the central square of its shorter-side-resized self (section 2), so training and
evaluation later decode small files. Unreadable images are skipped, counted and named here. With
data.colour_stats the RGB mean and covariance eigen-decomposition of the training pixels (section 4.1)
are saved too. Training reads the result with data.source=records, data.dir=<the prepared dir>.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from alexnet.data import sources
from alexnet.data.options import fixed_parallelism
from alexnet.data.preprocess import resized_square
from alexnet.errors import ConfigError, DataError
from alexnet.files import read_json, write_json
from alexnet.seeds import epoch_seed

AUTOTUNE = tf.data.AUTOTUNE
IMAGES_PER_SHARD = 5000  # ~100-150 MB of 256x256 JPEGs per file
SHARD_MULTIPLE = 8  # shard counts divide by 1, 2, 4 and 8 input pipelines, which then read whole files
JPEG_QUALITY = 95
PIXELS_PER_IMAGE = 16  # random pixels per training image for the colour statistics (a subsample suffices)
PROGRESS_SECONDS = 10
COLOUR_STATS = "colour_stats.json"
# Written by `make prepare` last, next to its shards: class names, counts and the shard file names per split.
RECORDS_INFO = "dataset.json"
RECORD_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),  # a resize_size x resize_size JPEG
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def colour_statistics(pixels) -> dict:
    """{"mean": [3], "eigval": [3] descending, "eigvec": 3x3, column j = eigenvector j} of (N, 3) RGB pixels.

    The statistics behind the paper's PCA colour noise (section 4.1) for 0-255 pixels, in the convention of
    IMAGENET_EIGVAL (the reference implementations' eigenvalues of the [0, 1]-scale covariance, times 255):
    eigval is the 0-255 covariance's eigenvalues divided by 255, so alpha * eigval is a shift in pixel
    levels of the same size for ImageNet's statistics and for a data set's own.
    """
    x = np.asarray(pixels, np.float64).reshape(-1, 3)
    eigval, eigvec = np.linalg.eigh(np.cov(x, rowvar=False) / 255)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    eigvec *= np.sign(eigvec[np.abs(eigvec).argmax(0), range(3)])  # an eigenvector's sign is arbitrary: fix it
    return {"mean": x.mean(0).tolist(), "eigval": eigval.tolist(), "eigvec": eigvec.tolist()}


def prepare(data) -> dict:
    """Writes the data section's train and val splits as TFRecords into data.prepared_dir (or data/records/<name>).

    Returns {"written": n, "skipped": n, "seconds": t, "dir": path}. Safe to re-run or interrupt: shards are
    written under temporary names and renamed, and dataset.json, which readers need, is written last.
    """
    start = time.perf_counter()
    if data.source == "records":
        raise ConfigError("data.source=records is already prepared; prepare reads a folder, demo or tfds source")
    out = Path(data.prepared_dir or Path("data/records") / (data.name or Path(data.dir).name))
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORDS_INFO).unlink(missing_ok=True)  # readers must not pair an old index with new shards
    class_names, examples = _examples(data)
    info = {"class_names": class_names, "resize_size": data.resize_size, "counts": {}, "files": {}, "skipped": {}}
    pixels = []
    for role in ("train", "val"):
        names, ds = examples[role]
        files, skipped, sample = _write_split(ds, names, out, role, data.resize_size)
        info["files"][role], info["skipped"][role] = files, skipped
        info["counts"][role] = len(names) - len(skipped)
        if role == "train":
            pixels = sample
    for stale in set(out.glob("*-of-*.tfrecord*")) - {out / f for fs in info["files"].values() for f in fs}:
        stale.unlink()
    if data.colour_stats:
        stats = colour_statistics(np.concatenate(pixels))
        write_json(out / COLOUR_STATS, stats)
        print(f"colour statistics of {len(pixels) * PIXELS_PER_IMAGE} training pixels: {out / COLOUR_STATS} "
              f"(use it with model.colour_stats={out / COLOUR_STATS})")
    write_json(out / RECORDS_INFO, info)
    written, skipped = sum(info["counts"].values()), sum(len(s) for s in info["skipped"].values())
    seconds = time.perf_counter() - start
    print(f"prepared {out}: {written} images written, {skipped} skipped, {seconds:.1f} s")
    return {"written": written, "skipped": skipped, "seconds": seconds, "dir": str(out)}


def _examples(data) -> tuple[list[str], dict]:
    """Class names and, per role, (example names, dataset of (encoded bytes, label)) in writing order."""
    if data.source == "tfds":
        builder = sources.tfds_builder(data)
        examples = {}
        for role in ("train", "val"):
            ds = sources.tfds_split(builder, data, role).map(lambda ex: (ex["image"], ex["label"]))
            examples[role] = ([f"{role} example {i}" for i in range(int(ds.cardinality()))], ds)
        return list(builder.info.features["label"].names), examples
    class_names = sources.list_folder(data.dir, data.train_split)[0]
    examples = {}
    for role, split_dir in (("train", data.train_split), ("val", data.val_split)):
        _, files, labels = sources.list_folder(data.dir, split_dir, class_names)
        if role == "train":  # the folder order is by class; shards must mix classes for the shuffle buffer
            order = np.random.default_rng(0).permutation(len(files))
            files, labels = [files[i] for i in order], [labels[i] for i in order]
        ds = tf.data.Dataset.from_tensor_slices((files, tf.constant(labels, tf.int64)))
        examples[role] = (files, ds.map(lambda path, label: (tf.io.read_file(path), label)))
    return class_names, examples


def _write_split(ds, names: list[str], out: Path, role: str, resize_size: int):
    """Writes ds round-robin into shards; returns (shard file names, skipped example names, pixel samples)."""
    total = len(names)
    shards = max(1, min(total, SHARD_MULTIPLE * math.ceil(total / (IMAGES_PER_SHARD * SHARD_MULTIPLE))))
    files = [f"{role}-{k:05d}-of-{shards:05d}.tfrecord" for k in range(shards)]

    def encode(index, example):
        square = resized_square(example[0], resize_size)
        indices = tf.random.uniform([PIXELS_PER_IMAGE], 0, resize_size**2, tf.int32)
        sample = tf.gather(tf.reshape(square, [-1, 3]), indices)
        return index, tf.io.encode_jpeg(square, quality=JPEG_QUALITY), example[1], sample

    # In order, so a gap in the indices names the example that failed to decode (ignore_errors is silent).
    encoded = ds.enumerate().map(encode, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()
    writers = [tf.io.TFRecordWriter(str(out / f) + ".tmp") for f in files]
    written, skipped, pixels, last_report = 0, [], [], time.perf_counter()
    start = last_report
    for index, jpeg, label, sample in encoded.prefetch(AUTOTUNE).with_options(fixed_parallelism()).as_numpy_iterator():
        skipped += names[written + len(skipped) : index]
        writers[written % shards].write(serialize_example(jpeg, int(label)))
        written += 1
        pixels.append(sample)
        if time.perf_counter() - last_report > PROGRESS_SECONDS:
            last_report = time.perf_counter()
            print(f"{role}: {written + len(skipped)}/{total} images, {len(skipped)} skipped, "
                  f"{written / (last_report - start):.0f} img/s", flush=True)
    skipped += names[written + len(skipped) :]
    for writer, f in zip(writers, files, strict=True):
        writer.close()
        Path(str(out / f) + ".tmp").rename(out / f)
    if skipped:
        print(f"{role}: skipped {len(skipped)} unreadable images: {', '.join(skipped)}")
    print(f"{role}: {written} images in {shards} shards")
    return files, skipped, pixels


# ----- reading -----


def read_records_info(records_dir: str) -> dict:
    """The JSON `make prepare` writes last: class names, counts and shard files per split."""
    path = Path(records_dir) / RECORDS_INFO
    if not path.is_file():
        raise DataError(f"{path} not found: write the records first with `make prepare` "
                                f"(data.source=records reads data.dir = the prepared directory)")
    return read_json(path)


def serialize_example(jpeg: bytes, label: int) -> bytes:
    """One record: a resize_size square JPEG and its label."""
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def records_epochs(records_dir: str, split: str, pipelines: int = 1, pipeline_id: int = 0, shuffle_buffer: int = 0,
                   seed: int | None = None):
    """A function epoch -> (encoded JPEG, int64 label) of split ("train"/"val") from the shards named in the
    prepared JSON (read once, here).

    Shards are written round-robin, so when their number divides by the pipelines each pipeline takes whole
    files and still gets floor(n / pipelines) examples or more; otherwise it takes every pipelines-th record.
    shuffle_buffer > 0: the files in the epoch's order, then that many records shuffled (seed's streams).
    """
    files = [str(Path(records_dir) / f) for f in read_records_info(records_dir)["files"][split]]
    by_file = pipelines > 1 and len(files) % pipelines == 0
    if by_file:
        files = files[pipeline_id::pipelines]

    def epoch_examples(epoch):
        ds = tf.data.Dataset.from_tensor_slices(files)
        # Element sharding needs the same record order in every pipeline: one file order for all of them.
        if shuffle_buffer and (seed is not None or by_file or pipelines == 1):
            ds = ds.shuffle(len(files), seed=epoch_seed(seed, "shuffle/files", epoch))
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
                           deterministic=True)
        if pipelines > 1 and not by_file:
            ds = ds.shard(pipelines, pipeline_id)
        if shuffle_buffer:
            ds = ds.shuffle(shuffle_buffer, seed=epoch_seed(seed, f"shuffle/{pipeline_id}", epoch))
        return ds.map(_parse_record, num_parallel_calls=AUTOTUNE)

    return epoch_examples


def read_records(records_dir: str, split: str, pipelines: int = 1, pipeline_id: int = 0, shuffle_buffer: int = 0,
                 seed: int | None = None, epoch: int = 0) -> tf.data.Dataset:
    """records_epochs' examples of one epoch."""
    return records_epochs(records_dir, split, pipelines, pipeline_id, shuffle_buffer, seed)(epoch)


def _parse_record(record):
    example = tf.io.parse_single_example(record, RECORD_FEATURES)
    return example["image"], example["label"]
