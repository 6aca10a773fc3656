"""The real-image check set: the UCI digit scans split by class, rendered as photo-like JPEGs, deterministically."""

import numpy as np
import pytest

from alexnet.data import digits as digits_data
from alexnet.data.demo import SIDE_RANGE


@pytest.fixture(scope="module")
def scans():
    return digits_data.load_scans()


def test_the_split_is_stratified_disjoint_and_complete(scans):
    images, labels = scans
    assert images.shape == (1797, 8, 8) and images.min() >= 0 and images.max() == 1
    split = digits_data.split_indices(labels)
    assert (len(split["train"]), len(split["val"])) == (1438, 359)
    assert not set(split["train"]) & set(split["val"])
    assert sorted([*split["train"], *split["val"]]) == list(range(1797))
    for digit in range(10):
        kept = np.sum(labels[split["val"]] == digit) / np.sum(labels == digit)
        assert 0.19 < kept < 0.21, (digit, kept)  # every digit keeps a fifth of its scans for validation
    assert np.array_equal(digits_data.split_indices(labels)["val"], split["val"])


def test_a_rendered_digit_is_a_small_dark_mark_on_light_paper_inside_the_central_square(scans):
    images, _ = scans
    for index in range(0, 1797, 300):
        first = np.asarray(digits_data.render(images[index], np.random.default_rng([7, index])), np.float32)
        again = np.asarray(digits_data.render(images[index], np.random.default_rng([7, index])), np.float32)
        np.testing.assert_array_equal(first, again)
        height, width, _ = first.shape
        assert SIDE_RANGE[0] <= min(height, width) and max(height, width) <= SIDE_RANGE[1]
        luminance = first.mean(axis=2)
        ink = luminance < np.median(luminance) - 60
        assert 0.001 < ink.mean() < 0.08, ink.mean()  # a small object
        side = min(height, width)
        rows, columns = np.nonzero(ink)
        top, left = (height - side) // 2, (width - side) // 2
        assert top <= rows.min() and rows.max() < top + side and left <= columns.min() and columns.max() < left + side
        assert np.median(luminance) > 150  # light paper
