"""Input pipeline: decoding awkward files, the paper's crops and flips, sources, sharding and batching."""

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet import input_pipeline as ip
from alexnet.config import load_config

RESIZE, SIZE = 48, 40  # test-sized resize_size / image_size (model.image_size must be >= 35)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def solid(mode, colour, size=(60, 45)):
    return Image.new(mode, size, colour)


# name -> (bytes, RGB expected after decoding); sizes are not square so the central-square crop matters.
GOOD_FILES = {
    "cmyk.jpg": (lambda: encode(solid("CMYK", (0, 255, 255, 0)), "JPEG", quality=95), (255, 0, 0)),
    "gray.jpeg": (lambda: encode(solid("L", 128), "JPEG", quality=95), (128, 128, 128)),
    "rgba.PNG": (lambda: encode(solid("RGBA", (0, 0, 255, 255)), "PNG"), (0, 0, 255)),
    "anim.gif": (lambda: encode(solid("RGB", (0, 255, 0)).convert("P"), "GIF"), (0, 255, 0)),
    "pic.BMP": (lambda: encode(solid("RGB", (255, 255, 0)), "BMP"), (255, 255, 0)),
    "png_in_disguise.JPEG": (lambda: encode(solid("RGB", (255, 0, 255)), "PNG"), (255, 0, 255)),
    "rgb.jpg": (lambda: encode(solid("RGB", (200, 100, 50)), "JPEG", quality=95), (200, 100, 50)),
}
BAD_FILES = {
    "empty.jpg": lambda: b"",
    "truncated.jpg": lambda: encode(solid("RGB", (10, 20, 30), (200, 150)), "JPEG")[:400],
    "notes.jpg": lambda: b"this is a text file, not an image\n",
}


def make_folder(root: Path, with_bad=True) -> dict:
    """train/awkward holds every awkward case, train/plain and val/* plain JPEGs. Returns expected colours."""
    colours = {}
    for name, (make, rgb) in GOOD_FILES.items():
        path = root / "train" / "awkward" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
        colours[str(path)] = rgb
    if with_bad:
        for name, make in BAD_FILES.items():
            (root / "train" / "awkward" / name).write_bytes(make())
    for split, count in (("train", 5), ("val", 3)):
        for cls, rgb in (("awkward", (30, 60, 90)), ("plain", (220, 200, 20))):
            path = root / split / cls / "x.txt"  # not an image suffix: ignored, not counted as bad
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("ignored")
            for i in range(count):
                path = root / split / cls / f"p{i}.jpg"
                path.write_bytes(encode(solid("RGB", rgb, (50 + 10 * i, 40)), "JPEG", quality=95))
                colours[str(path)] = rgb
    return colours


def folder_config(root, *extra):
    return load_config(None, ["data.source=folder", f"data.dir={root}", f"data.resize_size={RESIZE}",
                              f"model.image_size={SIZE}", "train.global_batch_size=4", *extra])


def mean_rgb(image):
    return np.asarray(image, np.float64).reshape(-1, 3).mean(0)


def coded_png(height=RESIZE, width=None):
    """A lossless image whose pixel (y, x) is (4x, 4y, 7): crops and flips can be read off its corners."""
    y, x = np.mgrid[:height, : width or height]
    return tf.io.encode_png(np.stack([4 * x, 4 * y, np.full_like(x, 7)], -1).astype(np.uint8)).numpy()


def corner_offset(image):
    """(y, x) offset of a crop of coded_png, and whether it was flipped."""
    image = np.asarray(image, np.int64)
    flipped = image[0, 0, 0] > image[0, -1, 0]
    return image[0, 0, 1] // 4, min(image[0, 0, 0], image[0, -1, 0]) // 4, flipped


def test_awkward_files_decode_to_rgb_eagerly_and_in_map(tmp_path):
    colours = make_folder(tmp_path)
    awkward = {p: c for p, c in colours.items() if Path(p).name in GOOD_FILES}
    assert len(awkward) == len(GOOD_FILES)
    paths = sorted(awkward)
    mapped = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: ip.decode_rgb(tf.io.read_file(p)))
    for path, image in zip(paths, mapped):
        eager = ip.decode_rgb(Path(path).read_bytes())
        assert eager.dtype == tf.uint8 and eager.shape == (45, 60, 3), path
        np.testing.assert_allclose(mean_rgb(eager), awkward[path], atol=3, err_msg=path)
        np.testing.assert_array_equal(image, eager)
        for crop in (ip.eval_preprocess(Path(path).read_bytes(), RESIZE, SIZE),
                     ip.train_preprocess(Path(path).read_bytes(), RESIZE, SIZE, "inception")):
            np.testing.assert_allclose(mean_rgb(crop), awkward[path], atol=3, err_msg=path)


def test_bad_files_are_skipped_named_once_and_the_scan_is_cached(tmp_path, capsys, monkeypatch):
    make_folder(tmp_path)
    class_names, files, labels = ip.folder_files(str(tmp_path), "train")
    assert class_names == ["awkward", "plain"]
    assert len(files) == len(GOOD_FILES) + 10 and labels.count(1) == 5
    assert not any(Path(f).name in BAD_FILES for f in files)
    out = capsys.readouterr().out
    assert "skipping 3 unreadable files" in out and all(name in out for name in BAD_FILES)

    def no_rescan(_):
        raise AssertionError("rescanned although the file list did not change")

    monkeypatch.setattr(ip, "find_unreadable", no_rescan)
    assert ip.folder_files(str(tmp_path), "train")[1] == files
    out = capsys.readouterr().out
    assert "skipping 3 unreadable files" in out and "empty.jpg" not in out  # named once, counted again
    (tmp_path / "train" / "plain" / "new.jpg").write_bytes(encode(solid("RGB", (1, 2, 3)), "JPEG"))
    with pytest.raises(AssertionError, match="rescanned"):
        ip.folder_files(str(tmp_path), "train")


def test_folder_dataset_delivers_every_good_image_with_its_label(tmp_path):
    colours = make_folder(tmp_path)
    config = folder_config(tmp_path)
    info = ip.dataset_info(config)
    assert (info.class_names, info.num_train, info.num_val) == (["awkward", "plain"], len(GOOD_FILES) + 10, 6)

    val = list(ip.make_dataset(config, "val").unbatch().as_numpy_iterator())
    assert len(val) == 6 and [label for _, label in val] == [0, 0, 0, 1, 1, 1]
    for image, label in val:
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
        np.testing.assert_allclose(mean_rgb(image), [(30, 60, 90), (220, 200, 20)][label], atol=3)
    assert [len(labels) for _, labels in ip.make_dataset(config, "val")] == [4, 2]  # last partial batch kept

    train = [(images.numpy(), labels.numpy()) for images, labels in ip.make_dataset(config, "train")]
    assert [len(labels) for _, labels in train] == [4] * (info.num_train // 4)  # drop_remainder
    assert all(images.dtype == np.uint8 and images.shape == (4, SIZE, SIZE, 3) for images, _ in train)
    for images, labels in train:
        assert labels.dtype == np.int32
        for image, label in zip(images, labels):
            # Each image is close to a known colour, and plain's colour comes with plain's label.
            distance = {c: np.abs(mean_rgb(image) - c).max() for c in set(colours.values())}
            nearest = min(distance, key=distance.get)
            assert distance[nearest] <= 3 and label == int(nearest == (220, 200, 20))


def test_missing_or_empty_folder_shows_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train/<class name>/<image>\.jpg"):
        ip.dataset_info(folder_config(tmp_path / "nowhere"))
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has no images"):
        ip.dataset_info(folder_config(tmp_path))


@pytest.mark.parametrize("augment", ["paper", "inception", "none"])
def test_preprocess_shapes_and_dtypes_eagerly_and_in_map(augment):
    jpeg = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90, 3), np.uint8)), "JPEG")
    for encoded in (jpeg, coded_png(30)):  # also an image smaller than resize_size
        images = [ip.train_preprocess(encoded, RESIZE, SIZE, augment), ip.eval_preprocess(encoded, RESIZE, SIZE)]
        ds = tf.data.Dataset.from_tensors(encoded).map(
            lambda e: (ip.train_preprocess(e, RESIZE, SIZE, augment), ip.eval_preprocess(e, RESIZE, SIZE)))
        images += list(next(iter(ds)))
        for image in images:
            assert image.dtype == tf.uint8 and tuple(image.shape) == (SIZE, SIZE, 3)
            assert 0 < int(tf.reduce_max(image)) <= 255 and float(tf.math.reduce_std(tf.cast(image, tf.float32))) > 5


def test_eval_takes_the_central_crop_of_the_central_square():
    # 48 x 64: the central square is columns 8..55; resized to 48 (no-op) its central 40 crop starts at (4, 4).
    png = coded_png(RESIZE, RESIZE + 16)
    for image in (ip.eval_preprocess(png, RESIZE, SIZE), next(iter(tf.data.Dataset.from_tensors(png).map(
            lambda e: ip.eval_preprocess(e, RESIZE, SIZE))))):
        assert corner_offset(image) == (4, 12, False)
    square = ip.resized_square(png, RESIZE)
    assert square.shape == (RESIZE, RESIZE, 3) and corner_offset(square) == (0, 8, False)


def test_paper_crops_reach_all_four_corners_and_flip_half_the_time():
    resize = SIZE + 4  # 5 x 5 crop positions: a corner is missed in 400 random draws with p < 1e-7
    png, max_offset = coded_png(resize), resize - SIZE
    eager = [corner_offset(ip.train_preprocess(png, resize, SIZE, "paper", seed=[i, 7])) for i in range(300)]
    ds = tf.data.Dataset.from_tensors(png).repeat(400).map(
        lambda e: ip.train_preprocess(e, resize, SIZE, "paper"), num_parallel_calls=2)
    mapped = [corner_offset(image) for image in ds.as_numpy_iterator()]
    for draws in (eager, mapped):
        offsets = {(y, x) for y, x, _ in draws}
        assert {(0, 0), (0, max_offset), (max_offset, 0), (max_offset, max_offset)} <= offsets
        assert all(0 <= y <= max_offset and 0 <= x <= max_offset for y, x in offsets)
        assert 0.4 < np.mean([flipped for _, _, flipped in draws]) < 0.6
    assert eager[:50] == [corner_offset(ip.train_preprocess(png, resize, SIZE, "paper", seed=[i, 7])) for i in range(50)]


def test_inception_crops_vary_in_position_and_scale():
    png = coded_png(63)
    crops = [ip.train_preprocess(png, RESIZE, SIZE, "inception", seed=[i, 0]).numpy() for i in range(40)]
    # The x span covered by a crop (4 * x in red) changes with the crop's scale.
    spans = {int(c[0, :, 0].max()) - int(c[0, :, 0].min()) for c in crops}
    starts = {corner_offset(c)[:2] for c in crops}
    assert len(spans) > 10 and len(starts) > 20


def test_resize_rounds_to_the_nearest_value_without_bias():
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    for antialias in (False, True):
        exact = tf.image.resize(image.astype(np.float32), [SIZE, SIZE], antialias=antialias).numpy()
        resized = ip._resize(tf.constant(image), SIZE, antialias).numpy()
        assert resized.dtype == np.uint8 and resized.shape == (SIZE, SIZE, 3)
        assert np.abs(resized - exact).max() <= 0.5 + 1e-3  # nearest integer
        assert abs((resized - exact).mean()) < 0.02  # truncation would be 0.5 too low
    assert ip._resize(tf.constant(image[:SIZE, :SIZE]), SIZE, False).numpy().tolist() == image[:SIZE, :SIZE].tolist()


def test_image_size_larger_than_resize_size_is_refused():
    with pytest.raises(ValueError, match="must not exceed data.resize_size"):
        ip.eval_preprocess(coded_png(), 40, 48)


def test_sharded_pipelines_split_the_data_and_batch_per_replica(tmp_path):
    make_folder(tmp_path, with_bad=False)
    config = folder_config(tmp_path, "train.global_batch_size=4", "data.augment=none")
    contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=2)
                for i in range(2)]
    datasets = [ip.make_dataset(config, "val", ctx) for ctx in contexts]
    means = [[tuple(mean_rgb(im).round()) for images, _ in ds for im in images.numpy()] for ds in datasets]
    assert len(means[0]) == len(means[1]) == 3 and sorted(means[0] + means[1]) == sorted(
        [tuple(mean_rgb(im).round()) for images, _ in ip.make_dataset(config, "val") for im in images.numpy()])
    train = ip.make_dataset(config, "train", contexts[1])
    assert all(images.shape[0] == 2 for images, _ in train)  # per-replica batch: 4 global / 2 replicas
    assert sum(1 for _ in train) == (len(GOOD_FILES) + 10) // 2 // 2
    for ds in datasets + [train]:
        assert ds.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.OFF


def test_determinism_follows_the_config(tmp_path):
    make_folder(tmp_path, with_bad=False)
    loose, strict = folder_config(tmp_path), folder_config(tmp_path, "train.deterministic=true")
    assert ip.make_dataset(loose, "train").options().deterministic is False
    assert ip.make_dataset(loose, "val").options().deterministic is True
    runs = [[labels.numpy().tolist() + [int(images.numpy().sum())] for images, labels in ip.make_dataset(strict, "train")]
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_tfds_source_offline_with_mock_data():
    import tensorflow_datasets as tfds

    config = load_config(None, ["data.source=tfds", "data.name=imagenette/320px-v2", "data.dir=/nonexistent",
                                f"data.resize_size={RESIZE}", f"model.image_size={SIZE}", "train.global_batch_size=4"])
    with tfds.testing.mock_data(num_examples=10):
        info = ip.dataset_info(config)  # val_split "val" is TFDS's "validation"
        assert (len(info.class_names), info.num_train, info.num_val) == (10, 10, 10)
        train = list(ip.make_dataset(config, "train"))
        val = list(ip.make_dataset(config, "val"))
    assert [len(labels) for _, labels in train] == [4, 4] and [len(labels) for _, labels in val] == [4, 4, 2]
    images, labels = train[0]
    assert images.dtype == tf.uint8 and images.shape == (4, SIZE, SIZE, 3) and labels.dtype == tf.int32


def test_imagenet2012_without_the_archives_says_what_to_download(tmp_path):
    config = load_config(None, ["data.source=tfds", "data.name=imagenet2012", f"data.dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match=r"147,897,477,120 bytes.*6,744,924,160 bytes") as error:
        ip.dataset_info(config)
    assert str(tmp_path / "downloads" / "manual") in str(error.value)
