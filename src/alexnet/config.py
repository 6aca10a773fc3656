"""Typed run configuration: defaults, YAML files that override them, dotted command-line overrides.

Every value is checked before any work starts; a mistyped key, a wrong type, an impossible value or two
values that do not go together fail with a message naming the key and what it accepts, and a file the
run will read (model.init_from, model.colour_stats) is checked to exist. Optional values are None
(YAML `null`, or an empty override such as `model.init_from=`).

The model section's names and values are `build_alexnet`'s arguments (alexnet/model.py): one vocabulary
from the YAML to the layers, checked by the same rule here and there (`check_section`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml

from alexnet.errors import ConfigError, DataError

# The paper's weighted layers (section 3.5), in order: the names model.remove_conv and train.freeze use.
WEIGHTED_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
# The model keys each architecture of model.arch takes besides arch and init_from (alexnet: every one);
# the others are AlexNet's switches (alexnet/architectures.py says why each network is as it is).
ALEXNET_MIN_SIZE = 35
INPUT_KEYS = ("num_classes", "image_size", "centre", "input_scale", "colour_noise", "colour_stats")
ARCH_KEYS = {"lenet5": (*INPUT_KEYS, "activation"), "resnet18": INPUT_KEYS, "plain18": INPUT_KEYS,
             "resnet50": INPUT_KEYS}
# model.layout: the network another framework trained, as it ran it (alexnet/model.py's LAYOUTS has its
# pre-processing and LRN), and the keys each fixes: a file of its weights in model.init_from sets them.
LAYOUT_KEYS = {"torchvision": {"variant": "owt", "image_size": 224},
               "caffe": {"variant": "paper_grouped", "image_size": 227}}
WEIGHT_FILE_LAYOUTS = {".pth": "torchvision", ".caffemodel": "caffe"}


def _range(low=None, high=None, low_open=False):
    """Field metadata: the accepted numeric range (inclusive unless low_open)."""
    return {"low": low, "high": high, "low_open": low_open}


@dataclass
class ModelConfig:
    """The network (paper section 3)."""

    # The paper's network, or one it is compared with (alexnet/architectures.py): LeNet-5 before it, ResNet-18,
    # ResNet-18 without its shortcuts and ResNet-50 after it. They take the input keys only (ARCH_KEYS).
    arch: Literal["alexnet", "lenet5", "resnet18", "plain18", "resnet50"] = "alexnet"
    variant: Literal["paper", "paper_grouped", "owt"] = "paper"
    # 0 takes the class count from the dataset.
    num_classes: int = field(default=0, metadata=_range(0))
    # 227, not the paper's 224: 224 with an 11x11 stride-4 valid conv does not give 55 (Caffe uses 227).
    # AlexNet takes 35 or more (ALEXNET_MIN_SIZE: its five layers leave no pixel below), LeNet-5 32.
    image_size: int = field(default=227, metadata=_range(32))
    # Multiplies every conv and fc width; 1.0 is the paper. Smaller values build test-sized networks.
    width: float = field(default=1.0, metadata=_range(0.0, 1.0, low_open=True))
    # "paper": weights N(0, 0.01), biases 1 in conv2/4/5, fc6/7 (section 5). "he_normal" (He et al. 2015,
    # biases 0): a deviation for short runs on small data, where the paper's start stays on a flat loss.
    init: Literal["paper", "he_normal"] = "paper"
    # Start fc8's weights at 0, so the first predictions are uniform (loss ln(classes)) and the first steps
    # teach the classifier instead of shrinking every activation to undo random confident guesses. A
    # deviation for small, low-contrast data sets (docs/model.md, "Every run learns"); the paper draws fc8
    # like the rest.
    zero_fc8: bool = False
    # Dropout probability on fc6 and fc7 (section 4.2).
    dropout: float = field(default=0.5, metadata=_range(0.0, 1.0))
    # The mean subtracted from the inputs: the data set's (section 2: ImageNet's, or model.colour_stats), or
    # each image's own mean colour, a deviation for small objects on backgrounds whose colour varies more
    # from image to image than the objects do (docs/model.md, the shipped configs' deviations).
    centre: Literal["dataset", "image"] = "dataset"
    # Inputs are (pixel - mean) * input_scale; the paper uses 0-255 pixels minus the mean (scale 1).
    input_scale: float = field(default=1.0, metadata=_range(0.0, None, low_open=True))
    # Standard deviation of the PCA colour-noise coefficients alpha_i (section 4.1); 0 turns it off.
    colour_noise: float = field(default=0.1, metadata=_range(0.0, None))
    # JSON file with "mean", "eigval", "eigvec" from `make prepare` (data.colour_stats); None = ImageNet's.
    colour_stats: str | None = None
    # The switches `make claims` turns, each the paper's choice by default. Hidden-layer non-linearity
    # (section 3.1: ReLU; tanh is what it was compared with).
    activation: Literal["relu", "tanh"] = "relu"
    # Local response normalisation after conv1 and conv2 (section 3.3): as the variant has it, or forced on
    # (true) or off (false).
    lrn: Literal["variant", True, False] = "variant"
    # Max-pooling window, stride 2: 3 overlaps (section 3.4), 2 does not; both give the same shapes.
    pool_size: Literal[3, 2] = 3
    # Remove one middle convolutional layer (section 7: "removing any middle layer costs about 2%").
    remove_conv: Literal[None, "conv3", "conv4"] = None
    # project: this project's network. torchvision or caffe: the network that framework trained, as it ran it
    # (its variant, input size, pre-processing and LRN: docs/own-images.md, "ImageNet weights"), for its weights; a
    # model.init_from of a .pth (torchvision's) or .caffemodel (BVLC's) file sets it.
    layout: Literal["project", "torchvision", "caffe"] = "project"
    # Fine-tuning: a .keras file (e.g. logs/RUN/best.keras), torchvision's alexnet .pth or BVLC's
    # bvlc_alexnet.caffemodel, whose weights start every layer of the same name and shapes; the others (fc8
    # when the class count differs) keep their initialisation. Not an argument of build_alexnet: the
    # training driver loads it into the built model.
    init_from: str | None = None


@dataclass
class DataConfig:
    """Where images come from and how they are prepared (sections 2 and 4.1)."""

    # demo: generated offline by `make data` into dir; folder: dir/train/<class>/*, dir/val/<class>/*;
    # tfds: a TFDS dataset by name, dir as its data_dir; records: TFRecords written by `make prepare`.
    source: Literal["demo", "folder", "tfds", "records"] = "demo"
    name: str | None = None  # the TFDS data set (data.source=tfds)
    dir: str = "data/demo"
    train_split: str = "train"
    val_split: str = "val"
    # Shorter side resized to this, then the central square kept (section 2).
    resize_size: int = field(default=256, metadata=_range(35))
    # paper: random crop + flip of the 256x256 image (section 4.1); inception: random-resized crop + flip.
    augment: Literal["paper", "inception", "none"] = "paper"
    # The random horizontal flip of both augmentations (section 4.1); false for classes whose mirror image
    # is not of the same class (digits, text, road signs).
    flip: bool = True
    # Training order: a folder's whole file list is shuffled every epoch before any image is read; records and
    # TFDS shuffle their file order, then this many encoded examples (the folder source does not use it).
    # shuffle=false keeps the listed order (class by class for a folder): for checks that must see the same
    # batches in two runs, not for training.
    shuffle: bool = True
    shuffle_buffer: int = field(default=10_000, metadata=_range(1))
    # Decode every image once and keep it in memory (training: the resize_size squares, cropped and flipped
    # afresh every epoch; validation: the crops). For small data sets: the claims study's 1,500 squares of
    # 128 pixels hold 74 MB. The random crop and flip only (data.augment paper or none).
    cache: bool = False
    # Where `make prepare` writes TFRecords; None = data/records/<source name>.
    prepared_dir: str | None = None
    # Compute the RGB mean and covariance eigen-decomposition at `make prepare`.
    colour_stats: bool = False
    # A tf.data service dispatcher ("grpc://host:port", `make data-service` starts one here) that runs the
    # training input pipeline on its workers; None = in this process. See docs/distributed.md.
    service: str | None = None
    # Number of images the demo generator makes per class (train; val is a quarter of it).
    demo_images_per_class: int = field(default=150, metadata=_range(1))


@dataclass
class TrainConfig:
    """Optimisation (section 5) and the run's mechanics."""

    epochs: int = field(default=90, metadata=_range(1))
    global_batch_size: int = field(default=128, metadata=_range(1))
    learning_rate: float = field(default=0.01, metadata=_range(0.0, None, low_open=True))
    momentum: float = field(default=0.9, metadata=_range(0.0, 1.0))
    weight_decay: float = field(default=5e-4, metadata=_range(0.0, None))
    # The paper's update decays every parameter; false exempts biases (Caffe's choice).
    decay_biases: bool = True
    # paper: divide by 10 when val error stalls `patience` epochs, at most max_lr_drops times (section 5);
    # step: divide by 10 every step_epochs (torchvision); cosine: half a cosine from the rate to 0 over the
    # epochs after the warm-up; constant.
    schedule: Literal["paper", "step", "cosine", "constant"] = "paper"
    patience: int = field(default=3, metadata=_range(1))
    max_lr_drops: int = field(default=3, metadata=_range(0))
    step_epochs: int = field(default=30, metadata=_range(1))
    warmup_epochs: float = field(default=0.0, metadata=_range(0.0))
    # Scale the gradients down so that their global norm is at most this (0: no clipping; not in the paper).
    clip_norm: float = field(default=0.0, metadata=_range(0.0))
    # Train against (1 - s) one-hot + s / classes instead of the one-hot labels (0: off, as in the paper).
    label_smoothing: float = field(default=0.0, metadata=_range(0.0, 1.0))
    # auto: mixed_bfloat16 where the hardware computes bfloat16 natively (a CPU with AMX or avx512_bf16, a GPU
    # of compute capability 8.0 or more), float32 elsewhere; the log's model line says which and why
    # (alexnet/training/precision.py).
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    jit_compile: bool = False
    # auto: MultiWorkerMirroredStrategy when TF_CONFIG names more than one task, else MirroredStrategy when
    # more than one GPU is visible, else the default; multi_worker and mirrored force theirs (devices
    # optional for mirrored).
    strategy: Literal["auto", "multi_worker", "mirrored", "default"] = "auto"
    devices: list[str] = field(default_factory=list)
    # Split the CPU into this many logical devices (0: don't), to run MirroredStrategy without GPUs.
    cpu_devices: int = field(default=0, metadata=_range(0))
    deterministic: bool = False
    seed: int = 0
    # 0: one pass over the data per epoch.
    steps_per_epoch: int = field(default=0, metadata=_range(0))
    validation_steps: int = field(default=0, metadata=_range(0))
    # Back up weights and optimizer every this many seconds of training, as well as every epoch (0: off): a
    # SIGKILL, an out-of-memory kill or a lost machine loses at most this much. A resumed run continues from the
    # step backed up (a SIGTERM or Ctrl-C also backs up the step it stops at). The step waits only for a copy
    # to host memory (~0.1 s for the paper's network on a CPU); the write runs in the background.
    backup_every_seconds: float = field(default=300.0, metadata=_range(0.0))
    # Also back up every N steps (0: off).
    backup_every_steps: int = field(default=0, metadata=_range(0))
    # Stop the run (exit status 6) at the first step whose training loss is not finite or above this many
    # times ln(classes), the loss of a uniform guess; 0: only a loss that is not finite.
    max_loss_multiple: float = field(default=10.0, metadata=_range(0.0))
    # A training loss still within 5% of ln(classes) at the end of this epoch is reported as a stalled start,
    # with the layer that went silent (alexnet/training/stall.py); 0: no check.
    stall_epochs: int = field(default=3, metadata=_range(0))
    # Multi-worker jobs: a worker that sees no training progress this long ends with exit status 138 (a peer
    # was lost: restart all workers); the coordination service usually reports a dead peer sooner. Before the
    # first step of a fit (tracing, filling the shuffle buffer) it waits 5 times as long.
    peer_timeout_seconds: int = field(default=50, metadata=_range(10))
    # Fine-tuning: these layers (e.g. [conv1, conv2, conv3, conv4, conv5]) are not updated in the first
    # freeze_epochs epochs.
    freeze: list[str] = field(default_factory=list)
    freeze_epochs: int = field(default=0, metadata=_range(0))


@dataclass
class TensorBoardConfig:
    """What goes into the TensorBoard logs besides the scalars."""

    images: bool = True
    # Train scalars every this many steps (besides the per-epoch ones).
    every_steps: int = field(default=10, metadata=_range(1))
    histograms: bool = True
    # Per-layer activation and gradient statistics of a probe batch every this many steps (0: none); see
    # alexnet/training/layer_stats.py. They show why a start is flat.
    layer_stats_steps: int = field(default=50, metadata=_range(0))
    # Steps of the first epoch to trace with the profiler: first-last (5-10, or [5, 10]; one step: 5); None: none.
    profile_steps: list[int] | None = field(default=None, metadata={"step_range": True})


@dataclass
class EvalConfig:
    """`make eval`: what is drawn besides the errors (section 6.1)."""

    # Training images (eval pre-processing) whose fc7 vectors are searched for Figure 4's nearest neighbours.
    train_sample: int = field(default=1000, metadata=_range(1))
    # After training, this many training images (a fixed sample, the same for every run on the data; eval
    # pre-processing, inference mode) are scored with the final weights: final_metrics.json's train_* errors
    # and the overfitting gap (final validation error minus that). Keras's training error is averaged over
    # the epoch with dropout and augmentation on, so it is no measure of fitting. None: not measured.
    train_error_images: int | None = field(default=None, metadata=_range(1))
    # Validation images whose fc7 vectors TensorBoard's projector shows.
    projector_images: int = field(default=1000, metadata=_range(1))
    figure_images: int = field(default=8, metadata=_range(1))  # Figure 4, left
    neighbour_queries: int = field(default=5, metadata=_range(1))  # Figure 4, right: rows
    neighbours: int = field(default=6, metadata=_range(1))  # Figure 4, right: training images per row


@dataclass
class ClaimsConfig:
    """`make claims`: the ablation study of the paper's claims (alexnet/studies/claims.py)."""

    # Paired seeds per arm: 6 is the fewest with which a sign-flip test can reach p < 0.05 (2 / 2^6 = 0.031).
    seeds: int = field(default=6, metadata=_range(1))
    # Arms to train (baseline, no_lrn, pool2, no_colour_noise, no_augment, no_dropout, no_conv3); [] = all.
    arms: list[str] = field(default_factory=list)
    # The speed claims count optimizer steps until the training top-1 error first reaches this (Figure 1: 25%).
    train_error_threshold: float = field(default=0.25, metadata=_range(0.0, 1.0, low_open=True))
    # Figure 1 as the paper ran it (alexnet/studies/figure1.py): a four-layer CNN, ReLU vs tanh, on the digit
    # scans at 32x32, this many epochs per run.
    figure1: bool = True
    figure1_epochs: int = field(default=8, metadata=_range(1))


@dataclass
class CompareConfig:
    """`make compare`: AlexNet beside LeNet-5 and ResNet (alexnet/studies/compare.py)."""

    seeds: int = field(default=2, metadata=_range(1))
    # The report gives each network's time (training and validation seconds) to this validation accuracy.
    target_accuracy: float = field(default=0.8, metadata=_range(0.0, 1.0, low_open=True))


@dataclass
class LRFindConfig:
    """`make lr-find`: the learning-rate range test (alexnet/studies/lr_find.py)."""

    min_lr: float = field(default=1e-5, metadata=_range(0.0, None, low_open=True))
    max_lr: float = field(default=1.0, metadata=_range(0.0, None, low_open=True))
    steps: int = field(default=100, metadata=_range(5))
    # Exponential smoothing of the per-step loss (0: none).
    smoothing: float = field(default=0.9, metadata=_range(0.0, 0.99))


@dataclass
class Config:
    """One run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    claims: ClaimsConfig = field(default_factory=ClaimsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    lr_find: LRFindConfig = field(default_factory=LRFindConfig)


def _check_step_range(key: str, value) -> list[int]:
    """[first, last] from 5-10, "5,10", [5, 10] or 5 (one step); ConfigError naming key otherwise."""
    parts = None
    if isinstance(value, int) and not isinstance(value, bool):
        parts = [value, value]
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*([-,]\s*\d+\s*)?", value):
        parts = [int(v) for v in re.split(r"[-,]", value)] * (1 if re.search(r"[-,]", value) else 2)
    elif isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        parts = value
    if parts is None or not 0 <= parts[0] <= parts[1]:
        raise ConfigError(f"{key}: {value!r} is not a range of steps: write first-last, e.g. 5-10 "
                          f"(or [5, 10]; one step: 5), first <= last, from 0")
    return parts


def _check_value(key: str, value, hint, metadata):
    """Returns value converted to hint's type, or raises ConfigError naming key."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # X | None: optional
        if value is None:
            return None
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        origin = typing.get_origin(hint)
    if metadata.get("step_range"):
        return _check_step_range(key, value)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    low, high = metadata.get("low"), metadata.get("high")
    too_low = low is not None and (value <= low if metadata.get("low_open") else value < low)
    if too_low or (high is not None and value > high):
        lo = "" if low is None else f"{'>' if metadata.get('low_open') else '>='} {low}"
        hi = "" if high is None else f"<= {high}"
        raise ConfigError(f"{key}: {value!r} is out of range (must be {' and '.join(p for p in (lo, hi) if p)})")
    return value


def check_section(section: str, cls, values: dict) -> dict:
    """values (name: value) checked and converted against the fields of the config dataclass cls, as
    load_config checks them; ConfigError naming section.name for an unknown name or a bad value."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {section}.{unknown[0]}; accepted keys here: {', '.join(fields)}")
    return {name: _check_value(f"{section}.{name}", value, hints[name], fields[name].metadata)
            for name, value in values.items()}


def choices(cls, name: str) -> tuple:
    """The values the Literal-typed field `name` of the config dataclass cls accepts."""
    return typing.get_args(typing.get_type_hints(cls)[name])


def _merge(obj, updates: dict, prefix: str = ""):
    """Applies a nested dict of updates to a config dataclass in place, checking every key and value."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {updates!r}")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in updates.items():
        key = prefix + str(name)
        if name not in fields:
            raise ConfigError(f"unknown key {key!r}; accepted keys here: {', '.join(fields)}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _merge(current, value, key + ".")
        else:
            setattr(obj, name, _check_value(key, value, hints[name], fields[name].metadata))


def parse_overrides(overrides: list[str]) -> dict:
    """Turns ["train.epochs=2", "model.variant=owt"] into a nested dict; values are read as YAML."""
    nested: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        *parents, leaf = key.strip().split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw) if raw.strip() else None  # key= clears an optional value
    return nested


# The shipped configs: the checkout's configs/, installed with the package as alexnet.configs (pyproject.toml).
SHIPPED_CONFIGS = "alexnet.configs"


def shipped_configs() -> dict:
    """{name: file} of the shipped configs (demo: configs/demo.yaml), read where the package is installed."""
    folder = resources.files(SHIPPED_CONFIGS)
    return {f.name.removesuffix(".yaml"): f for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yaml")}


def find_config(path: str | Path):
    """The YAML file at path; where there is none, the shipped config that a bare name (demo, demo.yaml) or
    configs/NAME.yaml names, so that `--config demo` works from any directory. ConfigError naming the shipped
    configs otherwise."""
    given = Path(path)
    if given.is_file():
        return given
    shipped = shipped_configs()
    if given.parent in (Path("."), Path("configs")) and given.suffix in ("", ".yaml") and given.stem in shipped:
        return shipped[given.stem]
    raise ConfigError(f"config file {path} does not exist, and no config of that name is shipped: give the path of "
                      f"a YAML file or one of the shipped names, {', '.join(shipped)} (e.g. --config demo)")


def load_config(path: str | Path | None = None, overrides: list[str] = (), check_files: bool = True) -> Config:
    """Defaults, then the YAML file at path or the shipped config of that name (find_config), then dotted
    overrides; validated throughout.

    check_files: the files the run will read must exist (off for a finished run's own config, which eval,
    export and predict read: its init_from source may be gone, and is not needed again).
    """
    config = Config()
    if path:
        _merge(config, yaml.safe_load(find_config(path).read_text()) or {})
    _merge(config, parse_overrides(list(overrides)))
    follow_weight_file(config.model)
    _check_combinations(config)
    if check_files:
        _check_files(config)
    return config


def _check_combinations(config: Config) -> None:
    """ConfigError for values that are valid alone but not together."""
    m, t = config.model, config.train
    _check_arch(m, t)
    if bool(t.freeze) != bool(t.freeze_epochs):
        raise ConfigError("train.freeze (layer names) and train.freeze_epochs (> 0) go together")
    layers = [name for name in WEIGHTED_LAYERS if name != m.remove_conv]
    unknown = [name for name in t.freeze if name not in layers]
    if unknown:
        raise ConfigError(f"train.freeze: no layers named {unknown} in this model; its layers with weights are "
                          f"{', '.join(layers)}")
    if m.image_size > config.data.resize_size:
        raise ConfigError(f"model.image_size ({m.image_size}) must not exceed data.resize_size "
                          f"({config.data.resize_size}): the crops are cut from the resized square")
    if config.data.cache and config.data.augment == "inception":
        raise ConfigError("data.cache keeps the resized squares, which the inception crop cannot be cut from: "
                          "use data.augment=paper or none, or data.cache=false")
    if config.data.source == "tfds" and not config.data.name:
        raise ConfigError("data.source=tfds needs data.name, e.g. imagenette/320px-v2 or imagenet2012")
    if config.lr_find.min_lr >= config.lr_find.max_lr:
        raise ConfigError(f"lr_find.min_lr ({config.lr_find.min_lr}) must be below lr_find.max_lr "
                          f"({config.lr_find.max_lr})")


def follow_weight_file(m: ModelConfig) -> None:
    """A torchvision or Caffe weight file in model.init_from sets model.layout, and the layout the keys it
    fixes, where they are at their defaults; ConfigError naming both when one says otherwise."""
    layout = WEIGHT_FILE_LAYOUTS.get(Path(m.init_from).suffix.lower()) if m.init_from else None
    if layout:
        if m.layout not in ("project", layout):
            raise ConfigError(f"model.layout={m.layout} contradicts model.init_from={m.init_from}, a {layout} file: "
                              f"set model.layout={layout} or leave it out")
        m.layout = layout
    defaults = ModelConfig()
    for key, value in LAYOUT_KEYS.get(m.layout, {}).items():
        given = getattr(m, key)
        if given not in (value, getattr(defaults, key)):
            source = f"model.init_from={m.init_from}" if layout else f"model.layout={m.layout}"
            raise ConfigError(f"model.{key}={given} contradicts {source}, whose network has model.{key}={value}: "
                              f"set model.{key}={value} or leave it out")
        setattr(m, key, value)
    if m.layout != "project":
        for key in ("input_scale", "centre", "colour_stats", "lrn"):
            if getattr(m, key) != getattr(defaults, key):
                raise ConfigError(f"model.{key} does not apply to model.layout={m.layout}: that network takes its "
                                  f"inputs and normalisation as {m.layout} trained it; leave model.{key} out")


def _check_arch(m: ModelConfig, t: TrainConfig) -> None:
    """ConfigError for an AlexNet switch given to another architecture, naming both, and for LeNet-5's size."""
    if m.arch == "alexnet":
        return check_alexnet_size(m.image_size)
    defaults = ModelConfig()
    taken = {*ARCH_KEYS[m.arch], "arch", "init_from"}
    for f in dataclasses.fields(ModelConfig):
        if f.name not in taken and getattr(m, f.name) != getattr(defaults, f.name):
            raise ConfigError(f"model.{f.name} does not apply to model.arch={m.arch}: that network takes "
                              f"model.{', model.'.join(ARCH_KEYS[m.arch])}; set model.{f.name}="
                              f"{_yaml_value(getattr(defaults, f.name))} or model.arch=alexnet")
    if t.freeze:
        raise ConfigError(f"train.freeze names AlexNet's layers; it does not apply to model.arch={m.arch}")
    if m.arch == "lenet5" and m.image_size != 32:
        raise ConfigError(f"model.arch=lenet5 takes 32x32 images (LeCun et al. 1998): set model.image_size=32 and "
                          f"a data.resize_size a little larger (e.g. 36), not {m.image_size}")


def check_alexnet_size(image_size: int) -> None:
    """ConfigError below the smallest input AlexNet's five layers leave a pixel of (35)."""
    if image_size < ALEXNET_MIN_SIZE:
        raise ConfigError(f"model.image_size: {image_size} is out of range for AlexNet (must be >= {ALEXNET_MIN_SIZE})")


def _yaml_value(value) -> str:
    """A value as it is written in an override."""
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _check_files(config: Config) -> None:
    """DataError for a file the run will read that is not there, naming the key and what writes the file."""
    m = config.model
    if m.init_from and not Path(m.init_from).is_file():
        raise DataError(f"model.init_from: {m.init_from} does not exist; train that run first (configs/folder.yaml "
                        f"can start from logs/demo/best.keras, which `make train` writes), point it at another "
                        f"run's best.keras, or set model.init_from= to train from scratch")
    if m.colour_stats and not Path(m.colour_stats).is_file():
        raise DataError(f"model.colour_stats: {m.colour_stats} does not exist; write it with `make prepare "
                        f"ARGS=\"data.colour_stats=true\"`, or set model.colour_stats= for ImageNet's")


def to_dict(config: Config) -> dict:
    """The config as plain nested dicts."""
    return dataclasses.asdict(config)


def config_yaml(config: Config) -> str:
    """The resolved config as YAML, readable back with load_config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
