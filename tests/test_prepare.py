"""`make prepare`: TFRecord shards that hold every good image with its own label, and colour statistics."""

import json

import numpy as np
import pytest

from alexnet.config import load_config
from alexnet.data.pipeline import dataset_info
from alexnet.data.preprocess import decode_rgb
from alexnet.data.records import colour_statistics, prepare, read_records
from alexnet.errors import ConfigError
from alexnet.model import load_colour_stats
from helpers import BAD_FILES, GOOD_FILES, RESIZE, SIZE, encode, folder_config, make_folder, mean_rgb, pipeline, solid


def test_colour_statistics_recover_a_known_covariance():
    rng = np.random.default_rng(0)
    eigvec, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # a random orthonormal basis
    eigval = np.array([400.0, 100.0, 25.0])
    cov = eigvec @ np.diag(eigval) @ eigvec.T
    pixels = rng.multivariate_normal([120, 110, 100], cov, size=200_000).round().clip(0, 255).astype(np.uint8)
    stats = colour_statistics(pixels)
    np.testing.assert_allclose(stats["eigval"], eigval / 255, rtol=0.03)  # IMAGENET_EIGVAL's convention
    np.testing.assert_allclose(stats["mean"], [120, 110, 100], atol=0.3)
    found = np.array(stats["eigvec"])
    np.testing.assert_allclose(np.abs(np.sum(found * eigvec, axis=0)), 1, atol=0.01)  # column j matches vector j


def unique_colour_folder(root) -> dict:
    """3 classes, 6 training and 3 validation images each, every image one colour of its own: {RGB: (split, label)}."""
    owners = {}
    for split, count in (("train", 6), ("val", 3)):
        for label in range(3):
            for i in range(count):
                rgb = (40 + 70 * label, 30 + 25 * i, 200 if split == "train" else 60)
                path = root / split / f"class{label}" / f"{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encode(solid("RGB", rgb, (70 + 5 * i, 50)), "JPEG", quality=95))
                owners[rgb] = (split, label)
    return owners


def test_every_record_keeps_its_own_label_on_both_splits(tmp_path):
    owners = unique_colour_folder(tmp_path / "images")
    out = tmp_path / "records"
    prepare(folder_config(tmp_path / "images", f"data.prepared_dir={out}").data)
    for split, count in (("train", 18), ("val", 9)):
        records = list(read_records(str(out), split).as_numpy_iterator())
        assert len(records) == count
        found = []
        for jpeg, label in records:
            colour = mean_rgb(decode_rgb(jpeg))
            rgb = min(owners, key=lambda c: np.abs(colour - c).max())
            assert np.abs(colour - rgb).max() <= 3 and owners[rgb] == (split, label), (split, colour, label)
            found.append(rgb)
        assert len(set(found)) == count  # every image once


@pytest.mark.slow
def test_prepare_writes_records_that_read_like_the_folder(tmp_path, capsys):
    make_folder(tmp_path / "images")
    out = tmp_path / "records"
    config = folder_config(tmp_path / "images", f"data.prepared_dir={out}", "data.colour_stats=true")
    result = prepare(config.data)
    output = capsys.readouterr().out
    assert result["written"] == len(GOOD_FILES) + 10 + 6 and result["skipped"] == 3 and result["dir"] == str(out)
    assert all(name in output for name in BAD_FILES) and "images written" in output
    info = json.loads((out / "dataset.json").read_text())
    assert info["counts"] == {"train": len(GOOD_FILES) + 10, "val": 6} and info["class_names"] == ["awkward", "plain"]
    assert sorted(p.name for p in out.iterdir() if "tmp" in p.name) == []
    assert len(info["files"]["train"]) == 8 and len(info["files"]["val"]) == 6  # no more shards than images

    # Every record is a resize_size square JPEG of a good image.
    records = list(read_records(str(out), "train").as_numpy_iterator())
    assert len(records) == len(GOOD_FILES) + 10
    assert all(decode_rgb(jpeg).shape == (RESIZE, RESIZE, 3) for jpeg, _ in records)

    # Validation through records matches validation through the folder, image by image.
    records_config = load_config(None, ["data.source=records", f"data.dir={out}", f"data.resize_size={RESIZE}",
                                        f"model.image_size={SIZE}", "train.global_batch_size=4"])
    assert dataset_info(records_config.data) == dataset_info(config.data)
    from_records = list(pipeline(records_config, "val").unbatch().as_numpy_iterator())
    from_folder = list(pipeline(config, "val").unbatch().as_numpy_iterator())
    assert [label for _, label in from_records] == [label for _, label in from_folder]
    for (a, _), (b, _) in zip(from_records, from_folder, strict=True):
        np.testing.assert_allclose(mean_rgb(a), mean_rgb(b), atol=2)
    train = list(pipeline(records_config, "train"))
    assert [len(labels) for _, labels in train] == [4] * ((len(GOOD_FILES) + 10) // 4)

    stats = load_colour_stats(str(out / "colour_stats.json"))
    assert len(stats["mean"]) == 3 and stats["eigval"] == sorted(stats["eigval"], reverse=True)
    assert 0 < stats["mean"][2] < stats["mean"][0] < 255  # the plain class (220, 200, 20) dominates


@pytest.mark.slow
def test_prepare_reruns_cleanly_and_records_shard_over_pipelines(tmp_path):
    make_folder(tmp_path / "images", with_bad=False)
    out = tmp_path / "records"
    data = folder_config(tmp_path / "images", f"data.prepared_dir={out}").data
    out.mkdir()
    (out / "train-00000-of-00099.tfrecord").write_bytes(b"stale shard of an older run")
    (out / "train-00003-of-00008.tfrecord.tmp").write_bytes(b"half-written shard of a killed run")
    first = prepare(data)
    second = prepare(data)
    assert first["written"] == second["written"] == len(GOOD_FILES) + 16 and second["skipped"] == 0
    info = json.loads((out / "dataset.json").read_text())
    assert sorted(p.name for p in out.glob("*.tfrecord*")) == sorted(info["files"]["train"] + info["files"]["val"])

    # 2 pipelines split the 8 train shards by file; 4 pipelines split the 6 val shards record by record.
    assert len(info["files"]["train"]) == 8 and len(info["files"]["val"]) == 6
    for split, pipelines in (("train", 2), ("val", 4)):
        parts = [list(read_records(str(out), split, pipelines, i).as_numpy_iterator())
                 for i in range(pipelines)]
        whole = list(read_records(str(out), split).as_numpy_iterator())
        assert sorted(sum(parts, [])) == sorted(whole)
        assert min(map(len, parts)) == len(whole) // pipelines  # no pipeline runs short of a balanced share


def test_prepare_refuses_records_as_a_source(tmp_path):
    with pytest.raises(ConfigError, match="already prepared"):
        prepare(load_config(None, ["data.source=records", f"data.dir={tmp_path}"]).data)
