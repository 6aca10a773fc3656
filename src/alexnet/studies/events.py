"""Reading a run's TensorBoard event files with TensorBoard's own reader (EventAccumulator), for the pages and
studies that show what a run wrote."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def event_data(directory: Path) -> EventAccumulator | None:
    """TensorBoard's reader over the event files directly in directory, every event kept (None: no directory)."""
    if not directory.is_dir():
        return None
    accumulator = EventAccumulator(str(directory), size_guidance={"tensors": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def scalar_series(data: EventAccumulator | None) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} of the scalar summaries (written as tensors by tf.summary.scalar)."""
    if data is None:
        return {}
    tags = [t for t in data.Tags()["tensors"] if data.SummaryMetadata(t).plugin_data.plugin_name == "scalars"]
    return {t: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in data.Tensors(t)] for t in tags}


def last_png(data: EventAccumulator | None, tag: str) -> bytes | None:
    """The PNG of an image summary's last event (tf.summary.image stores [width, height, png, ...])."""
    if data is None or tag not in data.Tags()["tensors"]:
        return None
    return tf.make_ndarray(data.Tensors(tag)[-1].tensor_proto)[2]


def texts(data: EventAccumulator | None, tag: str) -> list[str]:
    """Every text summary written under tag."""
    if data is None or tag not in data.Tags()["tensors"]:
        return []
    return [e.tensor_proto.string_val[0].decode() for e in data.Tensors(tag)]
