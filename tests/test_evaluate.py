from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fewpick.errors import InputError
from fewpick.evaluate import candidate_pairs, counts_at, evaluate, match_points, pr_curve
from fewpick.io import make_picks


def test_perfect_picks():
    t = make_picks("m", [10, 50, 90], [10, 50, 90])
    p = make_picks("m", [11, 49, 90], [10, 51, 92], score=[0.9, 0.8, 0.7])
    r = evaluate(p, t, radius=5)
    assert r["auprc"] == pytest.approx(1.0)
    assert r["best"]["f1"] == 1.0 and r["best"]["threshold"] == pytest.approx(0.7)


def test_hand_computed_average_precision():
    # truths at x=0,100,200,300; picks by score: hit, miss, hit, hit, miss
    t = make_picks("m", [0, 100, 200, 300], [0, 0, 0, 0])
    p = make_picks("m", [1, 500, 101, 199, 700], [0, 0, 0, 0, 0], score=[5, 4, 3, 2, 1])
    c = pr_curve(p, t, radius=5)
    np.testing.assert_allclose(c.precision, [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(c.recall, [0.25, 0.25, 0.5, 0.75, 0.75])
    # AP = 0.25*1 + 0 + 0.25*(2/3) + 0.25*(3/4) + 0
    assert c.auprc == pytest.approx(0.25 + 0.25 * 2 / 3 + 0.25 * 0.75)
    r = evaluate(p, t, radius=5, threshold=2.5)
    assert r["at_threshold"]["tp"] == 2 and r["at_threshold"]["n_pred"] == 3
    assert r["best"]["f1"] == pytest.approx(2 * 0.75 * 0.75 / 1.5)


def test_duplicates_count_once_and_ties_are_grouped():
    t = make_picks("m", [10, 60], [10, 10])
    p = make_picks("m", [10, 11, 60], [10, 10, 10], score=[1.0, 1.0, 0.5])
    c = pr_curve(p, t, radius=3)
    # first threshold (the tie at 1.0) admits both duplicates: 1 TP of 2 picks
    np.testing.assert_allclose(c.thresholds, [1.0, 0.5])
    np.testing.assert_allclose(c.precision, [0.5, 2 / 3])
    np.testing.assert_allclose(c.recall, [0.5, 1.0])


def test_empty_predictions_and_empty_truth():
    t = make_picks("m", [10], [10])
    r = evaluate(make_picks("m", [], []), t, radius=5)
    assert r["auprc"] == 0 and r["best"] is None and r["all_picks"]["f1"] == 0
    with pytest.raises(InputError, match="holds no particles"):
        evaluate(t, make_picks("m", [], []), radius=5)
    with pytest.raises(InputError, match="radius"):
        evaluate(t, t)


def test_radius_boundary_and_border_picks():
    t = make_picks("m", [0.0, 50.0], [0.0, 0.0])
    p = make_picks("m", [-5.0, 55.001], [0.0, 0.0], score=[1, 1])  # exactly 5 px off: match; 5.001: no
    r = evaluate(p, t, radius=5)
    assert r["all_picks"]["tp"] == 1


def test_optimal_assignment_beats_greedy():
    # pick A (best score) lies between both truths; pick B reaches only the right truth
    t = make_picks("m", [0.0, 2.0], [0.0, 0.0])
    p = make_picks("m", [1.9, 3.5], [0.0, 0.0], score=[0.9, 0.8])
    pi, tj = match_points(p[["x", "y"]].to_numpy(), t[["x", "y"]].to_numpy(), radius=2.0)
    assert len(pi) == 2 and dict(zip(pi, tj)) == {0: 0, 1: 1}
    c = pr_curve(p, t, radius=2.0)
    assert list(c.tp) == [1, 2]  # greedy nearest-first would leave B unmatched


def test_box_protocol_iou_threshold():
    d = 30.0
    t = make_picks("m", [100.0], [100.0])
    # an x offset of s gives IoU (d - s) / (d + s): 0.5 exactly at s = d/3
    assert evaluate(make_picks("m", [100 + d / 3 - 0.01], [100.0]), t, box=d)["all_picks"]["tp"] == 1
    assert evaluate(make_picks("m", [100 + d / 3 + 0.01], [100.0]), t, box=d)["all_picks"]["tp"] == 0
    pi, _, _ = candidate_pairs(np.array([[108.0, 108.0]]), np.array([[100.0, 100.0]]), box=d)
    # overlap 22*22=484, IoU = 484 / (1800 - 484) = 0.368
    assert len(pi) == 0


def test_3d_matching_and_micrograph_separation():
    t = pd.concat([make_picks("tomoA", [10], [10], z=[10]), make_picks("tomoB", [10], [10], z=[40])])
    p = pd.concat([make_picks("tomoA.mrc", [10], [10], z=[40], score=[1.0]),  # right xy, wrong z
                   make_picks("tomoB.mrc", [11], [10], z=[41], score=[0.5])])
    r = evaluate(p, t, radius=5)
    assert r["dimensions"] == 3 and r["all_picks"]["tp"] == 1 and r["n_pred"] == 2
    q = make_picks("tomoA", [10], [10], z=[40])
    q["micrograph"] = "tomoB"  # the same point on the other tomogram matches there
    assert evaluate(q, t, radius=5)["all_picks"]["tp"] == 1


def test_picks_on_uncovered_micrographs_are_reported_and_ignored():
    t = make_picks("m1", [10], [10])
    p = pd.concat([make_picks("m1", [10], [10], score=[1]), make_picks("other", [10], [10], score=[2])])
    r = evaluate(p, t, radius=3)
    assert r["n_pred_ignored"] == 1 and r["auprc"] == 1.0


def test_curve_agrees_with_assignment_at_every_threshold():
    r = np.random.default_rng(5)
    t = make_picks("m", r.uniform(0, 200, 60), r.uniform(0, 200, 60))
    p = make_picks("m", r.uniform(0, 200, 90), r.uniform(0, 200, 90), score=r.normal(size=90))
    c = pr_curve(p, t, radius=12)
    for k in range(0, len(c.thresholds), 7):
        assert counts_at(p, t, c.thresholds[k], radius=12).tp == c.tp[k]


def test_duplicates_count_a_particle_picked_twice_once_per_extra_pick():
    from fewpick.evaluate import duplicates

    truth = make_picks("m", [100.0, 200.0, 300.0], [100.0, 100.0, 100.0])
    picks = make_picks("m", [101.0, 96.0, 203.0, 199.0, 202.0, 500.0], [100.0] * 6,
                       score=[0.9, 0.8, 0.7, 0.6, 0.2, 0.5])
    d = duplicates(picks, truth, radius=10)
    assert d == {"n_pred": 6, "duplicates": 3, "rate": 0.5, "particles": 2}
    at = duplicates(picks, truth, radius=10, threshold=0.55)  # the 0.2 pick and the stray 0.5 one left out
    assert at["n_pred"] == 4 and at["duplicates"] == 2 and at["particles"] == 2
    report = evaluate(picks, truth, radius=10, threshold=0.55)
    assert report["duplicates"] == at
