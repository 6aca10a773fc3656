"""Input pipeline: images from a folder tree, TFDS or prepared TFRecords, as uint8 batches (sections 2, 4.1).

Train and eval preprocessing sit side by side at the top. Both decode by content (JPEG magic bytes take
the fused decode-and-crop path; PNG, GIF, BMP and JPEGs in disguise go through tf.io.decode_image), keep
the central square, resize it to resize_size and crop image_size pixels. Float conversion, mean
subtraction and colour noise happen inside the model, on the accelerator.

Example:
    config = load_config("configs/demo.yaml")
    info = dataset_info(config)
    for images, labels in make_dataset(config, "train").take(1):
        print(images.shape, labels.shape)   # (128, 227, 227, 3) uint8, (128,) int32
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# Folder sources: files with these suffixes (any letter case) are images; their content decides the decoder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Inception-style random-resized crop (Szegedy et al. 2015): 8%-100% of the area, aspect ratio 3/4-4/3.
INCEPTION_AREA_RANGE = (0.08, 1.0)
INCEPTION_ASPECT_RANGE = (3 / 4, 4 / 3)
INCEPTION_MAX_ATTEMPTS = 10
# Written by `make prepare` next to its shards: class names, counts and the shard file names per split.
RECORDS_INFO = "dataset.json"
RECORD_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),  # a resize_size x resize_size JPEG
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def train_preprocess(encoded, resize_size: int, image_size: int, augment: str = "paper", seed=None):
    """Encoded image -> uint8 (image_size, image_size, 3) training crop.

    paper: a random image_size crop of the central square resized to resize_size, and a random horizontal
    flip (section 4.1). inception: a random-resized crop of the whole image, resized to image_size, and a
    flip. none: eval_preprocess. seed: a stateless seed of shape (2,); None draws one from the global generator.
    """
    if augment == "none":
        return eval_preprocess(encoded, resize_size, image_size)
    _check_sizes(resize_size, image_size)
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if augment == "paper":
        offset = tf.random.stateless_uniform([2], crop_seed, maxval=resize_size - image_size + 1, dtype=tf.int32)
        window = lambda shape: _square_crop_window(shape, resize_size, image_size, offset)  # noqa: E731
    elif augment == "inception":
        window = lambda shape: _inception_window(shape, crop_seed)  # noqa: E731
    else:
        raise ValueError(f"data.augment must be 'paper', 'inception' or 'none', got {augment!r}")
    return tf.image.stateless_random_flip_left_right(_decode_crop_resize(encoded, window, image_size), flip_seed)


def eval_preprocess(encoded, resize_size: int, image_size: int):
    """Encoded image -> uint8 (image_size, image_size, 3): the central crop of the resized central square."""
    _check_sizes(resize_size, image_size)
    offset = tf.fill([2], (resize_size - image_size) // 2)
    return _decode_crop_resize(encoded, lambda shape: _square_crop_window(shape, resize_size, image_size, offset), image_size)


def resized_square(encoded, resize_size: int):
    """Encoded image -> uint8 (resize_size, resize_size, 3): shorter side to resize_size, central square (section 2)."""
    return _decode_crop_resize(encoded, lambda shape: _square_crop_window(shape, resize_size, resize_size, (0, 0)), resize_size)


def decode_rgb(encoded):
    """Any supported encoded image (JPEG incl. CMYK/grayscale, PNG incl. RGBA, GIF, BMP) -> uint8 (H, W, 3).

    The format is found from the content, not the file name; GIFs give their first frame.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _check_sizes(resize_size: int, image_size: int):
    if image_size > resize_size:
        raise ValueError(f"model.image_size ({image_size}) must not exceed data.resize_size ({resize_size})")


def _decode_crop_resize(encoded, window_fn, size: int):
    """uint8 (size, size, 3) from the window (y, x, h, w) = window_fn(shape (H, W, C)) of an encoded image.

    JPEGs (found by magic bytes) decode only the window, at 1/2, 1/4 or 1/8 scale (JPEG's DCT scaling) while
    it stays at least size, so the bilinear resize shrinks less than 2x and needs no antialiasing. Other
    formats decode whole, then are sliced and resized with antialiasing.
    """

    def jpeg():
        y, x, h, w = window_fn(tf.io.extract_jpeg_shape(encoded))
        halvings = sum(tf.cast(tf.minimum(h, w) >= size * r, tf.int32) for r in (2, 4, 8))

        def scaled(r):
            window = tf.stack([y // r, x // r, h // r, w // r])
            return lambda: tf.io.decode_and_crop_jpeg(encoded, window, channels=3, ratio=r)

        return _resize(tf.switch_case(halvings, [scaled(r) for r in (1, 2, 4, 8)]), size, antialias=False)

    def other():
        image = decode_rgb(encoded)
        y, x, h, w = window_fn(tf.shape(image))
        return _resize(image[y : y + h, x : x + w], size, antialias=True)

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def _square_crop_window(shape, resize_size: int, crop_size: int, offset):
    """Source pixels (y, x, h, w) of the crop_size crop at offset (y, x) of the central square resized to resize_size.

    Cropping before resizing gives the same picture and lets a JPEG decode only the pixels it needs.
    """
    side = tf.minimum(shape[0], shape[1])
    scale = tf.cast(side, tf.float32) / resize_size
    size = tf.clip_by_value(tf.cast(tf.round(crop_size * scale), tf.int32), 1, side)
    y, x = (tf.minimum(tf.cast(tf.cast(offset[i], tf.float32) * scale, tf.int32), side - size) for i in (0, 1))
    return (shape[0] - side) // 2 + y, (shape[1] - side) // 2 + x, size, size


def _inception_window(shape, seed):
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed, min_object_covered=0.0,
        aspect_ratio_range=INCEPTION_ASPECT_RANGE, area_range=INCEPTION_AREA_RANGE,
        max_attempts=INCEPTION_MAX_ATTEMPTS, use_image_if_no_bounding_boxes=True,
    )
    return begin[0], begin[1], size[0], size[1]


def _resize(image, size: int, antialias: bool):
    """uint8 image -> uint8 (size, size, 3), bilinear; untouched if already that size.

    Resized as float32 (TF's float kernel is faster than its uint8 one) and rounded half up by truncating
    x + 0.5: bilinear weights are non-negative and sum to 1, so x stays in [0, 255] and needs no clipping.
    """

    def resize():
        return tf.cast(tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=antialias) + 0.5, tf.uint8)

    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
    return tf.ensure_shape(tf.cond(same, lambda: image, resize), [size, size, 3])


@dataclasses.dataclass
class DatasetInfo:
    """What the model and the training loop need to know about a dataset."""

    class_names: list[str]
    num_train: int  # examples usable (bad files excluded)
    num_val: int


def dataset_info(config) -> DatasetInfo:
    """Class names and usable example counts of config.data's source (scans a folder once, see folder_files)."""
    data = config.data
    if data.source == "records":
        info = read_records_info(data.dir)
        return DatasetInfo(info["class_names"], info["counts"]["train"], info["counts"]["val"])
    if data.source == "tfds":
        builder = tfds_builder(data)
        counts = [int(tfds_split(builder, data, role).cardinality()) for role in ("train", "val")]
        return DatasetInfo(list(builder.info.features["label"].names), *counts)
    class_names, train_files, _ = folder_files(data.dir, data.train_split)
    _, val_files, _ = folder_files(data.dir, data.val_split, class_names)
    return DatasetInfo(class_names, len(train_files), len(val_files))


def make_dataset(config, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Batches (uint8 images (B, S, S, 3), int32 labels (B,)) of split "train" or "val" for one input pipeline.

    train: shuffled, augmented (data.augment), batches of equal size (drop_remainder, so every worker takes
    the same number of steps), not repeated. val: eval preprocessing, in order, last partial batch kept.
    With an input_context the data is sharded by input_pipeline_id and B is the per-replica batch size;
    auto-sharding is turned off so tf.distribute does not shard again.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    data, train = config.data, split == "train"
    pipelines, pipeline_id = (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0)
    ds = _encoded_examples(config, split, pipelines, pipeline_id)  # (encoded bytes, label), this pipeline's share
    if train:
        # Shuffling the encoded bytes, not decoded images, keeps the buffer ~10x smaller and copies nothing big.
        ds = ds.shuffle(data.shuffle_buffer, seed=config.train.seed, reshuffle_each_iteration=True)
        # One stateless seed per example makes the augmentation reproducible even with parallel map.
        seeds = tf.data.Dataset.random(seed=config.train.seed + pipeline_id, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda example, seed: (
                train_preprocess(example[0], data.resize_size, config.model.image_size, data.augment, seed),
                tf.cast(example[1], tf.int32),
            ),
            num_parallel_calls=AUTOTUNE,
        )
    else:
        ds = ds.map(
            lambda encoded, label: (
                eval_preprocess(encoded, data.resize_size, config.model.image_size), tf.cast(label, tf.int32)
            ),
            num_parallel_calls=AUTOTUNE,
        )
    batch = input_context.get_per_replica_batch_size(config.train.global_batch_size) if input_context else config.train.global_batch_size
    ds = ds.batch(batch, drop_remainder=train).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = config.train.deterministic or not train  # validation stays in order
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # map then batch fuse into one op that writes each image straight into its batch (no extra copy).
    options.experimental_optimization.map_and_batch_fusion = True
    return ds.with_options(options)


def _encoded_examples(config, split: str, pipelines: int, pipeline_id: int) -> tf.data.Dataset:
    """(encoded image bytes, int64 label) of split for input pipeline pipeline_id of pipelines."""
    data = config.data
    if data.source == "records":
        return read_records(data.dir, split, pipelines, pipeline_id)
    if data.source == "tfds":
        ds = tfds_split(tfds_builder(data), data, split, pipelines, pipeline_id)
        return ds.map(lambda ex: (ex["image"], ex["label"]), num_parallel_calls=AUTOTUNE)
    class_names = list_folder(data.dir, data.train_split)[0]
    _, files, labels = folder_files(data.dir, data.train_split if split == "train" else data.val_split, class_names)
    # Element-level sharding: every pipeline gets floor or ceil of len/pipelines files, never fewer batches.
    files, labels = files[pipeline_id::pipelines], labels[pipeline_id::pipelines]
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(files, tf.string), tf.constant(labels, tf.int64)))
    return ds.map(lambda path, label: (tf.io.read_file(path), label), num_parallel_calls=AUTOTUNE)


# ----- folder source: root/<split>/<class>/<image files> -----


def list_folder(root: str, split_dir: str, class_names: list[str] | None = None) -> tuple[list[str], list[str], list[int]]:
    """(class names, image paths, labels) under root/split_dir/<class>/, sorted; no decoding.

    class_names fixes the label order (the training split's); without it the split's folder names are used.
    A missing or empty tree raises FileNotFoundError showing the layout expected.
    """
    split_path = Path(root) / split_dir
    layout = f"expected {root}/{split_dir}/<class name>/<image>.jpg (also .jpeg .png .bmp .gif, any case)"
    if not split_path.is_dir():
        raise FileNotFoundError(f"image folder {split_path} does not exist: {layout}")
    found = sorted(p.name for p in split_path.iterdir() if p.is_dir())
    if class_names is None:
        class_names = found
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise ValueError(f"{split_path} has classes not in the training split: {unknown[:10]}")
    files, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = split_path / name
        if class_dir.is_dir():
            names = sorted(f.name for f in os.scandir(class_dir) if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES))
            files += [str(class_dir / n) for n in names]
            labels += [label] * len(names)
    if not files:
        raise FileNotFoundError(f"image folder {split_path} has no images: {layout}")
    return class_names, files, labels


def folder_files(root: str, split_dir: str, class_names: list[str] | None = None) -> tuple[list[str], list[str], list[int]]:
    """list_folder without the files that cannot be decoded; those are named once, then remembered.

    The first call decodes every image once (a tf.data pass) and caches the unreadable ones in
    root/.unreadable-<split_dir>.json, keyed on the file names and sizes; later calls read the cache.
    """
    class_names, files, labels = list_folder(root, split_dir, class_names)
    where = Path(root) / split_dir
    key = hashlib.sha256("".join(f"{f}\t{os.path.getsize(f)}\n" for f in files).encode()).hexdigest()
    cache = Path(root) / f".unreadable-{split_dir}.json"
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    if cached.get("key") == key:
        bad = set(cached["unreadable"])
        if bad:
            print(f"{where}: skipping {len(bad)} unreadable files (listed in {cache})")
    else:
        bad = set(find_unreadable(files))
        if bad:
            print(f"{where}: skipping {len(bad)} unreadable files: {', '.join(sorted(bad))}")
        try:
            cache.write_text(json.dumps({"key": key, "unreadable": sorted(bad)}, indent=1))
        except OSError as e:  # a read-only data set is fine; it is just scanned again next time
            print(f"could not cache the scan result in {cache}: {e}")
    keep = [i for i, f in enumerate(files) if f not in bad]
    return class_names, [files[i] for i in keep], [labels[i] for i in keep]


def find_unreadable(files: list[str]) -> list[str]:
    """The files that do not decode (zero-byte, truncated, not an image), found with one parallel tf.data pass."""
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string)).enumerate()
    # ignore_errors drops failing elements silently; the missing indices name them.
    ds = ds.map(lambda i, path: (i, tf.shape(decode_rgb(tf.io.read_file(path)))), num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = False
    readable = {int(i) for i, _ in ds.ignore_errors().with_options(options).as_numpy_iterator()}
    return [f for i, f in enumerate(files) if i not in readable]


# ----- TFDS source -----


def tfds_builder(data):
    """The prepared TFDS builder for data.name in data.dir (downloads unless present; imagenet2012 is manual)."""
    import tensorflow_datasets as tfds

    if not data.name:
        raise ValueError("data.source=tfds needs data.name, e.g. imagenette/320px-v2 or imagenet2012")
    builder = tfds.builder(data.name, data_dir=data.dir or None)
    try:
        builder.download_and_prepare()
    except AssertionError as e:
        if not data.name.startswith("imagenet2012"):
            raise
        manual = Path(builder.data_dir_root) / "downloads" / "manual"
        raise FileNotFoundError(
            f"imagenet2012 needs a manual download into {manual}/: ILSVRC2012_img_train.tar (147,897,477,120 bytes) "
            f"and ILSVRC2012_img_val.tar (6,744,924,160 bytes), from https://image-net.org/download-images "
            f"(registration needed). Put both files there and run again; TFDS then builds the data set once."
        ) from e
    return builder


def tfds_split(builder, data, role: str, pipelines: int = 1, pipeline_id: int = 0) -> tf.data.Dataset:
    """The raw TFDS dataset of role ("train"/"val"), images left encoded, this pipeline's even share."""
    import tensorflow_datasets as tfds

    split = data.train_split if role == "train" else data.val_split
    if split == "val" and "val" not in builder.info.splits:
        split = "validation"  # the config default "val" is "validation" in TFDS data sets
    if pipelines > 1:
        split = tfds.even_splits(split, pipelines)[pipeline_id]  # sizes differ by at most one example
    return builder.as_dataset(split=split, shuffle_files=role == "train",
                              decoders={"image": tfds.decode.SkipDecoding()})


# ----- records source: TFRecord shards written by `make prepare` -----


def read_records_info(records_dir: str) -> dict:
    """The JSON `make prepare` writes last: class names, counts and shard files per split."""
    path = Path(records_dir) / RECORDS_INFO
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: write the records first with `make prepare` "
                                f"(data.source=records reads data.dir = the prepared directory)")
    return json.loads(path.read_text())


def serialize_example(jpeg: bytes, label: int) -> bytes:
    """One record: a resize_size square JPEG and its label."""
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_records(records_dir: str, split: str, pipelines: int = 1, pipeline_id: int = 0) -> tf.data.Dataset:
    """(encoded JPEG, int64 label) of split ("train"/"val") from the shards named in the prepared JSON.

    Shards are written round-robin, so when their number divides by the pipelines each pipeline takes whole
    files and still gets floor(n / pipelines) examples or more; otherwise it takes every pipelines-th record.
    """
    files = [str(Path(records_dir) / f) for f in read_records_info(records_dir)["files"][split]]
    by_file = pipelines > 1 and len(files) % pipelines == 0
    if by_file:
        files = files[pipeline_id::pipelines]
    # deterministic=True: element sharding needs the same record order in every pipeline.
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE, deterministic=True
    )
    if pipelines > 1 and not by_file:
        ds = ds.shard(pipelines, pipeline_id)
    return ds.map(_parse_record, num_parallel_calls=AUTOTUNE)


def _parse_record(record):
    example = tf.io.parse_single_example(record, RECORD_FEATURES)
    return example["image"], example["label"]
