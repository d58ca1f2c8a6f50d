"""Mining scores: hand-worked values for every algorithm, the re-ranking, and refusals of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from detkit import scoring
from detkit.errors import BadInput


def h2(p: float) -> float:
    """Binary entropy in bits."""
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


def dets(*boxes: tuple[float, float, float, float, float, int]):
    """Detections from ``(x1, y1, x2, y2, score, class)`` tuples."""
    a = np.array(boxes, dtype=np.float64).reshape(-1, 6)
    return a[:, :4], a[:, 4], a[:, 5].astype(np.int64)


# ---- the table --------------------------------------------------------------------------------


def test_table_names_needs_and_costs():
    assert set(scoring.ALGORITHMS) == {"random", "entropy", "least_confidence", "margin", "borderline",
                                       "aldd", "cald"}
    assert scoring.DEFAULT_ALGORITHM == "aldd"
    costs = {n: (a.needs, a.extra_inferences) for n, a in scoring.ALGORITHMS.items()}
    assert costs["cald"] == ("views", 3) and costs["aldd"] == ("heatmap", 0) and costs["random"] == ("keys", 0)
    assert all(costs[n] == ("boxes", 0) for n in ("entropy", "least_confidence", "margin", "borderline"))
    assert scoring.algorithm("near_threshold").name == "borderline"
    # the agent ranks frames by a single-pass box score only
    single = {n for n, a in scoring.ALGORITHMS.items() if a.single_pass_boxes}
    assert single == {"entropy", "least_confidence", "margin", "borderline"}
    assert set(scoring.SCORES) == {"entropy", "least_confidence", "margin", "near_threshold"}


def test_unknown_algorithm_and_missing_inputs_are_bad_input():
    with pytest.raises(BadInput, match=r"unknown mining algorithm 'vibes'.*aldd.*cald"):
        scoring.score_batch("vibes", dets=[])
    with pytest.raises(BadInput, match="needs the class heatmaps"):
        scoring.score_batch("aldd", dets=[])
    with pytest.raises(BadInput, match="needs keys"):
        scoring.score_batch("random")
    with pytest.raises(BadInput, match="needs views, or images"):
        scoring.score_batch("cald", dets=[dets()])
    with pytest.raises(BadInput, match="'entropy' takes no parameter window"):
        scoring.score_batch("entropy", dets=[], window=3)


# ---- single-pass box scores -------------------------------------------------------------------


def test_box_scores_at_half_and_confident():
    unsure, sure = [dets((0, 0, 10, 10, 0.5, 0))], [dets((0, 0, 10, 10, 0.95, 0))]
    got = {n: (scoring.score_batch(n, dets=unsure)[0], scoring.score_batch(n, dets=sure)[0])
           for n in ("entropy", "least_confidence", "margin", "borderline")}
    assert got["entropy"] == pytest.approx((1.0, h2(0.95)))  # 1.0 vs 0.286
    assert got["least_confidence"] == pytest.approx((0.5, 0.05))
    assert got["margin"] == pytest.approx((1.0, 0.1))
    assert got["borderline"] == (1.0, 0.0)  # 0.5 is within 0.1 of the 0.5 threshold, 0.95 is not


def test_box_scores_batch_max_over_boxes_and_empty_images():
    batch = [dets((0, 0, 1, 1, 0.95, 0), (0, 0, 2, 2, 0.55, 1)), dets(), np.array([0.42, 0.6, 0.9])]
    np.testing.assert_allclose(scoring.score_batch("least_confidence", dets=batch), [0.45, 0.0, 0.58])
    np.testing.assert_allclose(scoring.score_batch("borderline", dets=batch, threshold=0.5), [1, 0, 2])
    np.testing.assert_allclose(scoring.score_batch("near_threshold", dets=batch, threshold=0.5), [1, 0, 2])
    with pytest.raises(BadInput, match=r"shape \(K,\) or \(K, C\)"):
        scoring.score_batch("entropy", dets=[np.zeros((2, 2, 2))])
    with pytest.raises(BadInput, match="differ in length"):
        scoring.score_batch("entropy", dets=[(np.zeros((2, 4)), np.zeros(3), np.zeros(3))])


# ---- random -----------------------------------------------------------------------------------


def test_random_is_seeded_per_key_and_reproducible():
    keys = [f"img{i}.jpg" for i in range(200)]
    a = scoring.score_batch("random", keys=keys, seed=7)
    np.testing.assert_array_equal(a, scoring.score_batch("random", keys=keys, seed=7))
    np.testing.assert_array_equal(a[::-1], scoring.score_batch("random", keys=keys[::-1], seed=7))  # per key
    assert scoring.score_batch("random", keys=keys[5:6], seed=7)[0] == a[5]  # batch does not matter
    assert not np.array_equal(a, scoring.score_batch("random", keys=keys, seed=8))
    assert ((a >= 0) & (a < 1)).all() and 0.4 < a.mean() < 0.6 and len(set(a.tolist())) == 200
    with pytest.raises(BadInput, match="seed must be an integer"):
        scoring.random_scores(keys, seed="x")


# ---- aldd -------------------------------------------------------------------------------------


def checker(n: int, lo: float = 0.1, hi: float = 0.9) -> np.ndarray:
    yy, xx = np.indices((n, n))
    return np.where((yy + xx) % 2 == 0, hi, lo)


def test_aldd_flat_heatmaps_score_zero():
    flat = np.stack([np.full((2, 16, 16), v) for v in (0.0, 0.3, 1.0)])  # (3, 2, 16, 16)
    for reduce in scoring.heatmap.ALDD_REDUCE:
        np.testing.assert_allclose(scoring.aldd(flat, reduce=reduce), 0.0, atol=1e-9)


def test_aldd_disagreement_hand_worked():
    # One class flips 0.1 / 0.9 from cell to cell; every cell's own entropy is H(0.1) = 0.469 bits.
    # A 3x3 window in the interior averages 5 x 0.9 + 4 x 0.1 (or the reverse): H(41/90) = 0.994;
    # an edge or corner window holds as many of each: H(0.5) = 1 bit. Max MI = 1 - H(0.1) = 0.531.
    hm = np.zeros((1, 2, 4, 4))
    hm[0, 1] = checker(4)
    u = scoring.aldd_map(hm, window=3)[0]
    assert u[1, 1] == pytest.approx(h2(41 / 90) - h2(0.1))
    assert u[0, 0] == pytest.approx(1.0 - h2(0.1))
    assert scoring.aldd(hm, reduce="max")[0] == pytest.approx(1.0 - h2(0.1))
    assert scoring.aldd(hm, reduce="topk", k=1)[0] == pytest.approx(1.0 - h2(0.1))
    # grid: the disputed 4x4 patch (and its rim of zeros, where windows straddle it) sits in one of
    # four 8x8 blocks of a 16x16 map -> the patch's max / 4. At (2, 3) a window holds 3 x 0.9,
    # 3 x 0.1 and 3 x 0: H(1/3) - 6/9 H(0.1) = 0.606.
    big = np.zeros((1, 2, 16, 16))
    big[0, 1, :4, :4] = checker(4)
    u = scoring.aldd_map(big)[0]
    assert u[2, 3] == pytest.approx(h2(1 / 3) - 6 / 9 * h2(0.1)) and u[8:].max() == u[:, 8:].max() == 0
    assert scoring.aldd(big, reduce="grid", cell=8)[0] == pytest.approx(u.max() / 4)


def test_aldd_batch_equals_one_by_one_and_ranks_disagreement_first():
    rng = np.random.default_rng(0)
    smooth = np.full((1, 3, 32, 32), 0.02)
    smooth[0, 0, 10:14, 10:14] = 0.97  # a confident, solid object
    noisy = np.clip(smooth + rng.uniform(-0.4, 0.4, smooth.shape) * (rng.random(smooth.shape) < 0.3), 0, 1)
    batch = np.concatenate([smooth, noisy])
    both = scoring.score_batch("aldd", heatmap=batch)
    assert both[1] > both[0] >= 0
    np.testing.assert_allclose(both, [scoring.aldd(smooth)[0], scoring.aldd(noisy)[0]])


def test_aldd_refuses_bad_heatmaps():
    with pytest.raises(BadInput, match=r"\(N, C, H, W\)"):
        scoring.aldd(np.zeros((2, 8, 8)))
    with pytest.raises(BadInput, match=r"probabilities in \[0, 1\]"):
        scoring.aldd(np.full((1, 1, 4, 4), 3.0))
    with pytest.raises(BadInput, match="window must be an odd integer"):
        scoring.aldd(np.zeros((1, 1, 4, 4)), window=4)
    with pytest.raises(BadInput, match="reduce must be one of"):
        scoring.aldd(np.zeros((1, 1, 4, 4)), reduce="median")


# ---- cald -------------------------------------------------------------------------------------


def test_cald_identical_views_score_zero():
    orig = [dets((0, 0, 10, 10, 0.9, 0), (20, 20, 40, 40, 0.6, 1)), dets()]
    views = [[tuple(np.copy(a) for a in d) for d in orig] for _ in range(3)]
    np.testing.assert_allclose(scoring.cald(orig, views), [0.0, 0.0])


def test_cald_shifted_missing_and_relabelled_boxes_hand_worked():
    orig = [dets((0, 0, 10, 10, 0.9, 0))]
    same = [dets((0, 0, 10, 10, 0.9, 0))]
    shifted = [dets((5, 0, 15, 10, 0.9, 0))]  # IoU 50 / 150 = 1/3: c = 1/3, score 0.9 * 2/3
    missing = [dets()]
    relabelled = [dets((0, 0, 10, 10, 0.9, 1))]  # another class is no match
    assert scoring.cald(orig, [same, shifted])[0] == pytest.approx(0.6)
    assert scoring.cald(orig, [same, missing])[0] == pytest.approx(0.9)
    assert scoring.cald(orig, [relabelled])[0] == pytest.approx(0.9)
    assert scoring.cald(orig, [missing], weighted=False)[0] == pytest.approx(1.0)
    # a faint box that appears only in a view matters as much as it is confident
    assert scoring.cald([dets()], [[dets((0, 0, 5, 5, 0.2, 0))]])[0] == pytest.approx(0.2)
    # a score that drifts: c = 1 * (1 - 0.3), weighted by the larger side: 0.9 * 0.3
    assert scoring.cald(orig, [[dets((0, 0, 10, 10, 0.6, 0))]])[0] == pytest.approx(0.27)


def bright_square_detector(images: np.ndarray):
    """A real (if simple) detector: the bounding box of the bright pixels, score 0.9."""
    out = []
    for img in images:
        ys, xs = np.nonzero(img[..., 0] > 200)
        if len(ys) == 0:
            out.append(dets())
        else:
            out.append(dets((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9, 0)))
    return out


def fixed_corner_detector(images: np.ndarray):
    """A detector that ignores the image: always the same box, so it moves when the image flips."""
    return [dets((0, 0, 20, 20, 0.9, 0)) for _ in images]


def test_cald_runs_views_through_a_detect_function():
    images = np.full((2, 64, 64, 3), 30, np.uint8)
    images[0, 8:24, 30:46] = 255
    images[1, 40:56, 4:20] = 255
    found = bright_square_detector(images)
    consistent = scoring.score_batch("cald", dets=found, images=images, detect=bright_square_detector,
                                     keys=["a", "b"])
    assert (consistent < 0.35).all()  # flip is exact, resize is within a pixel or so, cutout may bite
    views = scoring.view_detections(images, bright_square_detector, names=("flip",))
    np.testing.assert_allclose(views[0][0][0], found[0][0])  # mapped back onto the original box
    biased = scoring.score_batch("cald", dets=fixed_corner_detector(images), images=images,
                                 detect=fixed_corner_detector)
    assert (biased > 0.85).all()  # its box jumps to the other side under flip


def test_views_shapes_and_refusals():
    images = np.zeros((3, 32, 48, 3), np.uint8)
    made = scoring.make_views(images, keys=["x", "y", "z"])
    assert [m[0] for m in made] == list(scoring.VIEWS) and all(m[1].shape == images.shape for m in made)
    cut = made[2][1]
    assert (cut == 114).any(axis=(1, 2, 3)).all()  # every image got its grey patches
    again = scoring.make_views(images, names=("cutout",), keys=["x", "y", "z"])[0][1]
    np.testing.assert_array_equal(cut, again)  # placed by key: reproducible
    with pytest.raises(BadInput, match="unknown views"):
        scoring.make_views(images, names=("rotate",))
    with pytest.raises(BadInput, match=r"\(N, H, W, 3\)"):
        scoring.make_views(np.zeros((32, 32, 3)))
    with pytest.raises(BadInput, match="view 0 has detections for 1 images, expected 2"):
        scoring.cald([dets(), dets()], [[dets()]])
    with pytest.raises(BadInput, match="detect returned 1 results for 3"):
        scoring.view_detections(images, lambda x: [dets()])


# ---- class-balanced re-ranking ----------------------------------------------------------------


def test_rerank_picks_the_rare_class_earlier():
    keys = ["a", "b", "c", "d"]
    scores = [0.9, 0.85, 0.8, 0.5]
    classes = [["car"], ["car", "car"], ["car"], ["bike"]]
    assert scoring.class_balanced_rerank(keys, scores, classes, alpha=0.0) == keys
    # after a: b 0.85/2, c 0.8/2, d 0.5/1 -> d; then b before c
    assert scoring.class_balanced_rerank(keys, scores, classes) == ["a", "d", "b", "c"]
    assert scoring.class_balanced_rerank(keys, scores, classes, k=2) == ["a", "d"]
    # an image is penalised by its least-picked class only; no class counts as class "none"
    assert scoring.class_balanced_rerank(["p", "q", "r"], [0.9, 0.8, 0.7], [["car"], ["car", "bike"], []],
                                         alpha=10.0) == ["p", "q", "r"]
    assert scoring.class_balanced_rerank(["p", "q", "r"], [0.9, 0.8, 0.7], [[], [], ["car"]],
                                         alpha=10.0) == ["p", "r", "q"]


def test_rerank_refuses_bad_input():
    with pytest.raises(BadInput, match="must be as many"):
        scoring.class_balanced_rerank(["a"], [0.1, 0.2], [[], []])
    with pytest.raises(BadInput, match="finite numbers >= 0"):
        scoring.class_balanced_rerank(["a"], [float("nan")], [[]])
    with pytest.raises(BadInput, match="k must be an integer"):
        scoring.class_balanced_rerank(["a"], [0.1], [[]], k=-1)
    with pytest.raises(BadInput, match="alpha must be"):
        scoring.class_balanced_rerank(["a"], [0.1], [[]], alpha=-1)


def test_runtime_detections_objects_are_accepted():
    from detkit.runtime.base import Detections

    d = Detections(boxes=np.array([[0, 0, 10, 10]], np.float32), scores=np.array([0.5], np.float32),
                   class_ids=np.array([0]), class_names=["car"])
    assert scoring.score_batch("entropy", dets=[d])[0] == pytest.approx(1.0)
    assert scoring.score_batch("cald", dets=[d], views=[[d]])[0] == pytest.approx(0.0)


def test_aldd_on_float32_heatmaps_matches_float64_and_survives_saturation():
    """A model's float32 heatmap is scored in float32 (cheaper); cells at exactly 0 or 1 stay finite."""
    import numpy as np

    from detkit.scoring import aldd

    rng = np.random.default_rng(3)
    hm = (rng.random((4, 3, 24, 24)) ** 6).astype(np.float32)
    hm[0, 1, 5:9, 5:9] = 1.0
    hm[1] = 1.0
    got, want = aldd(hm), aldd(hm.astype(np.float64))
    assert np.all(np.isfinite(got)) and np.allclose(got, want, atol=1e-5)
    assert got[1] == 0.0  # everywhere 1: the window agrees with itself
