"""Image pre-processing: decoding awkward files, where crops are taken (JPEG fast path included), flips, resizing."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from alexnet.config import load_config
from alexnet.data import preprocess
from alexnet.errors import ConfigError
from helpers import (
    GOOD_FILES,
    RESIZE,
    SIZE,
    coded_png,
    corner_offset,
    make_folder,
    mean_rgb,
    noise_jpeg,
    textured,
)


def test_awkward_files_decode_to_rgb_eagerly_and_in_map(tmp_path):
    colours = make_folder(tmp_path)
    awkward = {p: c for p, c in colours.items() if Path(p).name in GOOD_FILES}
    assert len(awkward) == len(GOOD_FILES)
    paths = sorted(awkward)
    mapped = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: preprocess.decode_rgb(tf.io.read_file(p)))
    for path, image in zip(paths, mapped, strict=True):
        eager = preprocess.decode_rgb(Path(path).read_bytes())
        assert eager.dtype == tf.uint8 and eager.shape == (45, 60, 3), path
        np.testing.assert_allclose(mean_rgb(eager), awkward[path], atol=3, err_msg=path)
        np.testing.assert_array_equal(image, eager)
        for crop in (preprocess.eval_preprocess(Path(path).read_bytes(), RESIZE, SIZE),
                     preprocess.train_preprocess(Path(path).read_bytes(), RESIZE, SIZE, "inception")):
            np.testing.assert_allclose(mean_rgb(crop), awkward[path], atol=3, err_msg=path)


@pytest.mark.parametrize("augment", ["paper", "inception", "none"])
def test_preprocess_shapes_and_dtypes_eagerly_and_in_map(augment):
    for encoded in (noise_jpeg(0), coded_png(30)):  # also an image smaller than resize_size
        images = [preprocess.train_preprocess(encoded, RESIZE, SIZE, augment),
                  preprocess.eval_preprocess(encoded, RESIZE, SIZE)]
        ds = tf.data.Dataset.from_tensors(encoded).map(
            lambda e: (preprocess.train_preprocess(e, RESIZE, SIZE, augment),
                       preprocess.eval_preprocess(e, RESIZE, SIZE)))
        images += list(next(iter(ds)))
        for image in images:
            assert image.dtype == tf.uint8 and tuple(image.shape) == (SIZE, SIZE, 3)
            assert 0 < int(tf.reduce_max(image)) <= 255 and float(tf.math.reduce_std(tf.cast(image, tf.float32))) > 5


def test_eval_takes_the_central_crop_of_the_central_square():
    # 48 x 64: the central square is columns 8..55; resized to 48 (no-op) its central 40 crop starts at (4, 4).
    png = coded_png(RESIZE, RESIZE + 16)
    for image in (preprocess.eval_preprocess(png, RESIZE, SIZE), next(iter(tf.data.Dataset.from_tensors(png).map(
            lambda e: preprocess.eval_preprocess(e, RESIZE, SIZE))))):
        assert corner_offset(image) == (4, 12, False)
    square = preprocess.resized_square(png, RESIZE)
    assert square.shape == (RESIZE, RESIZE, 3) and corner_offset(square) == (0, 8, False)


def reference_crop(image: np.ndarray, offset, flip: bool) -> np.ndarray:
    """The paper's crop the slow way: the whole image decoded, central square, resized to RESIZE, cropped, flipped."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = tf.image.resize(image[top : top + side, left : left + side].astype(np.float32), [RESIZE, RESIZE],
                             antialias=True).numpy()
    crop = square[offset[0] : offset[0] + SIZE, offset[1] : offset[1] + SIZE]
    return crop[:, ::-1] if flip else crop


# Source heights giving each JPEG DCT scale: the crop window (SIZE/RESIZE of the square) is decoded at 1/1
# (window 50 px), 1/2 (83 px), 1/4 (167 px) or 1/8 (333 px), the last three at least 4x SIZE. Widths are
# 1.3x the height, so taking the central square matters.
@pytest.mark.parametrize("height", [60, 100, 200, 400])
def test_jpeg_fast_path_crops_where_the_full_decode_does(height):
    image = textured(height, int(height * 1.3))
    jpeg = tf.io.encode_jpeg(image, quality=95).numpy()
    decoded = tf.io.decode_jpeg(jpeg).numpy()  # the reference sees the same JPEG rounding
    corners = [(0, 0), (0, RESIZE - SIZE), (RESIZE - SIZE, 0), (RESIZE - SIZE, RESIZE - SIZE), (4, 4)]
    for offset in corners:
        for flip in (False, True):
            fast = preprocess.paper_crop(jpeg, RESIZE, SIZE, offset, flip).numpy().astype(np.float64)
            expected = reference_crop(decoded, offset, flip)
            error = np.abs(fast - expected).mean()
            # Windows are cut at whole pixels of the decoded (DCT-scaled) image: within half an output pixel.
            assert error < 9, (height, offset, flip, error)
            # That separates a right crop from one a whole pixel off in either direction, or unflipped.
            step = [1 if o == 0 else -1 for o in offset]
            wrong = [reference_crop(decoded, (offset[0] + step[0], offset[1]), flip),
                     reference_crop(decoded, (offset[0], offset[1] + step[1]), flip),
                     reference_crop(decoded, offset, not flip)]
            assert all(np.abs(fast - w).mean() > 1.5 * error + 2 for w in wrong), (height, offset, flip, error)


@pytest.mark.slow
def test_paper_crops_reach_all_four_corners_and_flip_half_the_time():
    resize = SIZE + 4  # 5 x 5 crop positions: a corner is missed in 400 random draws with p < 1e-7
    png, max_offset = coded_png(resize), resize - SIZE
    eager = [corner_offset(preprocess.train_preprocess(png, resize, SIZE, "paper", seed=[i, 7])) for i in range(300)]
    ds = tf.data.Dataset.from_tensors(png).repeat(400).map(
        lambda e: preprocess.train_preprocess(e, resize, SIZE, "paper"), num_parallel_calls=2)
    mapped = [corner_offset(image) for image in ds.as_numpy_iterator()]
    for draws in (eager, mapped):
        offsets = {(y, x) for y, x, _ in draws}
        assert {(0, 0), (0, max_offset), (max_offset, 0), (max_offset, max_offset)} <= offsets
        assert all(0 <= y <= max_offset and 0 <= x <= max_offset for y, x in offsets)
        assert 0.4 < np.mean([flipped for _, _, flipped in draws]) < 0.6
    again = [corner_offset(preprocess.train_preprocess(png, resize, SIZE, "paper", seed=[i, 7])) for i in range(50)]
    assert eager[:50] == again
    # data.flip=false: the same crops, never mirrored.
    unflipped = [corner_offset(preprocess.train_preprocess(png, resize, SIZE, "paper", seed=[i, 7], flips=False))
                 for i in range(50)]
    assert unflipped == [(y, x, False) for y, x, _ in eager[:50]]


def test_inception_crops_vary_in_position_and_scale():
    png = coded_png(63)
    crops = [preprocess.train_preprocess(png, RESIZE, SIZE, "inception", seed=[i, 0]).numpy() for i in range(40)]
    # The x span covered by a crop (4 * x in red) changes with the crop's scale.
    spans = {int(c[0, :, 0].max()) - int(c[0, :, 0].min()) for c in crops}
    starts = {corner_offset(c)[:2] for c in crops}
    assert len(spans) > 10 and len(starts) > 20


def test_resize_rounds_to_the_nearest_value_without_bias():
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    for antialias in (False, True):
        exact = tf.image.resize(image.astype(np.float32), [SIZE, SIZE], antialias=antialias).numpy()
        resized = preprocess._resize(tf.constant(image), SIZE, antialias).numpy()
        assert resized.dtype == np.uint8 and resized.shape == (SIZE, SIZE, 3)
        assert np.abs(resized - exact).max() <= 0.5 + 1e-3  # nearest integer
        assert abs((resized - exact).mean()) < 0.02  # truncation would be 0.5 too low
    same = image[:SIZE, :SIZE]
    assert preprocess._resize(tf.constant(same), SIZE, False).numpy().tolist() == same.tolist()


def test_sizes_and_augmentations_are_the_configs_to_check():
    """The rule lives in the config (alexnet/config.py); the pre-processing trusts it."""
    with pytest.raises(ConfigError, match=r"model.image_size \(48\) must not exceed data.resize_size \(40\)"):
        load_config(None, ["data.resize_size=40", "model.image_size=48"])
    with pytest.raises(ConfigError, match="data.augment: 'mixup' is not one of 'paper', 'inception', 'none'"):
        load_config(None, ["data.augment=mixup"])
    with pytest.raises(ConfigError, match="data.cache keeps the resized squares"):
        load_config(None, ["data.cache=true", "data.augment=inception"])
