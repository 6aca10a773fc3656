"""`make eval`: the ten crops, error arithmetic, nearest neighbours, and what a tiny run's evaluation writes."""

import dataclasses
import json
from urllib.parse import quote

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from alexnet import rundir, tags
from alexnet.data.preprocess import ten_crop_offsets, ten_crops
from alexnet.metrics import errors_of
from alexnet.records import BestEpoch, ClassError, Errors, EvalData, Evaluation, PassErrors, provenance
from alexnet.rundir import RunDir
from alexnet.studies import evaluate
from helpers import all_tags, cli, http_get, scalars, tensorboard_server, wait_for


def position_png(side=256):
    """A lossless image whose pixel (y, x) is (x, y, 0): a crop's offset and mirroring read off its corners."""
    y, x = np.mgrid[:side, :side]
    return tf.io.encode_png(np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)).numpy()


def test_ten_crops_are_the_corners_and_centre_of_the_256_square_then_their_mirrors():
    assert ten_crop_offsets(256, 227) == [(0, 0), (0, 29), (29, 0), (29, 29), (14, 14)]
    for crops in (ten_crops(position_png(), 256, 227),
                  next(iter(tf.data.Dataset.from_tensors(position_png()).map(lambda e: ten_crops(e, 256, 227))))):
        crops = crops.numpy().astype(int)
        assert crops.shape == (10, 227, 227, 3)
        for i, (y, x) in enumerate(ten_crop_offsets(256, 227)):
            plain, mirrored = crops[i], crops[i + 5]
            assert (plain[0, 0, 1], plain[0, 0, 0], plain[0, -1, 0]) == (y, x, x + 226)
            np.testing.assert_array_equal(mirrored, plain[:, ::-1])
    # Without mirrors (a run trained with data.flip=false): the five patches alone.
    np.testing.assert_array_equal(ten_crops(position_png(), 256, 227, mirrors=False), crops[:5])


def test_the_prediction_is_the_mean_of_the_ten_softmaxes():
    rng = np.random.default_rng(0)
    per_crop = rng.dirichlet(np.ones(4), size=(3, 10)).astype(np.float32)  # 3 images x 10 crops x 4 classes
    averaged = evaluate.average_over_crops(tf.constant(per_crop.reshape(30, 4)), crops_per_image=10).numpy()
    np.testing.assert_allclose(averaged, per_crop.mean(axis=1), rtol=1e-6)


def test_errors_per_class_errors_and_confusion_on_a_hand_made_example():
    probabilities = np.array([
        [0.5, 0.2, 0.1, 0.1, 0.05, 0.05],  # true 0: first -> right
        [0.1, 0.2, 0.3, 0.05, 0.15, 0.2],  # true 1: 3rd (0.2 ties with class 5, counted above it)
        [0.05, 0.1, 0.15, 0.2, 0.25, 0.25],  # true 0: last -> wrong in top-5
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.5],  # true 5: right
    ])
    labels = np.array([0, 1, 0, 5])
    result = errors_of(probabilities, labels)
    assert result == Errors(top1_error=0.5, top5_error=0.25, images=4,
                            loss=pytest.approx(-np.mean(np.log([0.5, 0.2, 0.05, 0.5]))))
    names = ["a", "b", "c", "d", "e", "f"]
    assert evaluate.per_class_errors(probabilities, labels, names) == [
        ClassError("b", 1.0, 1), ClassError("a", 0.5, 2), ClassError("f", 0.0, 1)]
    matrix = evaluate.confusion(labels, probabilities.argmax(axis=1), 6)
    assert matrix[0, 0] == 1 and matrix[0, 4] == 1 and matrix[1, 2] == 1 and matrix[5, 5] == 1 and matrix.sum() == 4
    assert list(evaluate.most_confused(matrix, 3)) == [0, 1, 2]


def test_nan_and_tied_outputs_score_as_errors_not_as_hits():
    labels = np.array([0, 1, 2])
    nan = np.full((3, 10), np.nan)
    assert errors_of(nan, labels).top1_error == 1.0 and errors_of(nan, labels).top5_error == 1.0
    uniform = np.full((3, 10), 0.1)  # every class tied, as a network with fc8 at 0 starts
    assert errors_of(uniform, labels).top5_error == 1.0
    one_hot_tie = np.zeros((1, 10))
    one_hot_tie[0, 0] = 1.0
    # [1, 0, ..., 0] with the true class at 1: nine classes tie at 0 with it
    assert errors_of(one_hot_tie, np.array([1])).top5_error == 1.0
    assert errors_of(one_hot_tie, np.array([0])).top1_error == 0.0
    with_inf = np.array([[0.9, 0.1, np.inf]])
    assert errors_of(with_inf, np.array([0])).top1_error == 1.0
    assert evaluate.per_class_errors(uniform, labels, list("abcdefghij"))[0].top1_error == 1.0


def test_nearest_neighbours_on_a_hand_made_embedding():
    keys = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-4.0, 0.0]])
    queries = np.array([[0.2, 0.1], [9.0, 1.0]])
    # (9, 1): (10, 0) at 1.4, (1, 1) at 8, (0, 0) at 9.06, (0, 3) at 9.2, (-4, 0) at 13.04
    assert evaluate.nearest_neighbours(queries, keys, 3).tolist() == [[0, 3, 2], [1, 3, 0]]


def test_table2_names_the_data_and_says_when_rows_are_not_comparable():
    def evaluation(data, crops=10):
        errors = PassErrors(0.25, 0.05, 1.0, 370, 1.0, 1)
        return Evaluation(provenance(), "run", data, errors, dataclasses.replace(errors, crops=crops), 1.0, [], {}, 0)

    folder = EvalData("folder", None, "data/demo", "val")
    table = evaluate.table2(evaluation(folder))
    lines = table.splitlines()
    assert any("paper, 1 CNN" in line and "40.7%" in line and "18.2%" in line for line in lines)
    assert any("torchvision" in line and "43.5%" in line and "20.9%" in line for line in lines)
    assert any("this run, centre crop" in line and "25.0%" in line and "5.0%" in line for line in lines)
    assert "this run, 10 crops (folder data/demo)" in table and "not comparable" in table
    assert "not comparable" not in evaluate.table2(evaluation(EvalData("tfds", "imagenet2012", "data/tfds", "val")))
    table = evaluate.table2(evaluation(folder, crops=5))
    assert "this run, 5 crops, no mirrors (trained without flips) (folder data/demo)" in table


def events(directory):
    """{tag: [summary values]} of the event files directly in directory."""
    found = {}
    for path in directory.glob(rundir.EVENT_FILES):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(value)
    return found


@pytest.mark.slow
def test_eval_of_a_tiny_run_writes_json_tensorboard_figures_and_projector(tiny_run, small_data):
    code, out, err = cli(["eval", "--logs", str(tiny_run.parent), "--run", tiny_run.name, "eval.train_sample=40",
                          "eval.projector_images=20"])
    assert code == 0, out + err
    assert "this run, 10 crops" in out and "not comparable" in out and "10-crop pass / centre pass" in out
    result = RunDir(tiny_run).evaluation()
    best = BestEpoch.read(tiny_run / rundir.BEST_RECORD)
    assert result.centre.top1_error == pytest.approx(best.val_top1_error)  # the training's own figure
    assert (result.centre.crops, result.ten_crop.crops, result.run) == (1, 10, tiny_run.name)
    for passed in (result.centre, result.ten_crop):
        assert passed.images == 30 and passed.seconds > 0
        assert 0 <= passed.top5_error <= passed.top1_error <= 1
    assert result.ten_crop_over_centre_seconds == pytest.approx(result.ten_crop.seconds / result.centre.seconds)
    per_class = result.per_class
    assert sum(row.images for row in per_class) == 30 and len(per_class) == 10
    # LRN normalises in the tiny network too: its gain varies across positions (measured on the validation
    # images: lrn1 4.2%, lrn2 0.01%, where float32 rounding of a constant gain gives about 1e-7).
    spread = result.lrn_gain_spread
    assert result.lrn_images == 30 and spread["lrn1"] > 0.01 and spread["lrn2"] > 1e-5
    assert f"varies across positions by lrn1 {spread['lrn1']:.1%}, lrn2 {spread['lrn2']:.1%}" in out
    assert [row.top1_error for row in per_class] == sorted((row.top1_error for row in per_class), reverse=True)

    directory = tiny_run / rundir.EVAL_EVENTS
    written = events(directory)
    series = scalars(directory)
    centre_top1 = tags.evaluation("centre", tags.TOP1_ERROR)
    assert series[centre_top1][0][1] == pytest.approx(result.centre.top1_error)
    assert series[tags.evaluation("ten_crop", tags.TOP5_ERROR)][0][1] == pytest.approx(result.ten_crop.top5_error)
    assert series[centre_top1][0][0] == 2  # at the best model's step (2 steps of training)
    table = tf.make_ndarray(written[tags.TABLE2][0].tensor).item().decode()
    assert "this run, centre crop" in table
    for tag in (tags.CONFUSION, tags.FIGURE4_TOP5, tags.FIGURE4_NEAREST):
        width, height, png = tf.make_ndarray(written[tag][0].tensor)[:3]
        assert int(width) > 200 and int(height) > 100 and png[:4] == b"\x89PNG", tag
    assert tags.FIGURE4_TOP5 in all_tags(directory)

    # The Projector tab as TensorBoard serves it: the run is listed, its fc7 vectors, labels and sprite load.
    url = tensorboard_server(tiny_run.parent)
    run = f"{tiny_run.name}/{rundir.EVAL_EVENTS}"
    assert run in wait_for(lambda: json.loads(http_get(f"{url}data/plugin/projector/runs")))
    info = json.loads(http_get(f"{url}data/plugin/projector/info?run={quote(run)}"))
    (embedding,) = info["embeddings"]
    assert embedding["tensorShape"] == [20, 256]  # the tiny model's fc7 is 4096 / 16 wide
    vectors = np.frombuffer(http_get(f"{url}data/plugin/projector/tensor?run={quote(run)}&name="
                                     f"{quote(embedding['tensorName'])}"), np.float32).reshape(20, 256)
    assert np.all(np.isfinite(vectors)) and vectors.std() > 0
    metadata = http_get(f"{url}data/plugin/projector/metadata?run={quote(run)}&name="
                        f"{quote(embedding['tensorName'])}").decode().splitlines()
    assert metadata[0] == "class\tpredicted" and len(metadata) == 21
    sprite = tf.io.decode_png(http_get(f"{url}data/plugin/projector/sprite_image?run={quote(run)}&name="
                                       f"{quote(embedding['tensorName'])}"))
    assert sprite.shape == (5 * 64, 5 * 64, 3) and embedding["sprite"]["singleImageDim"] == [64, 64]


@pytest.mark.slow
def test_eval_reads_prepared_records_of_the_same_data(tiny_run, small_data, tmp_path):
    from alexnet.config import load_config
    from alexnet.data.records import prepare

    records = tmp_path / "records"
    prepare(load_config(None, [f"data.dir={small_data}", "data.resize_size=74", "model.image_size=67",
                               f"data.prepared_dir={records}", "data.demo_images_per_class=12"]).data)
    result = evaluate.evaluate_run(tiny_run, ["data.source=records", f"data.dir={records}", "eval.train_sample=20",
                                              "eval.projector_images=10"])
    assert result.centre.images == result.ten_crop.images == 30
    assert result.data.source == "records"
    best = BestEpoch.read(tiny_run / rundir.BEST_RECORD)
    # The records hold the same images re-encoded once as JPEG: the errors barely move, if at all.
    assert abs(result.centre.top1_error - best.val_top1_error) <= 2 / 30
