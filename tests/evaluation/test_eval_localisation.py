"""Pointing game and IoU against boxes, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medcap.evaluation.localisation import box_mask, localisation_scores, map_iou, pointing_hit

# A 100 x 200 (height x width) image with one box; maps are 10 x 20, so one map pixel is 10 x 10 image pixels.
FRAME = (100, 200)
BOX = [{"finding": "Nodule", "x": 40.0, "y": 20.0, "w": 30.0, "h": 20.0}]


def test_box_mask_scales_boxes_onto_the_map_grid():
    mask = box_mask(BOX, FRAME, (10, 20))
    # Pixel centres at 5, 15, 25, ... image pixels: rows 25 and 35 (2, 3), columns 45, 55, 65 (4, 5, 6).
    assert np.argwhere(mask).tolist() == [[r, c] for r in (2, 3) for c in (4, 5, 6)]


def test_pointing_game_and_iou_by_hand():
    saliency = np.zeros((10, 20))
    saliency[3, 5] = 1.0
    assert pointing_hit(saliency, BOX, FRAME)
    saliency = np.zeros((10, 20))
    saliency[5, 5] = 1.0
    assert not pointing_hit(saliency, BOX, FRAME)
    # Grown by 0.2 of the side (20 image rows), the box reaches row 60: map row 5 (centre 55) is inside.
    assert pointing_hit(saliency, BOX, FRAME, tolerance=0.2)
    saliency = np.zeros((10, 20))
    saliency[2:4, 4:8] = 0.9  # 8 pixels, 6 of them in the 6-pixel box
    assert map_iou(saliency, BOX, FRAME) == pytest.approx(6 / 8)


def test_scores_per_finding_with_baselines():
    hit = np.zeros((10, 20))
    hit[2, 4] = 1.0
    miss = np.zeros((10, 20))
    miss[9, 19] = 1.0
    out = localisation_scores([hit, miss], [BOX, BOX], [FRAME, FRAME], ["Nodule", "Nodule"], method="gradcam")
    assert out["localisation/gradcam/pointing_game/Nodule"] == 0.5
    assert out["localisation/gradcam/n/Nodule"] == 2
    # The centre (row 5, column 10: image 55, 105) is outside the box; a uniform map's IoU is 6 / 200.
    assert out["localisation/baselines/centre/pointing_game/Nodule"] == 0.0
    assert out["localisation/baselines/uniform/iou/Nodule"] == pytest.approx(6 / 200)
    # A pixel drawn uniformly lands in the 6-pixel box with probability 6 / 200.
    assert out["localisation/baselines/random_point/pointing_game/Nodule"] == pytest.approx(6 / 200)
    assert out["localisation/baselines/random_point/pointing_game"] == pytest.approx(6 / 200)
    assert out["localisation/gradcam/pointing_game"] == 0.5
