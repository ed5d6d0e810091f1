import numpy as np
import pytest
from scipy import stats

from iqa_core.errors import IQAError
from iqa_core.evaluation.metrics import (
    MetricError,
    correlations,
    discretization_bound,
    discretize,
    krcc,
    logistic4,
    logistic4_fit,
    plcc,
    plcc_fitted,
    rmse,
    rmse_fitted,
    srcc,
)

RNG = np.random.default_rng(0)
PRED = RNG.normal(size=60)
MOS = 3 + PRED + RNG.normal(scale=0.7, size=60)


def test_correlations_match_scipy():
    assert srcc(PRED, MOS) == pytest.approx(stats.spearmanr(PRED, MOS).statistic)
    assert plcc(PRED, MOS) == pytest.approx(stats.pearsonr(PRED, MOS).statistic)
    assert krcc(PRED, MOS) == pytest.approx(stats.kendalltau(PRED, MOS).statistic)


def test_hand_computed_values():
    pred, mos = [1, 2, 3, 4], [1, 3, 2, 4]
    # one swapped neighbour pair: d^2 sums to 2 -> 1 - 6*2/(4*15); tau = (5 - 1)/6
    assert srcc(pred, mos) == pytest.approx(0.8)
    assert krcc(pred, mos) == pytest.approx(4 / 6)
    assert plcc(pred, mos) == pytest.approx(0.8)  # same centred vectors as the ranks
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))


def test_logistic_fit_recovers_known_curve():
    x = np.linspace(0, 1, 50)
    mos = logistic4(x, 4.5, 1.2, 0.4, 0.08)
    fit = logistic4_fit(x, mos)
    assert fit.kind == "logistic4"
    assert fit.params == pytest.approx((4.5, 1.2, 0.4, 0.08), rel=1e-4)
    assert plcc(x, mos) < 0.97  # the raw relation is visibly non-linear
    assert plcc_fitted(x, mos) == pytest.approx(1.0, abs=1e-9)
    assert rmse_fitted(x, mos) == pytest.approx(0.0, abs=1e-6)


def test_logistic_fit_is_scale_free_and_handles_negative_relation():
    x = np.linspace(0, 1, 50)
    mos = logistic4(x, 4.5, 1.2, 0.4, 0.08)
    # predictions on another scale, anti-correlated with MOS: the fit is perfect, the sign says "inverted"
    inverted = -1000 * x + 7
    assert logistic4_fit(inverted, mos).direction == -1.0
    assert plcc_fitted(inverted, mos) == pytest.approx(-1.0, abs=1e-9)
    assert correlations(inverted, mos)["plcc_fitted"] == pytest.approx(-1.0, abs=1e-9)


def test_plcc_fitted_has_the_sign_of_srcc_for_a_noisy_inverted_predictor():
    rng = np.random.default_rng(3)
    mos = rng.uniform(1, 5, 200)
    pred = -mos + rng.normal(0, 0.9, 200)
    out = correlations(pred, mos)
    assert out["srcc"] < -0.6
    assert out["plcc_fitted"] < -0.6 and out["plcc_fitted"] == pytest.approx(plcc_fitted(pred, mos))
    assert correlations(-pred, mos)["plcc_fitted"] == pytest.approx(-out["plcc_fitted"], abs=1e-3)


def test_fit_falls_back_to_linear_when_curve_fit_fails(monkeypatch):
    from scipy import optimize

    def fail(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(optimize, "curve_fit", fail)
    fit = logistic4_fit(PRED, MOS)
    assert fit.kind == "linear"
    assert plcc_fitted(PRED, MOS) == pytest.approx(plcc(PRED, MOS))


def test_correlations_drops_non_finite_pairs():
    pred = np.append(PRED, [np.nan, 1.0, np.inf])
    mos = np.append(MOS, [3.0, np.nan, 2.0])
    out = correlations(pred, mos)
    assert out["n"] == 60 and out["n_dropped"] == 3
    assert out["srcc"] == pytest.approx(srcc(PRED, MOS))
    assert out["plcc_fitted"] >= out["plcc"] - 1e-9
    keys = {"n", "n_dropped", "srcc", "plcc", "plcc_fitted", "krcc", "rmse_fitted", "fit"}
    assert set(out) == keys


@pytest.mark.parametrize(
    ("pred", "mos", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0], "at least 3"),
        ([1.0, np.nan, 2.0, 3.0], [1.0, 2.0, np.nan, 3.0], "at least 3"),
        ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "predicted scores are equal"),
        ([1.0, 2.0, 3.0], [4.0, 4.0, 4.0], "MOS values are equal"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], "3 predictions but 2"),
    ],
)
def test_clear_errors(pred, mos, message):
    with pytest.raises(MetricError, match=message) as info:
        correlations(pred, mos)
    assert isinstance(info.value, IQAError)


def _pearson(a, b):
    a, b = np.asarray(a, float) - np.mean(a), np.asarray(b, float) - np.mean(b)
    return (a @ b) / np.sqrt((a @ a) * (b @ b))


def test_discretization_bound_by_hand():
    s = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    # K=2: K*(s-min)/(max-min) = 0, .5, 1, 1.5, 2 -- two exact halves, so the rule shows.
    assert discretize(s, 2).tolist() == [0, 0, 1, 2, 2]  # half to even
    assert discretize(s, 2, "half_up").tolist() == [0, 1, 1, 2, 2]
    # half-even: levels 0,0,1,2,2 have ranks 1.5,1.5,3,4.5,4.5; s has ranks 1..5.
    ranks = [1.5, 1.5, 3, 4.5, 4.5]
    expected = (_pearson(ranks, [1, 2, 3, 4, 5]) + _pearson([0, 0, 1, 2, 2], s)) / 2
    # centred levels -1,-1,0,1,1 vs s -2,-1,0,1,2: cross 6, squares 4 and 10 (ranks: same shape)
    assert expected == pytest.approx(6 / np.sqrt(40))
    assert discretization_bound(s, 2) == pytest.approx(expected)
    # half-up: ranks 1,2.5,2.5,4.5,4.5 centred -2,-.5,-.5,1.5,1.5: cross 9, squares 9 and 10;
    # levels 0,1,1,2,2 centred -1.2,-.2,-.2,.8,.8: cross 5, squares 2.8 and 10.
    up = (_pearson([1, 2.5, 2.5, 4.5, 4.5], s) + _pearson([0, 1, 1, 2, 2], s)) / 2
    assert up == pytest.approx((9 / np.sqrt(90) + 5 / np.sqrt(28)) / 2)
    assert discretization_bound(s, 2, "half_up") == pytest.approx(up)


def test_discretization_bound_gives_k_plus_one_levels_and_grows_with_k():
    mos = np.random.default_rng(1).normal(size=2000)
    assert np.unique(discretize(mos, 7)).tolist() == list(range(8))
    bounds = [discretization_bound(mos, k) for k in (3, 5, 7, 9)]
    assert bounds == sorted(bounds) and 0.8 < bounds[0] < bounds[-1] < 1.0
    with pytest.raises(MetricError, match="equal"):
        discretization_bound([2.0, 2.0, 2.0], 5)
