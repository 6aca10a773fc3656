"""The offline demo data set: layout, sizes, determinism, and classes that colour alone cannot separate."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from alexnet.config import DataConfig
from alexnet.data import demo as demo_data


def _digests(root):
    """{relative path: sha256} of every JPEG under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


@pytest.mark.slow
def test_layout_sizes_and_determinism(tmp_path):
    first = demo_data.ensure_demo_data(DataConfig(dir=str(tmp_path / "a"), demo_images_per_class=4))
    second = demo_data.ensure_demo_data(DataConfig(dir=str(tmp_path / "b"), demo_images_per_class=4))
    assert len(demo_data.CLASSES) >= 10
    for split, count in (("train", 4), ("val", 1)):
        folders = sorted(p.name for p in (first / split).iterdir())
        assert folders == sorted(demo_data.CLASSES)
        assert all(len(list((first / split / c).glob("*.jpg"))) == count for c in folders)
    digests = _digests(first)
    assert digests == _digests(second), "two generations must write identical bytes"
    train = {d for p, d in digests.items() if p.startswith("train")}
    val = {d for p, d in digests.items() if p.startswith("val")}
    assert not train & val, "val images must not repeat train images"
    for path in first.rglob("*.jpg"):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            low, high = demo_data.SIDE_RANGE
            assert low <= image.width <= high and low <= image.height <= high


def test_complete_set_is_skipped_and_partial_one_redone(tmp_path, capsys):
    config = DataConfig(dir=str(tmp_path), demo_images_per_class=1)
    demo_data.ensure_demo_data(config)
    demo_data.ensure_demo_data(config)
    assert "skipping" in capsys.readouterr().out.splitlines()[-1]
    # An interrupted run leaves no manifest: everything is regenerated, stray files included.
    (tmp_path / demo_data.MANIFEST).unlink()
    stray = tmp_path / "train" / "disc" / "stray.jpg"
    stray.write_bytes(b"")
    demo_data.ensure_demo_data(config)
    assert not stray.exists() and (tmp_path / demo_data.MANIFEST).is_file()


def test_other_sources_generate_nothing(tmp_path, capsys):
    assert demo_data.ensure_demo_data(DataConfig(source="folder", dir=str(tmp_path / "x"))) is None
    assert not (tmp_path / "x").exists()
    assert "nothing to generate" in capsys.readouterr().out


@pytest.mark.slow
def test_class_mean_colours_vary_less_across_classes_than_within():
    per_class = 12
    means = np.array([
        [np.asarray(demo_data.render(name, np.random.default_rng([7, c, i])), np.float32).mean((0, 1))
         for i in range(per_class)]
        for c, name in enumerate(demo_data.CLASSES)
    ])  # (classes, images, RGB)
    across = means.mean(1).std(0)  # spread of the class mean colours
    within = means.std(1).mean(0)  # spread of image mean colours inside a class
    assert np.all(across < 0.6 * within), (across, within)
