"""Welch's t-test of benchmarks/mgrl_results.py against textbook values."""

import importlib.util
import math
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("mgrl_results", Path(__file__).parents[1] / "benchmarks" / "mgrl_results.py")
mgrl_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mgrl_results)


@pytest.mark.parametrize("t, df, p", [(2.0, 10, 0.07339), (4.303, 2, 0.05), (12.706, 1, 0.05), (1.96, 1e6, 0.05)])
def test_student_t_two_sided_tail(t, df, p):
    assert mgrl_results.student_t_sf2(t, df) == pytest.approx(p, abs=2e-4)


def test_welch_by_hand():
    # means 2 and 5.1667, variances 1 and 1.5833 over 3 each: se² = 0.8611, t = −3.4125
    t, df, p = mgrl_results.welch([1, 2, 3], [4, 5, 6.5])
    assert t == pytest.approx(-3.4125, abs=1e-4)
    assert df == pytest.approx(0.8611 ** 2 / ((1 / 3) ** 2 / 2 + (1.5833 / 3) ** 2 / 2), rel=1e-3)
    assert 0.02 < p < 0.04
    assert math.isnan(mgrl_results.welch([1.0], [2.0, 3.0])[0])
