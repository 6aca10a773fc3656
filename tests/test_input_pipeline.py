"""The tf.data pipeline: every good image with its label, batching, sharding across pipelines, determinism."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet.data.pipeline import dataset_info
from alexnet.errors import ConfigError
from helpers import (
    GOOD_FILES,
    PLAIN_COLOURS,
    SIZE,
    encode,
    folder_config,
    make_folder,
    mean_rgb,
    pipeline,
    solid,
    textured,
    training_epochs,
)


def test_folder_dataset_delivers_every_good_image_with_its_label(tmp_path):
    colours = make_folder(tmp_path)
    config = folder_config(tmp_path)
    info = dataset_info(config.data)
    assert (info.class_names, info.num_train, info.num_val) == (["awkward", "plain"], len(GOOD_FILES) + 10, 6)

    val = list(pipeline(config, "val").unbatch().as_numpy_iterator())
    assert len(val) == 6 and [label for _, label in val] == [0, 0, 0, 1, 1, 1]
    for image, label in val:
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
        np.testing.assert_allclose(mean_rgb(image), PLAIN_COLOURS[info.class_names[label]], atol=3)
    assert [len(labels) for _, labels in pipeline(config, "val")] == [4, 2]  # last partial batch kept

    train = [(images.numpy(), labels.numpy()) for images, labels in pipeline(config, "train")]
    assert [len(labels) for _, labels in train] == [4] * (info.num_train // 4)  # drop_remainder
    seen = []
    for images, labels in train:
        assert images.dtype == np.uint8 and images.shape == (4, SIZE, SIZE, 3) and labels.dtype == np.int32
        for image, label in zip(images, labels, strict=True):
            # Each image is close to a known colour, and plain's colour comes with plain's label.
            distance = {c: np.abs(mean_rgb(image) - c).max() for c in set(colours.values())}
            nearest = min(distance, key=distance.get)
            assert distance[nearest] <= 3 and label == int(nearest == PLAIN_COLOURS["plain"])
            seen.append(nearest)
    assert len(set(seen)) >= 7  # most awkward kinds come through (one batch's worth is dropped)


def test_the_pipelines_use_every_core_and_no_autotuning_thread(tmp_path):
    # An autotuned iterator's deletion can wait up to a minute for the autotuner (alexnet/data/options.py).
    make_folder(tmp_path, with_bad=False)
    config = folder_config(tmp_path)
    for split in ("train", "val"):
        autotune = pipeline(config, split).options().autotune
        assert autotune.enabled is False and autotune.initial_parallelism == os.cpu_count(), split


def test_sharded_pipelines_split_the_data_and_batch_per_replica(tmp_path):
    make_folder(tmp_path, with_bad=False)
    config = folder_config(tmp_path, "train.global_batch_size=4", "data.augment=none")
    contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=2)
                for i in range(2)]
    datasets = [pipeline(config, "val", ctx) for ctx in contexts]
    means = [[tuple(mean_rgb(im).round()) for images, _ in ds for im in images.numpy()] for ds in datasets]
    assert len(means[0]) == len(means[1]) == 3 and sorted(means[0] + means[1]) == sorted(
        [tuple(mean_rgb(im).round()) for images, _ in pipeline(config, "val") for im in images.numpy()])
    train = pipeline(config, "train", contexts[1])
    assert all(images.shape[0] == 2 for images, _ in train)  # per-replica batch: 4 global / 2 replicas
    assert sum(1 for _ in train) == (len(GOOD_FILES) + 10) // 2 // 2
    for ds in datasets + [train]:
        assert ds.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.OFF


def textured_folder(root):
    """2 classes x 6 training images of random pixels: any change of crop, flip or order shows in the sums."""
    rng = np.random.default_rng(0)
    for c in range(2):
        for i in range(6):
            path = root / "train" / f"c{c}" / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode(Image.fromarray(rng.integers(0, 256, (60, 80, 3), np.uint8)), "JPEG"))
        (root / "val" / f"c{c}").mkdir(parents=True, exist_ok=True)
        (root / "val" / f"c{c}" / "v.jpg").write_bytes((root / "train" / f"c{c}" / "0.jpg").read_bytes())


def epoch_fingerprint(config):
    """Labels and per-image pixel sums of one training epoch, in order."""
    return [(labels.numpy().tolist(), images.numpy().sum(axis=(1, 2, 3)).tolist())
            for images, labels in pipeline(config, "train")]


@pytest.mark.slow
def test_a_seeded_deterministic_pipeline_repeats_its_crops_flips_and_order(tmp_path):
    textured_folder(tmp_path)
    loose, strict = folder_config(tmp_path), folder_config(tmp_path, "train.deterministic=true")
    assert pipeline(loose, "train").options().deterministic is False
    assert pipeline(loose, "val").options().deterministic is True
    first = epoch_fingerprint(strict)
    assert epoch_fingerprint(strict) == first
    other_seed = epoch_fingerprint(folder_config(tmp_path, "train.deterministic=true", "train.seed=1"))
    assert sorted(other_seed) != sorted(first)  # the seed, not only the order, decides the crops
    # Two epochs of the training stream differ: the augmentation is redrawn every epoch.
    first_epoch, second_epoch = ([images.sum() for images, _ in epoch] for epoch in training_epochs(strict, 2))
    assert first_epoch != second_epoch


def sorted_folder(root, classes=10, per_class=20):
    """classes x per_class tiny training JPEGs (and one validation image per class): listed class by class."""
    for c in range(classes):
        for split, count in (("train", per_class), ("val", 1)):
            (root / split / f"c{c:02d}").mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (root / split / f"c{c:02d}" / f"{i}.jpg").write_bytes(encode(solid("RGB", (c, i, 0), (8, 8)), "JPEG"))


def batch_labels(data, batch=10, seed=0):
    """The training labels of one epoch of encoded examples, in batches of `batch`."""
    from alexnet.data.pipeline import encoded_examples

    labels = [int(label) for _, label in encoded_examples(data, "train", shuffle=True, seed=seed).as_numpy_iterator()]
    return [labels[i : i + batch] for i in range(0, len(labels), batch)]


# Distinct classes expected in a batch of 10 drawn without replacement from 10 classes x 20 images:
# 10 * (1 - C(180, 10) / C(200, 10)).
EXPECTED_DISTINCT = 10 * (1 - np.prod([(180 - i) / (200 - i) for i in range(10)]))


def assert_mixed_like_a_full_shuffle(batches):
    distinct = np.mean([len(set(b)) for b in batches])
    assert abs(distinct - EXPECTED_DISTINCT) < 0.8, (distinct, EXPECTED_DISTINCT)
    # The classes do not march through in order (a window shuffle of the sorted list gives r > 0.95 here).
    assert abs(np.corrcoef(range(len(batches)), [np.mean(b) for b in batches])[0, 1]) < 0.8


def test_the_training_order_is_a_full_shuffle_even_when_the_folder_outgrows_the_buffer(tmp_path):
    sorted_folder(tmp_path)
    data = folder_config(tmp_path, "data.shuffle_buffer=8").data  # the buffer holds under half a class
    first = batch_labels(data)
    assert sorted(sum(first, [])) == sorted(c for c in range(10) for _ in range(20))  # every image, once
    assert_mixed_like_a_full_shuffle(first)
    assert batch_labels(data) == first  # the same seed, the same order
    assert batch_labels(data, seed=1) != first


def test_prepared_records_are_written_and_read_in_a_mixed_order(tmp_path):
    from alexnet.data.records import prepare

    sorted_folder(tmp_path / "images")
    folder = folder_config(tmp_path / "images", f"data.prepared_dir={tmp_path / 'records'}").data
    prepare(folder)
    records = folder_config(tmp_path / "records", "data.source=records", "data.shuffle_buffer=8").data
    assert_mixed_like_a_full_shuffle(batch_labels(records))
    from alexnet.data.records import read_records

    on_disk = [int(label) for _, label in read_records(records.dir, "train").as_numpy_iterator()]
    assert_mixed_like_a_full_shuffle([on_disk[i : i + 10] for i in range(0, len(on_disk), 10)])


def test_cached_images_are_decoded_once_and_cropped_and_flipped_afresh_every_epoch(tmp_path):
    for c in range(2):  # smooth images: the same crop from the cached square and from the file look alike
        for i in range(4):
            path = tmp_path / "train" / f"c{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode(Image.fromarray(textured(60 + 10 * i, 80, period=16 + 3 * c + i)), "PNG"))
        (tmp_path / "val" / f"c{c}").mkdir(parents=True)
        (tmp_path / "val" / f"c{c}" / "v.png").write_bytes((tmp_path / "train" / f"c{c}" / "0.png").read_bytes())
    plain, cached = (folder_config(tmp_path, "train.global_batch_size=8", "data.shuffle=false",
                                   "train.deterministic=true", *extra)
                     for extra in ((), ("data.cache=true",)))
    (from_files, labels), = list(pipeline(plain, "train").as_numpy_iterator())
    [(first, first_labels)], [(second, _)] = training_epochs(cached, 2)
    np.testing.assert_array_equal(first_labels, labels)
    # The same seeds draw the same crops and flips: off by resampling only, far from another crop.
    same, other = (np.abs(first.astype(float) - images).mean() for images in (from_files, second))
    assert same < 3 and other > 4 * same, (same, other)  # epoch 2: other crops and flips
    val = [(images, lbl) for images, lbl in pipeline(cached, "val").repeat(2).as_numpy_iterator()]
    np.testing.assert_array_equal(val[0][0], val[1][0])  # validation crops are kept as they are
    np.testing.assert_array_equal(val[0][0], next(pipeline(plain, "val").as_numpy_iterator())[0])
    shuffled = [lbl.tolist() for [(_, lbl)] in training_epochs(folder_config(tmp_path, "train.global_batch_size=8",
                                                                         "data.cache=true"), 3)]
    assert all(sorted(order) == sorted(labels.tolist()) for order in shuffled) and len(set(map(tuple, shuffled))) > 1
    with pytest.raises(ConfigError, match="data.cache keeps the resized squares"):
        folder_config(tmp_path, "data.cache=true", "data.augment=inception")
