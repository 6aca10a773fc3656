"""Offline demo data set: photo-like JPEGs of 10 shape and texture classes in <dir>/train/<class>/*.jpg.

The classes differ by shape (disc, ring, square, ...) or texture (stripes, checkerboard, dots), never by
colour: object colours, backgrounds, positions, sizes and rotations are drawn at random for every image,
so the class mean colours are alike and a model has to look at form. Each image comes from its own seeded
numpy Generator, so every run writes the same bytes; train and val use different seeds.

Example:
    ensure_demo_data(load_config("demo").data)   # what `make data` runs

A command that reads the demo source makes the set on first use where there is none (demo_data_on_first_use),
so `alexnet train --config demo` runs in any directory without `make data` first.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from alexnet.files import read_json, write_json

SHAPES = ("disc", "ring", "square", "triangle", "cross", "star")
TEXTURES = ("horizontal_stripes", "vertical_stripes", "checkerboard", "dots")
CLASSES = SHAPES + TEXTURES
SIDE_RANGE = (300, 500)  # image width and height, drawn independently: ImageNet-like sizes and aspect ratios
OBJECT_FRACTION = (0.4, 0.75)  # object diameter / shorter side: large enough to survive the 227 crop of 256
# Any two colours of an image differ this much in luminance: the shape shows in brightness, not only in hue.
MIN_LUMINANCE_DIFFERENCE = 70.0
JPEG_QUALITY = 90
MANIFEST = "manifest.json"
# Bump when the drawing changes: a data set written by another version is regenerated.
GENERATOR_VERSION = 2
SEED = 2012


def val_images_per_class(train_images_per_class: int) -> int:
    """The validation split holds a quarter as many images per class as train (at least one)."""
    return max(1, train_images_per_class // 4)


def _colours(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """count random RGB colours whose luminances differ pairwise by MIN_LUMINANCE_DIFFERENCE or more."""
    while True:  # redraw the whole set: completing a set one colour at a time can get stuck
        colours = rng.uniform(0, 255, (count, 3)).astype(np.float32)
        luminance = colours @ np.array([0.299, 0.587, 0.114], np.float32)
        gaps = np.abs(luminance[:, None] - luminance[None, :]) + np.eye(count) * 255
        if gaps.min() >= MIN_LUMINANCE_DIFFERENCE:
            return list(colours)


def smooth_noise(rng: np.random.Generator, height: int, width: int, grid: int, amplitude: float) -> np.ndarray:
    """Colour noise varying over about `grid` cells per side: a cheap stand-in for photo lighting and clutter."""
    small = np.clip(128 + amplitude * rng.standard_normal((grid, grid, 3)), 0, 255).astype(np.uint8)
    big = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    return np.asarray(big, np.float32) - 128


def _polygon(cx, cy, radii, angle) -> list[tuple[float, float]]:
    """Vertices at the given radii, evenly spaced in angle starting at `angle` (radians)."""
    steps = angle + 2 * np.pi * np.arange(len(radii)) / len(radii)
    return list(zip(cx + np.asarray(radii) * np.cos(steps), cy + np.asarray(radii) * np.sin(steps), strict=True))


def _mask(name: str, rng: np.random.Generator, size: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    """Float mask in [0, 1] of the object's outline (textures: an ellipse or rectangle to fill)."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    angle = rng.uniform(0, 2 * np.pi)
    if name == "disc":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif name == "ring":
        inner = r * rng.uniform(0.45, 0.65)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif name == "square":
        draw.polygon(_polygon(cx, cy, [r] * 4, angle), fill=255)
    elif name == "triangle":
        draw.polygon(_polygon(cx, cy, [r] * 3, angle), fill=255)
    elif name == "cross":
        # A plus sign: 12 vertices, arms a third of the diameter wide.
        h = r * rng.uniform(0.28, 0.36)
        pts = [(h, r), (h, h), (r, h), (r, -h), (h, -h), (h, -r),
               (-h, -r), (-h, -h), (-r, -h), (-r, h), (-h, h), (-h, r)]
        c, s = np.cos(angle), np.sin(angle)
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=255)
    elif name == "star":
        draw.polygon(_polygon(cx, cy, [r, r * rng.uniform(0.35, 0.45)] * 5, angle), fill=255)
    elif rng.random() < 0.5:  # texture patch: an ellipse...
        aspect = rng.uniform(0.7, 1.0)
        draw.ellipse((cx - r, cy - r * aspect, cx + r, cy + r * aspect), fill=255)
    else:  # ...or an upright rectangle
        aspect = rng.uniform(0.7, 1.0)
        draw.rectangle((cx - r * 0.85, cy - r * 0.85 * aspect, cx + r * 0.85, cy + r * 0.85 * aspect), fill=255)
    # A slight blur stands in for a camera's anti-aliasing.
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(0.8)), np.float32) / 255


def _pattern(name: str, rng: np.random.Generator, size: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    """Texture in [0, 1] over the whole image (0 = first colour, 1 = second), edges softened by tanh."""
    width, height = size
    period = r * rng.uniform(0.3, 0.5)
    if name == "horizontal_stripes":
        angle = math.radians(rng.uniform(-10, 10))
    elif name == "vertical_stripes":
        angle = math.radians(90 + rng.uniform(-10, 10))
    else:
        angle = rng.uniform(0, math.pi / 2)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, (y - cy) * c - (x - cx) * s
    if name in ("horizontal_stripes", "vertical_stripes"):
        field = 4 * np.sin(2 * np.pi * v / period)
    elif name == "checkerboard":
        field = 4 * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)
    else:  # dots: round spots on a square lattice, radius 0.3 periods, 1-pixel soft edge
        du, dv = u / period, v / period
        field = (0.3 - np.hypot(du - np.round(du), dv - np.round(dv))) * period
    return 0.5 + 0.5 * np.tanh(field)


def render(name: str, rng: np.random.Generator) -> Image.Image:
    """One photo-like RGB image of class `name`, everything random drawn from rng."""
    width, height = (int(s) for s in rng.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1, 2))
    side = min(width, height)
    r = side * rng.uniform(*OBJECT_FRACTION) / 2
    # Centre inside the central square (the part the 256x256 centre crop keeps), 5% margin for random crops.
    margin = r + 0.05 * side
    cx = (width - side) / 2 + rng.uniform(margin, side - margin)
    cy = (height - side) / 2 + rng.uniform(margin, side - margin)
    n_colours = 3 if name in TEXTURES else 2
    background, *object_colours = _colours(rng, n_colours)

    image = background + smooth_noise(rng, height, width, 4, 25) + smooth_noise(rng, height, width, 24, 8)
    if name in TEXTURES:
        p = _pattern(name, rng, (width, height), cx, cy, r)[..., None]
        fill = object_colours[0] * (1 - p) + object_colours[1] * p
    else:
        fill = object_colours[0] + np.zeros_like(image)
    fill = fill + smooth_noise(rng, height, width, 3, 15)  # uneven lighting on the object
    m = _mask(name, rng, (width, height), cx, cy, r)[..., None]
    image = image * (1 - m) + fill * m
    image += 5 * rng.standard_normal(image.shape, dtype=np.float32)  # sensor grain
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def _write_one(task: tuple[int, int, int, Path]) -> None:
    """Renders and saves one image; the seed depends only on (split, class, index)."""
    split_index, class_index, image_index, path = task
    rng = np.random.default_rng([SEED, split_index, class_index, image_index])
    render(CLASSES[class_index], rng).save(path, quality=JPEG_QUALITY)


def write_all(tasks: list, write_one: Callable, what: str, workers: int | None = None) -> None:
    """Calls write_one(task) for every task on a thread pool, printing progress ten times."""
    step = max(1, len(tasks) // 10)
    # Threads suffice: numpy, PIL's resize, blur and JPEG encoder release the GIL.
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for done, _ in enumerate(pool.map(write_one, tasks), 1):
            if done % step == 0 or done == len(tasks):
                print(f"{what}: {done}/{len(tasks)} images", flush=True)


def generate_once(root: Path, splits: list[str], expected: dict, generate: Callable[[], None], what: str) -> Path:
    """Runs generate() to write root/<split>/... unless root's manifest says a set matching expected is there.

    The manifest is written last, so an interrupted generation is redone from scratch (stale split folders
    removed first) and a complete one is skipped.
    """
    manifest = root / MANIFEST
    if manifest.is_file():
        if {k: read_json(manifest).get(k) for k in expected} == expected:
            print(f"{what}: {root} is complete, skipping")
            return root
        manifest.unlink()
    for split in splits:  # stale or partial files from an earlier run must not mix in
        shutil.rmtree(root / split, ignore_errors=True)
    print(f"{what}: writing {root}")
    start = time.perf_counter()
    generate()
    seconds = time.perf_counter() - start
    write_json(manifest, {**expected, "seconds": round(seconds, 1)})
    print(f"{what}: done in {seconds:.1f} s")
    return root


def ensure_demo_data(data_config) -> Path | None:
    """Generates the demo data set into data_config.dir unless a complete one is there; no-op for other sources.

    Layout: <dir>/<train_split>/<class>/*.jpg and <dir>/<val_split>/<class>/*.jpg, with
    demo_images_per_class training images per class and a quarter as many for validation.
    """
    if data_config.source != "demo":
        print(f"data.source is {data_config.source!r}: nothing to generate (only source 'demo' is generated)")
        return None
    root = Path(data_config.dir)
    per_class = data_config.demo_images_per_class
    splits = {data_config.train_split: per_class, data_config.val_split: val_images_per_class(per_class)}
    expected = {"version": GENERATOR_VERSION, "classes": list(CLASSES), "images_per_class": splits}

    def generate():
        tasks = []
        for split_index, (split, count) in enumerate(splits.items()):
            for class_index, name in enumerate(CLASSES):
                folder = root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                tasks += [(split_index, class_index, i, folder / f"{name}_{i:05d}.jpg") for i in range(count)]
        write_all(tasks, _write_one, "demo data")

    return generate_once(root, list(splits), expected, generate, f"demo data ({len(CLASSES)} classes, {splits})")


def demo_data_on_first_use(data_config) -> None:
    """Makes the demo set in data_config.dir when there is nothing there yet, saying where in one line first.

    Nothing for other sources, nor where data.dir holds anything (a set made before, whatever its size, or a folder
    of one's own images read through the demo source, as `make eval ARGS="data.dir=..."` does). The set is written
    beside it and renamed into place once complete, so an interrupted first use leaves no half set behind.
    """
    root = Path(data_config.dir)
    if data_config.source != "demo" or (root.exists() and (not root.is_dir() or any(root.iterdir()))):
        return
    print(f"demo data: none in {root} yet, making it there on first use ({root.resolve()})", flush=True)
    partial = root.resolve().with_name(f"{root.resolve().name}.partial-{os.getpid()}")
    try:
        ensure_demo_data(dataclasses.replace(data_config, dir=str(partial)))
        partial.rename(root)  # onto nothing, or onto the empty folder there
    except OSError:
        if not root.is_dir() or not (root / MANIFEST).is_file():
            raise
        # Another process (a worker of the same job) made the set meanwhile: keep that one.
    finally:
        shutil.rmtree(partial, ignore_errors=True)
