"""`make eval`: the paper's evaluation (section 6) and what the network learned (section 6.1), for any run.

The run's best model goes over the validation split twice: (a) the central crop, (b) the paper's 10-crop
(four corner patches and the centre patch of the 256x256 square and their mirrors, softmax averaged over
the ten; one decode per image, the ten crops go through the model together; a run trained without flips,
data.flip=false, gets the five patches alone). Then:

- a table laid out like the paper's Table 2, beside the published figures, printed and in TensorBoard;
- logs/RUN/eval.json (records.Evaluation): both passes (top-1 / top-5 error, loss, images, seconds; crops), their
  time ratio, the per-class top-1 error (worst first), and how much LRN's gain varies across positions
  (lrn_gain_spread, alexnet/training/layer_stats.py; near 0 it normalises nothing);
- TensorBoard (logs/RUN/eval/): the errors as scalars at the best model's step, the table as text, a
  confusion matrix, Figure 4 left (top-5 predictions of validation images) and right (the training
  images nearest in fc7), and the fc7 vectors of validation images in the Projector tab.

The run is evaluated with its own resolved config; command-line overrides may point it at other data
(data.dir, data.source, ...), whose class names must then be the run's.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alexnet import rundir, tags
from alexnet.data.options import fixed_parallelism
from alexnet.data.pipeline import dataset_info, encoded_examples, make_dataset, training_sample
from alexnet.data.preprocess import ten_crops
from alexnet.export import load_best_model
from alexnet.metrics import errors_of, top_k_hits
from alexnet.records import BestEpoch, ClassError, EvalData, Evaluation, PassErrors, provenance
from alexnet.rundir import RunDir
from alexnet.studies import figures
from alexnet.studies.projector import write_projector
from alexnet.training.layer_stats import lrn_gain_spreads, weighted_layers

# The multi-crop row of Table 2, by the number of crops averaged (5: a run trained with data.flip=false).
TEN_CROP_ROWS = {10: "10 crops", 5: "5 crops, no mirrors (trained without flips)"}
# Published single-network errors on the ILSVRC-2012 validation set: (top-1, top-5) (alexnet-recipe.md).
PUBLISHED = {
    "paper, 1 CNN (Table 2, 10 crops)": (0.407, 0.182),
    "torchvision alexnet (centre crop)": (0.4348, 0.2093),
    "Caffe bvlc_alexnet (centre crop)": (0.429, 0.198),
}
IMAGENET = "imagenet2012"
THUMBNAIL = 64  # pixels a side of the images in the figures and the projector's sprite
CONFUSION_LIMIT = 100  # classes shown whole in the confusion matrix; above, the most confused ones
CONFUSION_SHOWN = 50
LRN_IMAGES = 64  # validation images whose LRN gain spread eval.json reports


def evaluate_run(run_dir: str | Path, overrides: list[str] = ()) -> Evaluation:
    """Evaluates run_dir's best model as described in the module doc; returns what eval.json holds.

    Checked before any work: the run, its best model, and data with the run's class names.
    """
    made = provenance()
    run = RunDir(run_dir)
    config = run.load_config(overrides)
    model = load_best_model(run)
    data, settings = config.data, config.eval
    names = run.class_names()
    run.check_classes(dataset_info(data).class_names, f"data.source={data.source} data.dir={data.dir}")
    size, batch = config.model.image_size, config.train.global_batch_size
    keep = max(settings.projector_images, settings.figure_images, settings.neighbour_queries)

    features = keras.Model(model.input, [model.output, feature_vectors(model)])
    centre = centre_pass(features, make_dataset(data, "val", size, batch), keep)
    # A run trained without flips never saw mirror images: its 10-crop pass is the five patches alone.
    crops = ten_crop_pass(model, encoded_examples(data, "val"), data.resize_size, size, batch, mirrors=data.flip)
    if not np.array_equal(crops["labels"], centre["labels"]):
        raise RuntimeError("the centre and 10-crop passes saw the validation images in different orders")
    train_sample = sample_features(features, data, size, batch, settings.train_sample)

    lrn_images = next(iter(make_dataset(data, "val", size, LRN_IMAGES)))[0]
    spreads = lrn_gain_spreads(model, lrn_images)
    result = Evaluation(
        provenance=made, run=run.name, data=EvalData(data.source, data.name, data.dir, data.val_split),
        centre=pass_errors(centre, crops=1), ten_crop=pass_errors(crops, crops=crops["crops"]),
        ten_crop_over_centre_seconds=crops["seconds"] / max(centre["seconds"], 1e-9),
        per_class=per_class_errors(centre["probabilities"], centre["labels"], names),
        lrn_gain_spread=spreads, lrn_images=int(len(lrn_images)))
    table = table2(result)
    result.write(run / rundir.EVAL_RECORD)
    write_tensorboard(run, best_model_step(run), result, table, centre, train_sample, names, settings)
    print(table)
    if spreads:
        varies = ", ".join(f"{name} {value:.1%}" for name, value in spreads.items())
        print(f"LRN's gain (output / input) varies across positions by {varies} (standard deviation / mean, the "
              f"first {len(lrn_images)} validation images)")
    print(f"{crops['crops']}-crop pass / centre pass: {result.ten_crop_over_centre_seconds:.1f}x the time "
          f"({crops['seconds']:.1f} s / {centre['seconds']:.1f} s for {result.centre.images} images)\n"
          f"wrote {run / rundir.EVAL_RECORD} and TensorBoard {run / rundir.EVAL_EVENTS} "
          f"(Scalars, Text, Images: {tags.EVAL}/*; Projector: fc7)", flush=True)
    return result


def pass_errors(evaluated: dict, crops: int) -> PassErrors:
    """The record of a pass (centre_pass's or ten_crop_pass's result): its errors, seconds and crops per image."""
    errors = errors_of(evaluated["probabilities"], evaluated["labels"])
    return PassErrors(errors.top1_error, errors.top5_error, errors.loss, errors.images, evaluated["seconds"], crops)


def feature_vectors(model: keras.Model):
    """The input of the last Dense layer, the vector the classifier separates: fc7 in AlexNet (section 6.1),
    the pooled features in ResNet, F6 in LeNet-5."""
    return weighted_layers(model)[-1].input


def centre_pass(features: keras.Model, dataset: tf.data.Dataset, keep: int) -> dict:
    """Probabilities and labels of every image, and fc7 vectors and thumbnails of the first `keep` images."""
    predict = tf.function(lambda x: features(x, training=False), reduce_retracing=True)
    probabilities, labels, fc7, thumbnails = [], [], [], []
    start = time.perf_counter()
    for images, batch_labels in dataset:
        p, f = predict(images)
        probabilities.append(p.numpy())
        labels.append(batch_labels.numpy())
        kept = sum(len(t) for t in thumbnails)
        if kept < keep:
            fc7.append(f.numpy()[: keep - kept])
            thumbnails.append(thumbnail(images[: keep - kept]))
    return {"probabilities": np.concatenate(probabilities), "labels": np.concatenate(labels),
            "fc7": np.concatenate(fc7), "thumbnails": np.concatenate(thumbnails),
            "seconds": time.perf_counter() - start}


def ten_crop_pass(model: keras.Model, encoded: tf.data.Dataset, resize_size: int, image_size: int,
                  images_per_batch: int, mirrors: bool = True) -> dict:
    """Softmax averaged over the ten crops of every image (section 6; five without mirrors), and the labels."""
    crops_per_image = 10 if mirrors else 5
    crops = encoded.map(lambda e, label: (ten_crops(e, resize_size, image_size, mirrors), tf.cast(label, tf.int32)),
                        num_parallel_calls=tf.data.AUTOTUNE)

    @tf.function(reduce_retracing=True)
    def predict(batch):  # (B, 10, S, S, 3) -> (B, classes): the ten crops of an image go through together
        flat = tf.reshape(batch, [-1, image_size, image_size, 3])
        probabilities = model(flat, training=False)
        return average_over_crops(probabilities, crops_per_image)

    batches = crops.batch(images_per_batch).prefetch(tf.data.AUTOTUNE).with_options(fixed_parallelism())
    probabilities, labels = [], []
    start = time.perf_counter()
    for batch, batch_labels in batches:
        probabilities.append(predict(batch).numpy())
        labels.append(batch_labels.numpy())
    return {"probabilities": np.concatenate(probabilities), "labels": np.concatenate(labels),
            "seconds": time.perf_counter() - start, "crops": crops_per_image}


def average_over_crops(probabilities, crops_per_image: int):
    """(B * crops, classes) softmax outputs, image by image -> (B, classes), each image's mean over its crops."""
    return tf.reduce_mean(tf.reshape(probabilities, [-1, crops_per_image, probabilities.shape[-1]]), axis=1)


def sample_features(features: keras.Model, data, image_size: int, batch: int, count: int) -> dict:
    """fc7 vectors, labels and thumbnails of `count` training images (training_sample's: eval crops)."""
    images = training_sample(data, image_size, batch, count)
    fc7, labels, thumbnails = [], [], []
    for batch_images, batch_labels in images:
        fc7.append(features(batch_images, training=False)[1].numpy())
        labels.append(batch_labels.numpy())
        thumbnails.append(thumbnail(batch_images))
    return {"fc7": np.concatenate(fc7), "labels": np.concatenate(labels), "thumbnails": np.concatenate(thumbnails)}


def thumbnail(images) -> np.ndarray:
    """uint8 (N, THUMBNAIL, THUMBNAIL, 3) copies of uint8 images."""
    small = tf.image.resize(tf.cast(images, tf.float32), [THUMBNAIL, THUMBNAIL], antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(small), 0, 255), tf.uint8).numpy()


def per_class_errors(probabilities: np.ndarray, labels: np.ndarray, names: list[str]) -> list[ClassError]:
    """The top-1 error of each class with validation images, worst first (errors_of's rule)."""
    missed = 1.0 - keras.ops.convert_to_numpy(top_k_hits(labels, probabilities, 1))
    rows = [ClassError(names[c], float(np.mean(missed[labels == c])), int(np.sum(labels == c)))
            for c in range(len(names)) if np.any(labels == c)]
    return sorted(rows, key=lambda row: (-row.top1_error, row.name))


def confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(true, predicted) image counts."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def most_confused(matrix: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` classes with the most misclassified images, as true or as predicted class."""
    off = matrix - np.diag(np.diag(matrix))
    return np.sort(np.argsort(-(off.sum(axis=0) + off.sum(axis=1)), kind="stable")[:count])


def nearest_neighbours(queries: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) indices of the k keys nearest to each query in Euclidean distance, nearest first."""
    distances = (np.sum(queries**2, axis=1)[:, None] - 2 * queries @ keys.T + np.sum(keys**2, axis=1)[None])
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def dataset_name(data: EvalData) -> str:
    """The data set's name as a reader knows it."""
    return data.name if data.source == "tfds" else f"{data.source} {data.dir}"


def table2_rows(result: Evaluation) -> list[tuple[str, float, float]]:
    """(model, top-1 error, top-5 error) of the paper's Table 2 layout: the published single-model figures, then
    this run's centre-crop and multi-crop rows."""
    name = dataset_name(result.data)
    return [*((label, *errors) for label, errors in PUBLISHED.items()),
            (f"this run, centre crop ({name})", result.centre.top1_error, result.centre.top5_error),
            (f"this run, {TEN_CROP_ROWS[result.ten_crop.crops]} ({name})", result.ten_crop.top1_error,
             result.ten_crop.top5_error)]


def table2_figure(result: Evaluation) -> bytes:
    """Table 2's layout as a PNG (table2_rows), for the report page and the docs."""
    rows = [[label, f"{top1:.2%}", f"{top5:.2%}"] for label, top1, top5 in table2_rows(result)]
    return figures.table_figure(["model", "top-1 error", "top-5 error"], rows, "Table 2 layout")


def table2(result: Evaluation) -> str:
    """The errors laid out like the paper's Table 2, the published single-model figures above this run's."""
    name = dataset_name(result.data)
    rows = table2_rows(result)
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'model':<{width}} | top-1 error | top-5 error |",
             f"|{'-' * (width + 2)}|-------------|-------------|"]
    lines += [f"| {label:<{width}} | {top1:>11.1%} | {top5:>11.1%} |" for label, top1, top5 in rows]
    lines.append(f"published figures: ILSVRC-2012 validation set (50,000 images); this run: {name}, "
                 f"{result.centre.images} validation images.")
    if not name.startswith(IMAGENET):
        lines.append("This data set is not ILSVRC-2012: the published rows and this run's are not comparable.")
    return "\n".join(lines)


def best_model_step(run: RunDir) -> int:
    """The training step of the run's best model: the end of its epoch (best.json, history.csv); 0 for an
    imported network, which has no training."""
    if not (run / rundir.BEST_RECORD).exists() or not (run / rundir.HISTORY).exists():
        return 0
    epoch = BestEpoch.read(run / rundir.BEST_RECORD).epoch
    return next((row.step for row in run.history() if row.epoch == epoch), 0)


def write_tensorboard(run: RunDir, step: int, result: Evaluation, table: str, centre: dict, train_sample: dict,
                      names: list[str], settings) -> None:
    """Scalars, the table, the confusion matrix, Figure 4 and the projector into run/eval/."""
    directory = run / rundir.EVAL_EVENTS
    writer = tf.summary.create_file_writer(str(directory))
    probabilities, labels = centre["probabilities"], centre["labels"]
    with writer.as_default(step=step):
        for name, errors in zip(tags.EVAL_PASSES, (result.centre, result.ten_crop), strict=True):
            for metric, value in ((tags.TOP1_ERROR, errors.top1_error), (tags.TOP5_ERROR, errors.top5_error),
                                  (tags.LOSS, errors.loss)):
                tf.summary.scalar(tags.evaluation(name, metric), value)
        tf.summary.text(tags.TABLE2, table)
        matrix = confusion(labels, probabilities.argmax(axis=1), len(names))
        shown = np.arange(len(names)) if len(names) <= CONFUSION_LIMIT else most_confused(matrix, CONFUSION_SHOWN)
        title = "confusion, validation, centre crop" + ("" if len(shown) == len(names) else
                                                       f" ({len(shown)} most confused classes)")
        figures.tensorboard_image(tags.CONFUSION, figures.confusion_matrix(
            matrix[np.ix_(shown, shown)], [names[i] for i in shown], title), step)
        count = min(settings.figure_images, len(labels))
        spread = np.linspace(0, len(centre["thumbnails"]) - 1, count).astype(int)  # across classes in folders
        top5 = [[(names[c], float(probabilities[i, c])) for c in np.argsort(-probabilities[i])[:5]] for i in spread]
        figures.tensorboard_image(tags.FIGURE4_TOP5, figures.top5_predictions(
            centre["thumbnails"][spread], [names[labels[i]] for i in spread], top5), step)
        kept = len(centre["fc7"])
        queries = np.linspace(0, kept - 1, min(settings.neighbour_queries, kept)).astype(int)
        nearest = nearest_neighbours(centre["fc7"][queries], train_sample["fc7"], settings.neighbours)
        figures.tensorboard_image(tags.FIGURE4_NEAREST, figures.nearest_neighbours_grid(
            centre["thumbnails"][queries], [names[labels[i]] for i in queries], train_sample["thumbnails"][nearest],
            [[names[train_sample["labels"][j]] for j in row] for row in nearest]), step)
    writer.close()
    shown = min(settings.projector_images, len(centre["fc7"]))
    write_projector(directory, centre["fc7"][:shown], [names[c] for c in labels[:shown]],
                    [names[c] for c in probabilities[:shown].argmax(axis=1)], centre["thumbnails"][:shown])
