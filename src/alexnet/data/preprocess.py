"""Image pre-processing (sections 2 and 4.1): encoded bytes in, uint8 crops out. No data source here.

Training, evaluation, `make prepare` and the SavedModel's `classify` all go through these functions, so
an image is prepared the same way wherever it comes from. Every function decodes by content: JPEGs (found
by their magic bytes) take the fused decode-and-crop path, which decodes only the crop window and uses
JPEG's 1/2-1/4-1/8 DCT scaling; PNG, GIF, BMP and JPEGs in disguise go through tf.io.decode_image.
Float conversion, mean subtraction and colour noise happen inside the model, on the accelerator. The sizes
and the augmentation are the config's, checked there (alexnet/config.py): these functions trust them.

    training:   train_preprocess(encoded, 256, 227, "paper", seed)  a random 227 crop of the 256 square, maybe flipped
    evaluation: eval_preprocess(encoded, 256, 227)                  the central 227 crop of the 256 square
    prepare:    resized_square(encoded, 256)                        the whole 256 square
    10-crop:    ten_crops(encoded, 256, 227)                        4 corners + centre of the square, and mirrors
"""

from __future__ import annotations

import tensorflow as tf

# Inception-style random-resized crop (Szegedy et al. 2015): 8%-100% of the area, aspect ratio 3/4-4/3.
INCEPTION_AREA_RANGE = (0.08, 1.0)
INCEPTION_ASPECT_RANGE = (3 / 4, 4 / 3)
INCEPTION_MAX_ATTEMPTS = 10


def decode_rgb(encoded):
    """Any supported encoded image (JPEG incl. CMYK/grayscale, PNG incl. RGBA, GIF, BMP) -> uint8 (H, W, 3).

    The format is found from the content, not the file name; GIFs give their first frame.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def train_preprocess(encoded, resize_size: int, image_size: int, augment: str = "paper", seed=None,
                     flips: bool = True):
    """Encoded image -> uint8 (image_size, image_size, 3) training crop.

    paper: a random image_size crop of the central square resized to resize_size, and a random horizontal
    flip (section 4.1). inception: a random-resized crop of the whole image, resized to image_size, and a
    flip. none: eval_preprocess. seed: a stateless seed of shape (2,); None draws one from the global generator.
    flips=False: never mirrored (the crops stay those of the same seed).
    """
    if augment == "none":
        return eval_preprocess(encoded, resize_size, image_size)
    crop_seed, flip = _draws(seed, flips)
    if augment == "paper":
        return paper_crop(encoded, resize_size, image_size, _paper_offset(crop_seed, resize_size, image_size), flip)
    image = _decode_crop_resize(encoded, lambda shape: _inception_window(shape, crop_seed), image_size)
    return _flip_if(image, flip)


def train_crop_of_square(square, image_size: int, augment: str = "paper", seed=None, flips: bool = True):
    """A decoded resize_size square (resized_square's) -> the training crop train_preprocess would cut for the
    same seed: paper, a random crop and flip; none, the central crop. For images decoded once and kept in
    memory (data.cache; the config refuses it with the inception crop, which needs the whole image)."""
    resize_size = square.shape[0]
    if augment == "none":
        y = x = (resize_size - image_size) // 2
        return square[y : y + image_size, x : x + image_size]
    crop_seed, flip = _draws(seed, flips)
    y, x = tf.unstack(_paper_offset(crop_seed, resize_size, image_size))
    return _flip_if(square[y : y + image_size, x : x + image_size], flip)


def _draws(seed, flips: bool):
    """(crop seed, whether to flip) from one stateless seed of shape (2,); None draws one from the global generator."""
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return crop_seed, tf.logical_and(tf.random.stateless_uniform([], flip_seed) < 0.5, flips)


def _paper_offset(crop_seed, resize_size: int, image_size: int):
    """A uniform (y, x) offset of an image_size crop in the resize_size square (section 4.1)."""
    return tf.random.stateless_uniform([2], crop_seed, maxval=resize_size - image_size + 1, dtype=tf.int32)


def paper_crop(encoded, resize_size: int, image_size: int, offset, flip=False):
    """The image_size crop at offset (y, x) of the central square resized to resize_size, mirrored if flip.

    The same picture as resizing the square, then cropping, then flipping; cropping first lets a JPEG
    decode only the pixels it needs.
    """
    image = _decode_crop_resize(
        encoded, lambda shape: _square_crop_window(shape, resize_size, image_size, offset), image_size)
    return _flip_if(image, flip)


def eval_preprocess(encoded, resize_size: int, image_size: int):
    """Encoded image -> uint8 (image_size, image_size, 3): the central crop of the resized central square."""
    return paper_crop(encoded, resize_size, image_size, tf.fill([2], (resize_size - image_size) // 2))


def resized_square(encoded, resize_size: int):
    """Encoded image -> uint8 (resize_size, resize_size, 3): shorter side to resize_size, central square (section 2)."""
    return paper_crop(encoded, resize_size, resize_size, (0, 0))


def ten_crop_offsets(resize_size: int, image_size: int) -> list[tuple[int, int]]:
    """(y, x) of the four corner patches and the centre patch of the resize_size square (section 6)."""
    far, centre = resize_size - image_size, (resize_size - image_size) // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (centre, centre)]


def ten_crops(encoded, resize_size: int, image_size: int, mirrors: bool = True):
    """Encoded image -> uint8 (10, image_size, image_size, 3): the five patches of ten_crop_offsets, then their
    horizontal reflections, all cut from one decode of the resized central square (section 6).

    mirrors=False: the five patches only, for a model trained without flips (data.flip=false).
    """
    square = resized_square(encoded, resize_size)
    crops = tf.stack([square[y : y + image_size, x : x + image_size]
                      for y, x in ten_crop_offsets(resize_size, image_size)])
    return tf.concat([crops, tf.reverse(crops, [2])], axis=0) if mirrors else crops


def _flip_if(image, flip):
    return tf.cond(tf.convert_to_tensor(flip), lambda: tf.reverse(image, [1]), lambda: image)


def _decode_crop_resize(encoded, window_fn, size: int):
    """uint8 (size, size, 3) from the window (y, x, h, w) = window_fn(shape (H, W, C)) of an encoded image.

    The window is in source pixels, fractional; it is decoded to the nearest whole pixels of the image it is
    cut from, so a crop lies within half a pixel of where it is asked for. JPEGs (found by magic bytes)
    decode only the window, at 1/2, 1/4 or 1/8 scale (JPEG's DCT scaling) while it stays at least size, so
    the bilinear resize shrinks less than 2x and needs no antialiasing. Other formats decode whole, then
    are sliced and resized with antialiasing.
    """

    def jpeg():
        y, x, h, w = window_fn(tf.io.extract_jpeg_shape(encoded))
        halvings = sum(tf.cast(tf.minimum(h, w) >= size * r, tf.int32) for r in (2, 4, 8))

        def scaled(r):
            return lambda: tf.io.decode_and_crop_jpeg(encoded, _whole_pixels(y, x, h, w, r), channels=3, ratio=r)

        return _resize(tf.switch_case(halvings, [scaled(r) for r in (1, 2, 4, 8)]), size, antialias=False)

    def other():
        image = decode_rgb(encoded)
        y, x, h, w = tf.unstack(_whole_pixels(*window_fn(tf.shape(image))))
        return _resize(image[y : y + h, x : x + w], size, antialias=True)

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def _whole_pixels(y, x, h, w, ratio: int = 1):
    """int32 [y, x, h, w]: the window's edges rounded to the nearest pixel edges of the image at 1/ratio scale."""
    top, left, bottom, right = (tf.cast(tf.round(v / ratio), tf.int32) for v in (y, x, y + h, x + w))
    return tf.stack([top, left, tf.maximum(bottom - top, 1), tf.maximum(right - left, 1)])


def _square_crop_window(shape, resize_size: int, crop_size: int, offset):
    """Source pixels (y, x, h, w), float32, of the crop_size crop at offset (y, x) of the central square resized to
    resize_size.

    Offsets count in pixels of the resized square; the window is that crop scaled back to the source image.
    """
    side = tf.minimum(shape[0], shape[1])
    scale = tf.cast(side, tf.float32) / resize_size
    size = crop_size * scale
    top, left = (tf.cast((shape[i] - side) // 2, tf.float32) + tf.cast(offset[i], tf.float32) * scale for i in (0, 1))
    return top, left, size, size


def _inception_window(shape, seed):
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed, min_object_covered=0.0,
        aspect_ratio_range=INCEPTION_ASPECT_RANGE, area_range=INCEPTION_AREA_RANGE,
        max_attempts=INCEPTION_MAX_ATTEMPTS, use_image_if_no_bounding_boxes=True,
    )
    return tuple(tf.cast(v, tf.float32) for v in (begin[0], begin[1], size[0], size[1]))


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
