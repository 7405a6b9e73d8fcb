"""Paper 004's classifier learns the synthetic findings, and its Grad-CAM maps depend on what it learnt.

The run is `learning_runs.findings`: the synthetic default of
`experiments/findings_chexnet.py` (the tiny CNN on 600 synthetic
ChestX-ray14-format images at 64 px, seven findings, 40 epochs, about 50 s
on two cores). The prevalence baseline scores every image with its train
prevalence, so its AUROC is 0.5 for every finding.

Spread measured over train seeds 42, 1, 2 x data seeds 0, 1 x
TF_ENABLE_ONEDNN_OPTS 1, 0 (12 runs, 2-core AMD EPYC, 2026-12-05), as
mean, smallest value and largest deviation from the mean:

    AUROC - 0.5, mean over findings   +0.416  +0.401  0.020   -> asserted >= 0.35
    Atelectasis                       +0.373  +0.305  0.072   -> asserted >= 0.15
    Cardiomegaly                      +0.396  +0.366  0.030   -> asserted >= 0.30
    Effusion                          +0.487  +0.452  0.035   -> asserted >= 0.35
    Nodule                            +0.394  +0.354  0.040   -> asserted >= 0.25
    Pneumothorax                      +0.465  +0.431  0.034   -> asserted >= 0.35
    Consolidation                     +0.319  +0.294  0.038   -> asserted >= 0.20
    Edema                             +0.481  +0.445  0.036   -> asserted >= 0.35
    pointing game - centre point,
      Pneumothorax, the test split    +0.866  +0.769  0.097   -> asserted >= 0.50
    1 - rank correlation of the maps after randomising
      the output layer and block3     +1.062  +0.892  0.182   -> asserted >= 0.50
      the output layer only           +0.991  +0.678  0.313   -> asserted >= 0.05

Localisation is also measured on 1,000 held-out images drawn like the
training tree from another seed (`learning_runs.held_out_localisation`;
the test split has only 13 to 33 boxed images per finding). The same 12
runs, 2026-12-05 (2-core Intel Xeon):

    pointing game, pooled over the findings whose
      boxes miss the centre (atelectasis, effusion,
      nodule, pneumothorax, consolidation) - centre
      point's (0.00 there)            +0.342  +0.267  0.076   -> asserted >= 0.10
    pooled over those whose every box holds the
      centre (cardiomegaly, edema) - random point's
      (0.10: a pixel drawn uniformly) +0.414  +0.325  0.089   -> asserted >= 0.14
    Pneumothorax - centre point       +0.899  +0.851  0.048   -> asserted >= 0.70

Each asserted margin T keeps mean - T >= 3 x the largest deviation
(`python tests/measure_learning_spread.py --runs findings` repeats them).
The centre point hits every cardiomegaly and edema box (the heart and the
perihilar haze are central), so no map beats it there: those two are
measured against a random point instead. Reported, not asserted (mean < 3 x
deviation), per finding on the held-out images: atelectasis - centre
+0.28 (smallest +0.10), consolidation +0.30 (+0.21), effusion +0.28
(+0.08), nodule +0.13 (+0.09); cardiomegaly - random point +0.27 (+0.12),
edema +0.70 (+0.35). The tiny CNN at 64 px knows each finding (AUROC above)
better than it shows where: Grad-CAM's maximum is a fragile statistic, and
two runs that differ only in oneDNN's kernels point differently.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
import learning_runs  # noqa: E402

MARGINS = {
    "auroc_macro": 0.35,
    "auroc/Atelectasis": 0.15,
    "auroc/Cardiomegaly": 0.30,
    "auroc/Effusion": 0.35,
    "auroc/Nodule": 0.25,
    "auroc/Pneumothorax": 0.35,
    "auroc/Consolidation": 0.20,
    "auroc/Edema": 0.35,
}


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    return learning_runs.run("findings", tmp_path_factory.mktemp("findings"))


@pytest.mark.parametrize("key", sorted(MARGINS))
def test_auroc_beats_the_prevalence_baseline(metrics, key):
    assert metrics[f"baselines/prevalence/{key}"] == pytest.approx(0.5)
    assert metrics[key] - metrics[f"baselines/prevalence/{key}"] >= MARGINS[key]


def test_gradcam_points_at_pneumothorax_better_than_the_centre(metrics):
    hits = metrics["localisation/gradcam/pointing_game/Pneumothorax"]
    assert hits - metrics["localisation/baselines/centre/pointing_game/Pneumothorax"] >= 0.5


def test_gradcam_points_better_than_image_blind_points_on_held_out_images(metrics):
    assert metrics["held_out/pooled/central/findings"] == "Cardiomegaly,Edema"
    assert metrics["held_out/pooled/off_centre/findings"] == "Atelectasis,Effusion,Nodule,Pneumothorax,Consolidation"
    assert metrics["held_out/pooled/off_centre/gradcam"] - metrics["held_out/pooled/off_centre/centre"] >= 0.10
    assert metrics["held_out/pooled/central/gradcam"] - metrics["held_out/pooled/central/random_point"] >= 0.14
    pneumothorax = "held_out/localisation/{}/pointing_game/Pneumothorax"
    assert metrics[pneumothorax.format("gradcam")] - metrics[pneumothorax.format("baselines/centre")] >= 0.70
    # The held-out set is large: hundreds of boxed images per group.
    assert sum(metrics[f"held_out/localisation/gradcam/n/{n}"] for n in ("Atelectasis", "Cardiomegaly", "Edema")) > 600


def test_maps_change_when_the_model_is_randomised(metrics):
    assert metrics["sanity/gradcam/pairs"] == 32
    assert 1.0 - metrics["sanity/gradcam/rank_correlation/top_block"] >= 0.5
    assert 1.0 - metrics["sanity/gradcam/rank_correlation/head"] >= 0.05


def test_localisation_is_measured_against_every_drawn_lesion(metrics):
    assert metrics["meta/localisation/boxes"].startswith("synthetic_truth.json")
    for name in ("Atelectasis", "Cardiomegaly", "Effusion", "Nodule", "Pneumothorax", "Consolidation", "Edema"):
        assert metrics[f"localisation/gradcam/n/{name}"] > 0
        assert 0.0 <= metrics[f"localisation/gradcam/pointing_game/{name}"] <= 1.0
    # The heart sits at the centre of the film: the centre point is inside every cardiomegaly box.
    assert metrics["localisation/baselines/centre/pointing_game/Cardiomegaly"] == 1.0


def test_the_run_scores_every_drawn_finding_with_thresholds_from_validation(metrics):
    assert metrics["labels_scored"] == 7
    assert 0.0 < metrics["macro_f1"] <= 1.0 and 0.0 <= metrics["ece"] <= 1.0
    assert metrics["meta/threshold_rule"] == "f1"
