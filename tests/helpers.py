"""Test helpers shared by the test modules: test images and folders, tiny configs, TensorBoard readers, the CLI.

Test modules import them from here (`from helpers import ...`); fixtures live in conftest.py.
"""

import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from alexnet import rundir
from alexnet.config import load_config
from alexnet.records import BackupManifest

ROOT = Path(__file__).resolve().parents[1]
RESIZE, SIZE = 48, 40  # test-sized resize_size / image_size (model.image_size must be >= 35)
# A tiny network built by the same function: 67x67 inputs from 74x74 squares, 1/16 of the widths, in float32
# whatever train.precision=auto would pick on this machine (a test about the precision says so).
# The command every worker of a cluster job runs (docs/distributed.md; deploy/'s manifests): not make, which
# turns every failure into exit status 2.
CLUSTER_COMMAND = ".venv/bin/python -m alexnet train --config configs/imagenet2012.yaml --run imagenet2012"
TINY = ["model.width=0.0625", "model.image_size=67", "data.resize_size=74", "model.init=he_normal",
        "model.input_scale=0.015625", "tensorboard.every_steps=1", "train.precision=float32"]


# ----- images -----


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    """image encoded as fmt ("JPEG", "PNG", ...) by PIL."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def solid(mode, colour, size=(60, 45)):
    """A one-colour PIL image of size (width, height)."""
    return Image.new(mode, size, colour)


def textured(height: int, width: int, period: float = 9.0) -> np.ndarray:
    """uint8 (height, width, 3) sinusoids whose periods are period/48 of the shorter side: every position differs.

    Smooth enough that resampling changes little, varied enough that a crop one pixel off shows.
    """
    side = min(height, width)
    y, x = np.mgrid[:height, :width].astype(np.float64) * 48 / side
    channels = [128 + 90 * np.sin(2 * np.pi * x / period), 128 + 90 * np.sin(2 * np.pi * y / (1.2 * period)),
                128 + 60 * np.sin(2 * np.pi * (x + 2 * y) / (1.5 * period))]
    return np.stack(channels, -1).round().clip(0, 255).astype(np.uint8)


def noise_jpeg(seed: int, size=(70, 90)) -> bytes:
    """A JPEG of random pixels: any change of crop or flip changes its pixel sum."""
    return encode(Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), np.uint8)), "JPEG")


def mean_rgb(image):
    """The mean colour of an (H, W, 3) image, float64."""
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
PLAIN_COLOURS = {"awkward": (30, 60, 90), "plain": (220, 200, 20)}


def make_folder(root: Path, with_bad=True) -> dict:
    """train/awkward holds every awkward case, train/plain and val/* plain JPEGs. Returns {path: expected RGB}."""
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
        for cls, rgb in PLAIN_COLOURS.items():
            path = root / split / cls / "x.txt"  # not an image suffix: ignored, not counted as bad
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("ignored")
            for i in range(count):
                path = root / split / cls / f"p{i}.jpg"
                path.write_bytes(encode(solid("RGB", rgb, (50 + 10 * i, 40)), "JPEG", quality=95))
                colours[str(path)] = rgb
    return colours


def folder_config(root, *extra):
    """A config reading the folder at root with the test sizes and batch 4."""
    return load_config(None, ["data.source=folder", f"data.dir={root}", f"data.resize_size={RESIZE}",
                              f"model.image_size={SIZE}", "train.global_batch_size=4", *extra])


def pipeline(config, split, input_context=None):
    """make_dataset with the config's sizes, batch, seed and determinism."""
    from alexnet.data.pipeline import make_dataset

    t = config.train
    return make_dataset(config.data, split, config.model.image_size, t.global_batch_size, t.seed, t.deterministic,
                        input_context)


def training_epochs(config, count: int, start_epoch: int = 0) -> list[list]:
    """The (images, labels) NumPy batches of `count` epochs of training_stream with the config's sizes, batch,
    seed and determinism, from start_epoch, epoch by epoch."""
    from alexnet.data.pipeline import training_stream

    t = config.train
    steps = sum(1 for _ in pipeline(config, "train"))
    stream = training_stream(config.data, config.model.image_size, t.global_batch_size, t.seed, t.deterministic,
                             start_epoch=start_epoch)
    batches = list(stream.take(count * steps).as_numpy_iterator())
    return [batches[i * steps : (i + 1) * steps] for i in range(count)]


# ----- runs -----


def scalars(log_dir: Path) -> dict:
    """{tag: [(step, value) in file order]} of all scalar events under log_dir."""
    series: dict = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") else value.simple_value
                    series.setdefault(value.tag, []).append((event.step, number))
    return series


def steps(series: list) -> list:
    """The steps of a scalars() series."""
    return [step for step, _ in series]


def all_tags(log_dir: Path) -> set:
    """Every summary tag in the event files directly under log_dir."""
    return {v.tag for p in log_dir.glob("events.out.tfevents.*") for e in EventFileLoader(str(p)).Load()
            for v in e.summary.value}


def run_cli(args, **kwargs) -> subprocess.Popen:
    """`python -m alexnet ARGS` in a fresh process from the repository root, stdout and stderr captured apart."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "alexnet", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def cli(args, timeout=300) -> tuple[int, str, str]:
    """Runs `python -m alexnet ARGS` to the end: (exit status, stdout, stderr)."""
    proc = run_cli(args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def side_by_side(*commands, timeout=300) -> list[tuple[int, str, str]]:
    """Runs `python -m alexnet ARGS` for each ARGS at once (most of a short command is its interpreter's start):
    [(exit status, stdout, stderr)] in the order given."""
    started = [run_cli(args) for args in commands]
    outputs = [proc.communicate(timeout=timeout) for proc in started]
    return [(proc.returncode, out, err) for proc, (out, err) in zip(started, outputs, strict=True)]


def backup_positions(run_dir) -> list[tuple[int, int]]:
    """(epoch, step within it) of every backup the run directory holds, from their manifests."""
    positions = []
    for manifest in sorted((Path(run_dir) / rundir.BACKUP).glob("step-*.json")):
        try:
            record = BackupManifest.read(manifest)
        except OSError:
            continue  # being replaced
        positions.append((record.epoch, record.step))
    return positions


def tiny_config(data_dir, *extra):
    """The demo config with the tiny network on data_dir: batch 8, 2 steps per epoch, 1 epoch."""
    return load_config(ROOT / "configs" / "demo.yaml", [
        *TINY, f"data.dir={data_dir}", "train.epochs=1", "train.global_batch_size=8", "train.steps_per_epoch=2",
        *extra])


# ----- TensorBoard as its users meet it -----


def tensorboard_server(logdir) -> str:
    """The URL of a TensorBoard serving logdir on a free loopback port, in this process (a daemon thread)."""
    from tensorboard import program

    server = program.TensorBoard()
    server.configure(argv=[None, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"])
    return server.launch()


def http_get(url: str, timeout: float = 60) -> bytes:
    """The body of a GET of a loopback URL."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_for(read, seconds: float = 30):
    """read()'s first truthy answer within seconds (TensorBoard loads its logdir in the background)."""
    deadline = time.monotonic() + seconds
    while not (answer := read()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return answer
