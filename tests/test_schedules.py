"""Momentum schedules of thesis ch. 7 against their formulas."""

import math

import numpy as np
import pytest

import keras

from rnnzoo.optimizers import schedules


def test_nesterov_momentum_formula():
    schedule = schedules.NesterovMomentum(max_momentum=0.99, period=250)
    for step in [0, 1, 249, 250, 499, 500, 1000, 7000, 10**6]:
        expected = min(1 - 2 ** (-1 - math.log2(step // 250 + 1)), 0.99)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)


def test_exponential_progression_is_the_thesis_progression_at_doubling_steps():
    schedule = schedules.ExponentialProgression()
    assert schedule.boundaries == [3125 * 2**i for i in range(7)]
    got = [float(schedule(step)) for step in [0, 3124, *schedule.boundaries, 600_000]]
    expected = [0.8, 0.8, *schedules.THESIS_PROGRESSION[1:], 0.999]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_piecewise_constant_momentum_of_section_7_4_2():
    schedule = schedules.PiecewiseConstantMomentum(boundaries=[4000], values=[0.9, 0.98])
    got = [float(schedule(step)) for step in [0, 3999, 4000, 49_999]]
    np.testing.assert_allclose(got, [0.9, 0.9, 0.98, 0.98], rtol=1e-6)


def test_thesis_final_phase_divides_learning_rate_and_sets_momentum():
    learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay([50], [0.01, 0.005])
    lr, mu = schedules.thesis_final_phase(learning_rate, 0.995, total_steps=200)
    assert float(lr(179)) == pytest.approx(0.005)
    assert float(lr(180)) == pytest.approx(0.0005)
    assert float(mu(179)) == pytest.approx(0.995)
    assert float(mu(180)) == pytest.approx(0.99)


def test_schedules_serialise():
    for schedule in [
        schedules.NesterovMomentum(0.95, period=10),
        schedules.ExponentialProgression(first_step=7, factor=3.0),
        schedules.PiecewiseConstantMomentum([3, 9], [0.5, 0.9, 0.99]),
        schedules.FinalPhase(schedules.NesterovMomentum(), total_steps=100, value=0.99),
    ]:
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
        assert type(clone) is type(schedule)
        for step in [0, 5, 95, 1000]:
            assert float(clone(step)) == pytest.approx(float(schedule(step)))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: schedules.PiecewiseConstantMomentum([10], [0.9]), "needs 2 values"),
        (lambda: schedules.PiecewiseConstantMomentum([10, 5], [0.9, 0.9, 0.9]), "increasing"),
        (lambda: schedules.PiecewiseConstantMomentum([10], [0.9, 1.2]), "momentum in"),
        (lambda: schedules.NesterovMomentum(period=0), "period"),
        (lambda: schedules.FinalPhase(0.1, 100), "exactly one"),
        (lambda: schedules.ExponentialProgression(factor=1.0), "factor"),
    ],
)
def test_schedules_reject_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()
