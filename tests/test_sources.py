"""Data sources: folder scanning with bad files and its cache, TFDS offline, the records' missing index."""

import json
import os
from pathlib import Path

import pytest

from alexnet.config import load_config
from alexnet.data import sources
from alexnet.data.pipeline import dataset_info, encoded_examples
from alexnet.errors import ConfigError, DataError
from helpers import BAD_FILES, GOOD_FILES, encode, folder_config, make_folder, solid


def test_bad_files_are_skipped_named_once_and_the_scan_is_cached(tmp_path, capsys, monkeypatch):
    make_folder(tmp_path)
    class_names, files, labels = sources.folder_files(str(tmp_path), "train")
    assert class_names == ["awkward", "plain"]
    assert len(files) == len(GOOD_FILES) + 10 and labels.count(1) == 5
    assert not any(Path(f).name in BAD_FILES for f in files)
    out = capsys.readouterr().out
    assert "skipping 3 unreadable files" in out and all(name in out for name in BAD_FILES)

    def no_rescan(_):
        raise AssertionError("rescanned although the file list did not change")

    monkeypatch.setattr(sources, "find_unreadable", no_rescan)
    assert sources.folder_files(str(tmp_path), "train")[1] == files
    out = capsys.readouterr().out
    assert "skipping 3 unreadable files" in out and "empty.jpg" not in out  # named once, counted again
    (tmp_path / "train" / "plain" / "new.jpg").write_bytes(encode(solid("RGB", (1, 2, 3)), "JPEG"))
    with pytest.raises(AssertionError, match="rescanned"):
        sources.folder_files(str(tmp_path), "train")


def test_scan_cache_is_written_atomically_and_a_corrupt_one_is_rescanned(tmp_path, capsys, monkeypatch):
    make_folder(tmp_path)
    cache = tmp_path / ".unreadable-train.json"
    files = sources.folder_files(str(tmp_path), "train")[1]
    assert json.loads(cache.read_text())["unreadable"] == sorted(
        str(tmp_path / "train" / "awkward" / name) for name in BAD_FILES)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    # A write interrupted before its rename leaves the previous cache whole.
    def dies(*args, **kwargs):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", dies)
    (tmp_path / "train" / "plain" / "new.jpg").write_bytes(encode(solid("RGB", (1, 2, 3)), "JPEG"))
    assert len(sources.folder_files(str(tmp_path), "train")[1]) == len(files) + 1
    assert "could not cache the scan result" in capsys.readouterr().out
    monkeypatch.undo()
    assert json.loads(cache.read_text())["unreadable"]  # the old cache, intact

    for corrupt in ('{"key": "abc", "unreadable": [', "[1, 2]", '{"key": 1}'):
        cache.write_text(corrupt)
        assert len(sources.folder_files(str(tmp_path), "train")[1]) == len(files) + 1
        assert json.loads(cache.read_text())["unreadable"]  # rescanned and rewritten


def test_missing_empty_or_unexpected_folders_say_what_is_expected(tmp_path):
    with pytest.raises(DataError, match=r"train/<class name>/<image>\.jpg"):
        dataset_info(folder_config(tmp_path / "nowhere").data)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="has no images"):
        dataset_info(folder_config(tmp_path).data)
    (tmp_path / "train" / "cat" / "a.jpg").write_bytes(encode(solid("RGB", (1, 2, 3)), "JPEG"))
    (tmp_path / "val" / "dog").mkdir(parents=True)
    with pytest.raises(DataError, match=r"classes not in the training split: \['dog'\]"):
        dataset_info(folder_config(tmp_path).data)


def test_tfds_source_offline_with_mock_data():
    import tensorflow_datasets as tfds

    data = load_config(None, ["data.source=tfds", "data.name=imagenette/320px-v2", "data.dir=/nonexistent"]).data
    with tfds.testing.mock_data(num_examples=10):
        info = dataset_info(data)  # val_split "val" is TFDS's "validation"
        assert (len(info.class_names), info.num_train, info.num_val) == (10, 10, 10)
        examples = list(encoded_examples(data, "val").as_numpy_iterator())
    assert len(examples) == 10  # mock_data gives every split (and every even_splits share) num_examples
    assert all(encoded[:2] == b"\xff\xd8" and 0 <= label < 10 for encoded, label in examples)  # still JPEG bytes


def test_tfds_without_a_name_and_imagenet2012_without_the_archives(tmp_path):
    with pytest.raises(ConfigError, match="data.source=tfds needs data.name"):
        dataset_info(load_config(None, ["data.source=tfds"]).data)
    data = load_config(None, ["data.source=tfds", "data.name=imagenet2012", f"data.dir={tmp_path}"]).data
    with pytest.raises(DataError, match=r"147,897,477,120 bytes.*6,744,924,160 bytes") as error:
        dataset_info(data)
    assert str(tmp_path / "downloads" / "manual") in str(error.value)


def test_records_without_their_index_say_how_to_write_them(tmp_path):
    with pytest.raises(DataError, match="write the records first with `make prepare`"):
        dataset_info(load_config(None, ["data.source=records", f"data.dir={tmp_path}"]).data)
