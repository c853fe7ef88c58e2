from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from scipy.spatial.distance import cdist

from fewpick.ops.peaks import ball, ball_maximum, greedy_keep, merge_close, nms, rank_close_last, scores_near
from fewpick.ops.thresholds import background_cut, count_scoring_like, threshold_gmm, threshold_logits


def _bumps(shape, centres, heights, sigma=2.0):
    grids = np.indices(shape).astype(float)
    out = np.zeros(shape, np.float32)
    for c, h in zip(centres, heights):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        out += h * np.exp(-d2 / (2 * sigma**2))
    return out


def test_ball_footprints():
    assert ball(1, 2).sum() == 5
    assert ball(2, 2).sum() == 13
    assert ball(1, 3).sum() == 7


@pytest.mark.parametrize("shape,radius", [((37, 53), 1.0), ((37, 53), 1.5), ((37, 53), 4.5), ((40, 41), 9.0),
                                          ((13, 21, 17), 2.0), ((13, 21, 17), 3.3)])
def test_ball_maximum_is_the_maximum_filter_over_the_ball(shape, radius):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    x.flat[7] = -np.inf
    ref = ndi.maximum_filter(x, footprint=ball(radius, x.ndim), mode="constant", cval=-np.inf)
    assert np.array_equal(ball_maximum(x, radius), ref)


def test_greedy_keep_is_take_the_best_and_suppress():
    rng = np.random.default_rng(1)
    for n, radius, ndim in [(400, 3.0, 2), (2000, 5.0, 2), (600, 2.5, 3)]:
        coords = np.unique(rng.integers(0, 60, size=(n, ndim)), axis=0).astype(float)
        rng.shuffle(coords)  # their order is the ranking
        near = cdist(coords, coords) <= radius
        expected = np.zeros(len(coords), bool)
        for i in range(len(coords)):  # the rule written out: kept unless a kept better one is near
            expected[i] = not np.any(expected[:i] & near[i, :i])
        got = greedy_keep(coords, radius)
        assert np.array_equal(got, expected) and 0 < got.sum() < len(coords)


def test_merge_close_replaces_each_chain_of_close_points_by_its_mean():
    pts = np.array([[10.0, 0, 0], [0, 0, 0], [11.5, 0, 0], [1, 0, 0], [2, 0, 0], [30, 0, 0]])
    # 0–1–2 (links of 1) and 10–11.5 (1.5) join; 30 stays alone; in the order of each group's first point
    assert np.allclose(merge_close(pts, 2.0), [[10.75, 0, 0], [1, 0, 0], [30, 0, 0]])
    assert np.allclose(merge_close(pts, 1.2), [[10, 0, 0], [1, 0, 0], [11.5, 0, 0], [30, 0, 0]])
    assert merge_close(pts[:1], 5.0).tolist() == [[10.0, 0, 0]] and merge_close(np.zeros((0, 3)), 1.0).shape == (0, 3)


def test_nms_2d_finds_peaks_in_order_and_suppresses_close_weaker_ones():
    m = _bumps((100, 120), [(20, 30), (70, 90), (24, 33), (60, 20)], [5.0, 3.0, 4.0, 1.0])
    coords, scores = nms(m, radius=10, threshold=0.5)
    # (24,33) is 5 px from the stronger (20,30): suppressed
    assert [tuple(c) for c in coords] == [(20, 30), (70, 90), (60, 20)]
    assert scores[0] == pytest.approx(m[20, 30]) and np.all(np.diff(scores) <= 0)
    coords, _ = nms(m, radius=3, threshold=0.5)
    assert len(coords) == 4  # a smaller radius keeps the neighbour
    coords, _ = nms(m, radius=10, threshold=2.0)
    assert len(coords) == 2
    coords, _ = nms(m, radius=10, max_picks=1)
    assert len(coords) == 1
    coords, _ = nms(m, radius=10, threshold=0.5, border=25)
    assert [tuple(c) for c in coords] == [(70, 90)]  # the others lie within 25 px of an edge


def test_nms_handles_plateaus_nans_and_3d():
    m = np.zeros((30, 30), np.float32)
    m[10:13, 10:13] = 1.0  # a flat plateau gives one pick
    m[0, 0] = np.nan
    coords, scores = nms(m, radius=4, threshold=0.5)
    assert len(coords) == 1 and scores[0] == 1.0
    v = _bumps((20, 40, 40), [(5, 10, 10), (15, 30, 30), (6, 12, 11)], [2.0, 1.5, 1.0])
    coords, _ = nms(v, radius=5, threshold=0.2)
    assert [tuple(c) for c in coords] == [(5, 10, 10), (15, 30, 30)]


def test_close_peaks_are_ranked_after_every_other_and_kept():
    # picks 10 px apart with a radius of 12: the second and fourth follow the others, scored down by the scores'
    # spread plus one (below the weakest); the third is 30 px from the first and stays where it was; the fifth is
    # close only to one ranked last
    coords = np.array([[0, 0], [0, 10], [0, 30], [0, 38], [0, 48]], float)
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    c, s = rank_close_last(coords, scores, 12.0)
    assert c[:, 1].tolist() == [0, 30, 48, 10, 38]
    assert s.tolist() == [5.0, 3.0, 1.0, -1.0, -3.0]
    for radius in (0.0, 5.0):  # nothing within the radius: nothing moves
        same_c, same = rank_close_last(coords, scores, radius)
        assert np.array_equal(same_c, coords) and same.tolist() == scores.tolist()
    _, _, close = rank_close_last(coords, scores, 12.0, with_mask=True)
    assert close.tolist() == [False, False, False, True, True]


def test_a_count_never_keeps_a_peak_ranked_last_for_closeness():
    """A count asking for more picks than there are peaks away from better ones keeps those only; a score low
    enough still reaches the close ones; a count set on images picked together (its score) cuts the same way."""
    from fewpick.pickers.threshold import Count, Fixed, select_peaks

    coords = np.array([[0, 0], [0, 10], [0, 30], [0, 38], [0, 48]], float)
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0])

    def pick(t):
        return select_peaks(coords, scores, t, rule=np.median, close_radius=12.0)[0][:, 1].tolist()

    assert pick(Count(2)) == [0, 30]
    assert pick(Count(5)) == [0, 30, 48]
    assert pick(Count(5, score=-np.inf)) == [0, 30, 48]
    assert pick(Count(5, score=2.0)) == [0, 30]
    assert pick(Fixed(-10.0)) == [0, 30, 48, 10, 38]


def test_each_point_gets_the_score_of_its_nearest_peak_within_the_radius():
    peaks = np.array([[0.0, 0.0], [10.0, 0.0], [30.0, 30.0]])
    scores = np.array([1.0, 2.0, 3.0])
    points = np.array([[1.0, 1.0], [9.0, 0.0], [20.0, 20.0], [31.0, 29.0]])
    assert scores_near(peaks, scores, points, 3.0).tolist() == [1.0, 2.0, 3.0]  # (20, 20) has none within 3
    assert scores_near(peaks, scores, points, 0.5).tolist() == []
    assert scores_near(peaks[:0], scores[:0], points, 3.0).tolist() == []


def test_particles_are_counted_from_a_random_sample_of_their_scores():
    rng = np.random.default_rng(0)
    # three images: 300 background peaks below 1, and 40, 50, 60 particles scoring 2 to 3
    images = [np.concatenate([rng.uniform(0, 1, 300), rng.uniform(2, 3, n)]) for n in (40, 50, 60)]
    sample = rng.uniform(2, 3, 200)  # labelled particles: a random sample of the particles' scores
    assert count_scoring_like(images, sample, 0.1) == pytest.approx(50, rel=0.05)  # the median image's
    # a sample of the best particles only counts the particles scoring as they do: those above 2.55, scaled
    assert count_scoring_like(images, rng.uniform(2.5, 3, 200), 0.1) == pytest.approx(50 * 0.45 / 0.9, rel=0.15)


def test_threshold_gmm_separates_two_populations_and_keeps_one():
    r = np.random.default_rng(0)
    noise = r.normal(1.0, 0.4, 400)
    particles = r.normal(6.0, 0.8, 100)
    t = threshold_gmm(np.concatenate([noise, particles]))
    assert 2.0 < t < 4.5
    crowded = r.normal(1.5, 0.5, 200)  # one population: keep nearly everything
    t1 = threshold_gmm(crowded)
    assert (crowded >= t1).mean() > 0.95


def test_logit_scores_of_mostly_background_are_cut_above_the_background_not_kept_as_a_crowd():
    """Log-odds scores (the general model's): 3,000 background peaks and 100 particles form one population to a
    two-Gaussian mixture; the median peak is background (a negative logit), so the cut rises above the
    background's tail instead of keeping nearly every peak as one crowded population. Where the median peak is a
    particle the crowded reading stands, as :func:`threshold_gmm` makes it."""
    r = np.random.default_rng(1)
    background, particles = r.normal(-3.0, 2.0, 3000), r.normal(5.0, 1.0, 100)
    scores = np.concatenate([background, particles])
    assert (scores >= threshold_gmm(scores)).sum() > 2500  # the crowded reading: nearly everything
    t = threshold_logits(scores)
    kept, right = (scores >= t).sum(), (particles >= t).sum()
    assert 80 <= kept <= 200 and right >= 0.9 * 100 and right >= 0.5 * kept, (kept, right)
    assert background_cut(scores) == t
    crowded = r.normal(1.5, 0.5, 200)
    assert threshold_logits(crowded) == threshold_gmm(crowded)
    # pure background: at most a few chance peaks of its far tail pass
    noise = r.normal(-3.0, 2.0, 3000)
    assert (noise >= threshold_logits(noise)).sum() <= 0.005 * len(noise)


def test_logit_scores_in_two_groups_that_both_look_like_background_are_cut_above_the_background():
    """A sparse micrograph whose background peaks fall into two clear groups (flat ice and textured areas, say),
    both of negative log-odds, with a few particles above: the upper group is background too, and the cut rises
    above it rather than splitting the two backgrounds and keeping the upper one whole. Where the upper group
    looks like particles (positive log-odds), the mixture's cut stands."""
    r = np.random.default_rng(2)
    flat, textured, particles = r.normal(-3.5, 0.7, 1200), r.normal(-0.5, 0.9, 900), r.normal(5.0, 1.0, 40)
    scores = np.concatenate([flat, textured, particles])
    mixture = threshold_gmm(scores)  # the two backgrounds split apart: the textured one kept whole
    assert (scores >= mixture).sum() > 800
    t = threshold_logits(scores)
    kept, right = (scores >= t).sum(), (particles >= t).sum()
    assert t == background_cut(scores) and right >= 36 and kept <= 80, (kept, right)
    clear = np.concatenate([r.normal(-3.0, 0.7, 1200), r.normal(3.0, 1.0, 300)])  # the upper group: particles
    assert threshold_logits(clear) == threshold_gmm(clear)


def test_a_guiding_count_moves_to_the_gap_between_two_clear_groups_of_scores_only():
    """With ``split``, a count is a guide: where the peak scores of the images picked together fall into two clear
    groups, the cut goes between them if that keeps within a factor 1.5 of the count; where they form one group,
    or the gap lies further from the count, or without ``split``, the count's own cut."""
    from fewpick.pickers.threshold import Count, count_cut_of, cut_for_count, gap_near_count, select_peaks

    r = np.random.default_rng(1)
    images = [np.concatenate([r.normal(6.0, 0.5, 40), r.normal(0.0, 1.0, 400)]) for _ in range(3)]  # 40 particles

    def kept(cut):
        return sum(int((s >= cut).sum()) for s in images) / len(images)

    assert kept(cut_for_count(images, 32, split=True)) == 40  # a count a fifth short: the gap finds all 40
    assert kept(cut_for_count(images, 55, split=True)) == 40  # a third too many: the same
    assert kept(cut_for_count(images, 32)) == 32  # the count as given
    assert kept(cut_for_count(images, 20, split=True)) == 20  # the gap twice the count away: the count stands
    assert kept(cut_for_count(images, 70, split=True)) == 70
    assert gap_near_count(images, 32) == (cut_for_count(images, 32, split=True), 40.0)
    assert gap_near_count(images, 20) is None
    # the gap left aside for lying far from the count is still told, for a user who knows better than the count
    assert count_cut_of(images, 20, split=True) == (cut_for_count(images, 20), None, gap_near_count(images, 32))
    assert count_cut_of(images, 32, split=True) == (*gap_near_count(images, 32), None)
    assert count_cut_of(images, 20).far is None  # without split no gap is looked for
    one = [r.normal(0.0, 1.0, 440) for _ in range(3)]  # one group of scores: the count stands
    assert count_cut_of(one, 40, split=True).far is None
    assert sum(int((s >= cut_for_count(one, 40, split=True)).sum()) for s in one) == 120
    # one image alone, as select_peaks cuts it
    coords = np.stack([np.zeros(len(images[0])), np.arange(len(images[0])) * 10.0], 1)
    order = np.argsort(-images[0])
    got = select_peaks(coords[order], images[0][order], Count(32, split=True), rule=np.median)[1]
    assert len(got) == 40 and len(select_peaks(coords[order], images[0][order], Count(32), rule=np.median)[1]) == 32
    # a count the model estimated only guides: without a gap near it, the model's own cut (``otherwise``) stands
    assert kept(cut_for_count(images, 32, split=True, otherwise=3.0)) == 40
    assert cut_for_count(images, 20, split=True, otherwise=3.0) == 3.0
    assert cut_for_count(one, 40, split=True, otherwise=-0.5) == -0.5
    guided = Count(32, split=True, otherwise=7.0)
    assert len(select_peaks(coords[order], images[0][order], guided, rule=np.median)[1]) == 40
    far = Count(20, split=True, otherwise=7.0)  # the gap twice the count away: the peaks scoring 7 or more
    assert len(select_peaks(coords[order], images[0][order], far, rule=np.median)[1]) == int((images[0] >= 7).sum())


def test_a_default_count_takes_a_second_count_only_where_clearly_larger():
    """The user's count stands unless the general model's count of the same micrographs passes it by more than
    twice a count's chance spread (2√N); a smaller second count never lowers it."""
    from fewpick.pickers.threshold import default_count

    assert default_count(100, None) == 100 and default_count(None, 300) is None
    assert default_count(100, 119) == 100 and default_count(100, 60) == 100
    assert default_count(100, 121) == 121 and default_count(166, 247.5) == 247.5
