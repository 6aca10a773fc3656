"""Data sources of encoded images: folders of image files and TFDS data sets. No pre-processing here.

    folder:  DIR/<split>/<class>/*.jpg (also .jpeg .png .bmp .gif); unreadable files found once, named, skipped
    tfds:    a TFDS image-classification data set, images left encoded

The third source, the TFRecords `make prepare` writes, is alexnet/data/records.py; alexnet/data/pipeline.py
chooses among the three (`encoded_epochs`, `dataset_info`). `data` is the config's data section. Each source
is read as a function of the epoch: what touches the disk or the catalogue is done once, when it is made,
and each epoch's order is drawn inside tf.data from (seed, epoch).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import tensorflow as tf

from alexnet.data.options import fixed_parallelism
from alexnet.data.preprocess import decode_rgb
from alexnet.errors import DataError
from alexnet.files import read_json, write_json
from alexnet.seeds import epoch_seed, stream_seed

AUTOTUNE = tf.data.AUTOTUNE
SPLITS = ("train", "val")
# Folder sources: files with these suffixes (any letter case) are images; their content decides the decoder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass
class DatasetInfo:
    """What the model and the training loop need to know about a dataset."""

    class_names: list[str]
    num_train: int  # examples usable (bad files excluded)
    num_val: int


# ----- folder source: root/<split>/<class>/<image files> -----


def list_folder(root: str, split_dir: str, class_names: list[str] | None = None) -> tuple[list, list, list]:
    """(class names, image paths, labels) under root/split_dir/<class>/, sorted; no decoding.

    class_names fixes the label order (the training split's); without it the split's folder names are used.
    A missing or empty tree raises DataError showing the layout expected.
    """
    split_path = Path(root) / split_dir
    layout = f"expected {root}/{split_dir}/<class name>/<image>.jpg (also .jpeg .png .bmp .gif, any case)"
    if not split_path.is_dir():
        raise DataError(f"image folder {split_path} does not exist: {layout}")
    found = sorted(p.name for p in split_path.iterdir() if p.is_dir())
    if class_names is None:
        class_names = found
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DataError(f"{split_path} has classes not in the training split: {unknown[:10]}")
    files, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = split_path / name
        if class_dir.is_dir():
            names = sorted(f.name for f in os.scandir(class_dir)
                           if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES))
            files += [str(class_dir / n) for n in names]
            labels += [label] * len(names)
    if not files:
        raise DataError(f"image folder {split_path} has no images: {layout}")
    return class_names, files, labels


def folder_epochs(data, split: str, pipelines: int = 1, pipeline_id: int = 0, shuffle: bool = False,
                  seed: int | None = None):
    """A function epoch -> (file bytes, int64 label) of a folder split for input pipeline pipeline_id of
    pipelines, in that epoch's order; the folder is listed (and its unreadable files found) once, here.

    shuffle: the whole list of (path, label) entries, in the epoch's order (from seed's streams), before any
    file is read. The files are listed class by class, so only a shuffle of the whole list mixes the
    classes; it costs only strings, where a buffer of encoded images wide enough would hold the data set.
    """
    class_names = list_folder(data.dir, data.train_split)[0]
    _, files, labels = folder_files(data.dir, data.train_split if split == "train" else data.val_split, class_names)
    # Element-level sharding: every pipeline gets floor or ceil of len/pipelines files, never fewer batches.
    files, labels = files[pipeline_id::pipelines], labels[pipeline_id::pipelines]

    def epoch_examples(epoch):
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(files, tf.string), tf.constant(labels, tf.int64)))
        if shuffle:
            ds = ds.shuffle(len(files), seed=epoch_seed(seed, f"shuffle/{pipeline_id}", epoch))
        return ds.map(lambda path, label: (tf.io.read_file(path), label), num_parallel_calls=AUTOTUNE)

    return epoch_examples


def folder_files(root: str, split_dir: str, class_names: list[str] | None = None) -> tuple[list, list, list]:
    """list_folder without the files that cannot be decoded; those are named once, then remembered.

    The first call decodes every image once (a tf.data pass) and caches the unreadable ones in
    root/.unreadable-<split_dir>.json, keyed on the file names and sizes; later calls read the cache.
    """
    class_names, files, labels = list_folder(root, split_dir, class_names)
    where = Path(root) / split_dir
    key = hashlib.sha256("".join(f"{f}\t{os.path.getsize(f)}\n" for f in files).encode()).hexdigest()
    cache = Path(root) / f".unreadable-{split_dir}.json"
    cached = _read_scan_cache(cache)
    if cached.get("key") == key:
        bad = set(cached["unreadable"])
        if bad:
            print(f"{where}: skipping {len(bad)} unreadable files (listed in {cache})")
    else:
        bad = set(find_unreadable(files))
        if bad:
            print(f"{where}: skipping {len(bad)} unreadable files: {', '.join(sorted(bad))}")
        try:
            write_json(cache, {"key": key, "unreadable": sorted(bad)})
        except OSError as e:  # a read-only data set is fine; it is just scanned again next time
            print(f"could not cache the scan result in {cache}: {e}")
    keep = [i for i, f in enumerate(files) if f not in bad]
    return class_names, [files[i] for i in keep], [labels[i] for i in keep]


def _read_scan_cache(cache: Path) -> dict:
    """The cached scan result, or {} when there is none or it cannot be read (then the folder is scanned again)."""
    try:
        cached = read_json(cache)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        print(f"ignoring the unreadable scan cache {cache} ({e}); scanning again")
        return {}
    valid = isinstance(cached, dict) and isinstance(cached.get("unreadable"), list)
    return cached if valid else {}


def find_unreadable(files: list[str]) -> list[str]:
    """The files that do not decode (zero-byte, truncated, not an image), found with one parallel tf.data pass."""
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string)).enumerate()
    # ignore_errors drops failing elements silently; the missing indices name them.
    ds = ds.map(lambda i, path: (i, tf.shape(decode_rgb(tf.io.read_file(path)))), num_parallel_calls=AUTOTUNE)
    options = fixed_parallelism()
    options.deterministic = False
    readable = {int(i) for i, _ in ds.ignore_errors().with_options(options).as_numpy_iterator()}
    return [f for i, f in enumerate(files) if i not in readable]


# ----- TFDS source -----


def tfds_builder(data):
    """The prepared TFDS builder for data.name in data.dir (downloads unless present; imagenet2012 is manual)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(data.name, data_dir=data.dir or None)
    try:
        builder.download_and_prepare()
    except AssertionError as e:
        if not data.name.startswith("imagenet2012"):
            raise
        manual = Path(builder.data_dir_root) / "downloads" / "manual"
        raise DataError(
            f"imagenet2012 needs a manual download into {manual}/: ILSVRC2012_img_train.tar (147,897,477,120 bytes) "
            f"and ILSVRC2012_img_val.tar (6,744,924,160 bytes), from https://image-net.org/download-images "
            f"(registration needed). Put both files there and run again; TFDS then builds the data set once."
        ) from e
    return builder


def tfds_split(builder, data, role: str, pipelines: int = 1, pipeline_id: int = 0,
               file_seed: int | None = None) -> tf.data.Dataset:
    """The raw TFDS dataset of role ("train"/"val"), images left encoded, this pipeline's even share; the
    training split's files in one order drawn from file_seed, the same at every pass (TFDS takes a Python
    seed only, so a file order redrawn per pass would depend on how many passes this process has made)."""
    import tensorflow_datasets as tfds

    split = data.train_split if role == "train" else data.val_split
    if split == "val" and "val" not in builder.info.splits:
        split = "validation"  # the config default "val" is "validation" in TFDS data sets
    if pipelines > 1:
        split = tfds.even_splits(split, pipelines)[pipeline_id]  # sizes differ by at most one example
    return builder.as_dataset(split=split, shuffle_files=role == "train", read_config=tfds.ReadConfig(
        shuffle_seed=file_seed, shuffle_reshuffle_each_iteration=False), decoders={"image": tfds.decode.SkipDecoding()})


def tfds_epochs(data, split: str, pipelines: int = 1, pipeline_id: int = 0, shuffle: bool = False,
                seed: int | None = None):
    """A function epoch -> (encoded image bytes, int64 label) of a TFDS split for input pipeline pipeline_id of
    pipelines; shuffle: the file order (one per run, see tfds_split) and then data.shuffle_buffer examples in
    the epoch's order (TFDS writes its files in a shuffled order)."""
    ds = tfds_split(tfds_builder(data), data, split, pipelines, pipeline_id, stream_seed(seed, "shuffle/files"))

    def epoch_examples(epoch):
        ordered = ds
        if shuffle:
            ordered = ds.shuffle(data.shuffle_buffer, seed=epoch_seed(seed, f"shuffle/{pipeline_id}", epoch))
        return ordered.map(lambda ex: (ex["image"], ex["label"]), num_parallel_calls=AUTOTUNE)

    return epoch_examples
