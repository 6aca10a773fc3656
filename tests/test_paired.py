"""Paired statistics of the claims study against hand-computed examples."""

import math

import pytest

from alexnet.studies import paired


def test_six_seeds_all_the_papers_way_hold_with_the_smallest_p_six_seeds_allow():
    result = paired.paired_comparison([0.10] * 6, [0.11, 0.12, 0.13, 0.14, 0.15, 0.16], sign=+1)
    assert result.p_value == pytest.approx(2 / 64)  # only all-plus and all-minus are as extreme
    assert result.verdict == "holds" and result.mean_difference == pytest.approx(0.035)
    low, high = result.interval_95
    assert 0.01 <= low < 0.035 < high <= 0.06


def test_the_same_differences_the_other_way_are_reversed():
    result = paired.paired_comparison([0.2] * 6, [0.19, 0.18, 0.17, 0.16, 0.15, 0.14], sign=+1)
    assert result.verdict == "reversed" and result.p_value == pytest.approx(2 / 64)


def test_a_mixed_example_counted_by_hand():
    # Differences 3, 1, -1, 2, 4, 2 (sum 11 of |sum| 13): a sign pattern reaches |sum| >= 11 only by
    # flipping nothing or one of the two 1s, on either side of 0: 6 of the 64 patterns.
    result = paired.paired_comparison([0] * 6, [3, 1, -1, 2, 4, 2], sign=+1)
    assert result.p_value == pytest.approx(6 / 64)
    assert result.verdict == "not shown at this scale"


def test_effects_that_cancel_are_not_shown_and_say_what_they_rule_out():
    result = paired.paired_comparison([0.0] * 6, [0.01, -0.01, 0.02, -0.02, 0.005, -0.005], sign=+1)
    assert result.p_value == pytest.approx(1.0) and result.verdict == "not shown at this scale"
    # (t_0.975,5 + t_0.8,5) * sd / sqrt(6), sd = sqrt(10.5e-4 / 5) = 0.014491: 0.02066
    assert result.minimum_detectable_effect == pytest.approx((2.5706 + 0.9195) * 0.014491 / math.sqrt(6), rel=1e-3)


def test_three_seeds_can_show_nothing_however_consistent():
    result = paired.paired_comparison([0.05, 0.04, 0.23], [0.31, 0.26, 0.90], sign=+1)
    assert result.p_value == pytest.approx(2 / 8) and result.verdict == "not shown at this scale"
    assert result.minimum_detectable_effect == math.inf


def test_seeds_must_pair():
    with pytest.raises(ValueError, match="the same seeds"):
        paired.paired_comparison([0.1, 0.2], [0.1], sign=1)
