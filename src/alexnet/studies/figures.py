"""The pictures the project draws, as PNG bytes (matplotlib, no screen needed): the learning-rate range test,
the paper's Figure 1 (training error, ReLU vs tanh), Figure 4 (top-5 predictions; nearest training images
in fc7) and a confusion matrix.

TensorBoard shows them through `tensorboard_image`; every function returns the PNG bytes.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure


def subplots(*args, figsize, dpi=100, **kwargs):
    """(figure, axes) like pyplot.subplots, without pyplot: no global backend or figure registry, no display.

    A Figure made directly renders with matplotlib's Agg canvas whatever backend the importer chose.
    """
    figure = Figure(figsize=figsize, dpi=dpi)
    return figure, figure.subplots(*args, **kwargs)


def to_png(figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def tensorboard_image(tag: str, png: bytes, step: int = 0) -> None:
    """Writes png as an image summary to the default summary writer."""
    tf.summary.image(tag, tf.io.decode_png(png, channels=3)[None], step=step)


def lr_find_plot(rates, losses, smoothed, suggested: float | None, uniform: float, y_limit: float,
                 title: str) -> bytes:
    """Loss against learning rate (log axis), the smoothed curve, the suggested rate (when there is one) and
    the loss of a uniform guess (uniform) marked."""
    figure, axes = subplots(figsize=(7, 4.5), dpi=100)
    axes.plot(rates, losses, color="0.75", linewidth=1, label="loss of each step")
    axes.plot(rates, smoothed, color="C0", linewidth=2, label="smoothed")
    if suggested is not None:
        axes.axvline(suggested, color="C2", linestyle="--", label=f"suggested {suggested:.2g}")
    axes.axhline(uniform, color="C3", linestyle=":", label=f"uniform guess, ln(classes) = {uniform:.2f}")
    axes.set_xscale("log")
    axes.set_ylim(min(min(smoothed), uniform) * 0.9, max(y_limit, uniform * 1.1))
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    axes.legend()
    return to_png(figure)


def top5_predictions(images: np.ndarray, true_names: list[str], top5: list[list[tuple[str, float]]]) -> bytes:
    """The paper's Figure 4, left: each image with its true label and a bar chart of its 5 most probable classes.

    top5[i] is [(class name, probability)] of image i, most probable first; the true class's bar is red.
    """
    count = len(images)
    figure, axes = subplots(2, count, figsize=(2.2 * count, 4.6), dpi=100,
                                gridspec_kw={"height_ratios": [1, 0.8]})
    axes = np.asarray(axes).reshape(2, count)
    for i in range(count):
        axes[0, i].imshow(images[i])
        axes[0, i].set_title(true_names[i], fontsize=9)
        axes[0, i].axis("off")
        names, probabilities = zip(*top5[i], strict=True)
        colours = ["C3" if n == true_names[i] else "C0" for n in names]
        axes[1, i].barh(range(len(names))[::-1], probabilities, color=colours)
        axes[1, i].set_yticks(range(len(names))[::-1], [n[:14] for n in names], fontsize=7)
        axes[1, i].set_xlim(0, 1)
        axes[1, i].tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    return to_png(figure)


def nearest_neighbours_grid(queries: np.ndarray, query_names: list[str], neighbours: np.ndarray,
                            neighbour_names: list[list[str]]) -> bytes:
    """The paper's Figure 4, right: each query image (first column) followed by its nearest training images.

    queries: (Q, H, W, 3); neighbours: (Q, K, H, W, 3), nearest first.
    """
    rows, columns = neighbours.shape[0], neighbours.shape[1] + 1
    figure, axes = subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), dpi=100)
    axes = np.asarray(axes).reshape(rows, columns)
    for r in range(rows):
        axes[r, 0].imshow(queries[r])
        axes[r, 0].set_title(f"{query_names[r][:14]} (query)", fontsize=8, color="C3")
        for k in range(columns - 1):
            axes[r, k + 1].imshow(neighbours[r, k])
            axes[r, k + 1].set_title(neighbour_names[r][k][:14], fontsize=8)
        for a in axes[r]:
            a.axis("off")
    figure.tight_layout()
    return to_png(figure)


def confusion_matrix(matrix: np.ndarray, names: list[str], title: str) -> bytes:
    """A confusion matrix (rows: true class, columns: predicted), each row as a fraction of its images."""
    fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(24, 3 + 0.25 * len(names))
    figure, axes = subplots(figsize=(size, size * 0.9), dpi=100)
    shown = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(names))
    label_size = 8 if len(names) <= 30 else 5
    axes.set_xticks(ticks, names, rotation=90, fontsize=label_size)
    axes.set_yticks(ticks, names, fontsize=label_size)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    if len(names) <= 20:
        for (r, c), value in np.ndenumerate(matrix):
            if value:
                axes.text(c, r, str(value), ha="center", va="center", fontsize=7,
                          color="white" if fractions[r, c] > 0.5 else "black")
    figure.colorbar(shown, fraction=0.046, pad=0.04)
    return to_png(figure)


def figure1(step_errors: dict[str, list[list[float]]], steps_per_epoch: int, window: int, threshold: float,
            title: str) -> bytes:
    """The paper's Figure 1 re-drawn: training error against epochs for each network, every seed faint and
    the median over seeds bold (each curve the mean error of the last `window` steps), the threshold dashed."""
    figure, axes = subplots(figsize=(6.5, 4.5), dpi=100)
    styles = {0: "-", 1: "--"}
    for index, (name, seeds) in enumerate(step_errors.items()):
        smoothed = np.array([np.convolve(e, np.ones(window) / window, mode="valid") for e in seeds])
        epochs = (np.arange(smoothed.shape[1]) + window) / steps_per_epoch
        for curve in smoothed:
            axes.plot(epochs, curve, styles[index % 2], color=f"C{index}", alpha=0.25, linewidth=1)
        axes.plot(epochs, np.median(smoothed, axis=0), styles[index % 2], color=f"C{index}", linewidth=2.5,
                  label=f"{name} (median of {len(seeds)} seeds)")
    axes.axhline(threshold, color="0.3", linestyle=":", label=f"{threshold:.0%} training error")
    axes.set_xlabel("epochs")
    axes.set_ylabel("training error rate")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend()
    return to_png(figure)


def arm_curves(curves: dict[str, dict[str, list[list[float]]]], title: str) -> bytes:
    """Training (solid) and validation (dashed) top-1 error against epochs, the median over seeds of each arm."""
    figure, axes = subplots(figsize=(8, 5), dpi=100)
    for index, (arm, series) in enumerate(curves.items()):
        for role, style in (("train", "-"), ("val", "--")):
            median = np.median(np.array(series[role]), axis=0)
            axes.plot(range(1, len(median) + 1), median, style, color=f"C{index % 10}",
                      label=arm if role == "train" else None)
    axes.set_xlabel("epochs")
    axes.set_ylabel("top-1 error (solid: training, dashed: validation)")
    axes.set_ylim(0, 1)
    axes.set_title(title)
    axes.legend(fontsize=8)
    return to_png(figure)


def training_curves(rows: list[dict], curves: tuple, drops: list[int], title: str) -> bytes:
    """One panel per curve (name, label) against epochs, three a row: training solid, validation dashed where
    the rows have val_<name>; dotted lines after the epochs in drops (learning-rate drops)."""
    columns = 3
    rows_of_panels = -(-len(curves) // columns)
    figure, axes = subplots(rows_of_panels, columns, figsize=(11, 3.3 * rows_of_panels), dpi=100)
    epochs = [r["epoch"] for r in rows]
    for ax in np.ravel(axes)[len(curves):]:  # the last row's empty panels
        ax.set_visible(False)
    for ax, (name, label) in zip(np.ravel(axes), curves, strict=False):
        for key, style, role in ((name, "-", "training"), (f"val_{name}", "--", "validation")):
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), style, marker=".", label=role)
        for epoch in drops:
            ax.axvline(epoch + 0.5, color="0.5", linestyle=":")
        if name == "learning_rate":
            ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(epochs) + 0.5)
        if name.endswith("error") or name == "loss":
            ax.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    return to_png(figure)


def layer_statistics(series: dict[str, dict[str, list[tuple[int, float]]]]) -> bytes:
    """One panel per statistic, one line per layer, against the training step (alexnet/training/layer_stats.py)."""
    figure, axes = subplots(1, len(series), figsize=(4.5 * len(series), 3.4), dpi=100)
    for ax, (statistic, layers) in zip(np.atleast_1d(axes), series.items(), strict=True):
        for index, (layer, points) in enumerate(layers.items()):
            ax.plot(*zip(*points, strict=True), color=f"C{index % 10}", label=layer)
        if statistic != "dead_fraction":
            ax.set_yscale("log")
        ax.set_title(statistic.replace("_", " "), fontsize=10)
        ax.set_xlabel("step")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    figure.tight_layout()
    return to_png(figure)


def table_figure(header: list[str], rows: list[list], title: str) -> bytes:
    """A small table as a picture (docs/evaluation.md shows Table 2 so)."""
    figure, axes = subplots(figsize=(7.5, 0.3 * (len(rows) + 1)), dpi=100)
    axes.axis("off")
    cells = axes.table(cellText=[[str(c) for c in r] for r in rows], colLabels=header, bbox=[0, 0, 1, 1],
                       cellLoc="right", colLoc="right", colWidths=[0.62, 0.19, 0.19])
    cells.auto_set_font_size(False)
    cells.set_fontsize(9)
    for (row, column), cell in cells.get_celld().items():
        cell.set_text_props(ha="left" if column == 0 else "right", weight="bold" if row == 0 else "normal")
    axes.set_title(title, fontsize=10)
    return to_png(figure)


def gradient_norms(curves: dict[str, dict[str, float]], title: str) -> bytes:
    """Each curve's gradient norm of every layer against the layer's depth (log axis)."""
    figure, axes = subplots(figsize=(8, 4.5), dpi=100)
    for index, (label, norms) in enumerate(curves.items()):
        axes.plot(range(1, len(norms) + 1), list(norms.values()), "-" if "start" in label else "--", marker=".",
                  color=f"C{index // 2}", label=label)
    axes.set_yscale("log")
    axes.set_xlabel("layer, from the input (convolutions and fc)")
    axes.set_ylabel("gradient norm of the kernel")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    return to_png(figure)
