"""Paper 003's template writer, fed by a trained classifier, states the findings far better than the trivial reports.

The run is `learning_runs.findings_report`: the synthetic default of
`experiments/findings_report_template.py` (600 synthetic IU X-ray studies,
paper 004's tiny CNN at 64 px for 40 epochs, then the template writer;
about 80 s on two cores). Clinical efficacy is our labeler on the written
report against the labeler on the reference (`ce/...`), and against the
findings drawn in the image (`truth/ce/...`); the `constant` and
`random_train` baselines are the shared evaluator's.

Spread measured over train seeds 42, 1, 2 x data seeds 0, 1 x
TF_ENABLE_ONEDNN_OPTS 1, 0 (12 runs, 2-core Intel Xeon, 2026-12-05), as
mean, smallest value and largest deviation from the mean:

    ce/micro_f1 - constant                 +0.369  +0.330  0.050   -> asserted >= 0.20
    ce/micro_f1 - random_train             +0.412  +0.379  0.059   -> asserted >= 0.20
    truth/ce/micro_f1 - constant           +0.606  +0.557  0.058   -> asserted >= 0.40
    truth/ce/micro_f1 - random_train       +0.406  +0.365  0.073   -> asserted >= 0.15

(ce/micro_f1 itself 0.63..0.69; with decided findings below p = 0.5 stated
as uncertain, `uncertain_below` 0.5, one seed in three fell to 0.43, since
CE reads a hedge as negative: hence the default of 0.)

Each asserted margin T keeps mean - T >= 3 x the largest deviation
(`python tests/measure_learning_spread.py --runs findings_report`).
Faithfulness is 1.0 in every run: the template states exactly the
described findings (asserted exactly).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
import learning_runs  # noqa: E402

MARGINS = {
    ("ce/micro_f1", "baselines/constant/ce/micro_f1"): 0.20,
    ("ce/micro_f1", "baselines/random_train/ce/micro_f1"): 0.20,
    ("truth/ce/micro_f1", "baselines/constant/truth/ce/micro_f1"): 0.40,
    ("truth/ce/micro_f1", "baselines/random_train/truth/ce/micro_f1"): 0.15,
}


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    return learning_runs.run("findings_report", tmp_path_factory.mktemp("findings_report"))


@pytest.mark.parametrize("metric, baseline", sorted(MARGINS))
def test_template_reports_beat_the_trivial_reports_on_clinical_efficacy(metrics, metric, baseline):
    assert metrics[metric] - metrics[baseline] >= MARGINS[(metric, baseline)]


def test_the_template_says_exactly_what_the_classifier_found(metrics):
    assert metrics["faithfulness/f1"] == 1.0
    assert metrics["faithfulness/hallucinated"] == 0 and metrics["faithfulness/omitted"] == 0
    assert metrics["faithfulness/matched"] > 0
    # The trivial reports state findings the classifier never described.
    assert metrics["baselines/random_train/faithfulness/hallucinated"] > 0
