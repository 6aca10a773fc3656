"""`make digits`: a small set of *real* images, offline, to check that a recipe learns more than generated shapes.

The images are the UCI "Optical Recognition of Handwritten Digits" scans that scikit-learn ships with its
wheel (`sklearn.datasets.load_digits`: 1,797 handwritten digits by 43 writers, scanned and reduced to
8x8 pixels of 17 grey levels). Each digit becomes a photo of a small dark mark on light paper: an image of
300-500 pixels a side, the digit 12-30% of the shorter side, at a random place inside the central square,
slightly rotated, in a random ink colour on a random paper tint with uneven lighting and sensor grain,
saved as a JPEG. 20% of each class (359 images) is the validation split, the rest (1,438) training.
Every image comes from its own seed, so every run writes the same bytes.

Not part of `make train`'s default path: `make digits` writes it into the folder config's data.dir, and
`make train CONFIG=configs/folder.yaml RUN=digits ARGS="data.flip=false"` trains on it (digits are not
mirror-symmetric).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from alexnet.data.demo import JPEG_QUALITY, SIDE_RANGE, generate_once, smooth_noise, write_all

VERSION = 1
SEED = 1998  # the UCI set's year
VAL_FRACTION = 0.2
DIGIT_FRACTION = (0.12, 0.30)  # digit height / shorter image side: small objects, as in many photos
MAX_ROTATION = 15  # degrees


def load_scans() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 scans as float32 in [0, 1] (1 = ink) and their digits, from scikit-learn's bundled copy."""
    from sklearn.datasets import load_digits  # only this tool needs scikit-learn

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """{"train": indices, "val": indices}: VAL_FRACTION of each class, drawn with a fixed seed."""
    rng = np.random.default_rng(SEED)
    val = []
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        val += list(members[: round(VAL_FRACTION * len(members))])
    val = np.sort(np.array(val))
    return {"train": np.setdiff1d(np.arange(len(labels)), val), "val": val}


def render(scan: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A photo-like RGB image of one 8x8 scan (values in [0, 1], 1 = ink), everything random drawn from rng."""
    width, height = (int(s) for s in rng.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1, 2))
    side = min(width, height)
    digit = max(8, round(side * rng.uniform(*DIGIT_FRACTION)))
    # A blank pixel around the 8x8 scan, so digits that touch its edge do not end in a straight cut.
    padded = np.pad(scan, 1)
    mask = Image.fromarray(padded).resize((round(digit * 10 / 8),) * 2, Image.BICUBIC)
    mask = mask.rotate(rng.uniform(-MAX_ROTATION, MAX_ROTATION), Image.BICUBIC, expand=True)
    m = np.clip(np.asarray(mask, np.float32), 0, 1)
    # Anywhere inside the central square that the 256x256 pre-processing keeps, with a 10% margin.
    margin = 0.1 * side
    top = (height - side) // 2 + int(rng.uniform(margin, side - margin - m.shape[0]))
    left = (width - side) // 2 + int(rng.uniform(margin, side - margin - m.shape[1]))
    paper = rng.uniform(165, 245, 3).astype(np.float32)
    ink = rng.uniform(10, 90, 3).astype(np.float32)
    image = paper + smooth_noise(rng, height, width, 4, 20) + smooth_noise(rng, height, width, 24, 6)
    full = np.zeros((height, width, 1), np.float32)
    full[top : top + m.shape[0], left : left + m.shape[1], 0] = m
    image = image * (1 - full) + ink * full
    image += 4 * rng.standard_normal(image.shape, dtype=np.float32)  # sensor grain
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def ensure_digits_data(data_config) -> Path:
    """Writes the digits set into data_config.dir (<train_split>/<digit>/*.jpg, <val_split>/<digit>/*.jpg)
    unless a complete one is there."""
    root = Path(data_config.dir)
    splits = {"train": data_config.train_split, "val": data_config.val_split}
    expected = {"version": VERSION, "source": "sklearn.datasets.load_digits", "splits": splits}

    def generate():
        scans, labels = load_scans()
        tasks = []
        for role, indices in split_indices(labels).items():
            for index in indices:
                path = root / splits[role] / str(labels[index]) / f"digit_{index:04d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                tasks.append((index, scans[index], path))
        write_all(tasks, _write_one, "digits")

    return generate_once(root, list(splits.values()), expected, generate, "digits (1,797 real handwritten scans)")


def _write_one(task: tuple[int, np.ndarray, Path]) -> None:
    index, scan, path = task
    render(scan, np.random.default_rng([SEED, index])).save(path, quality=JPEG_QUALITY)
