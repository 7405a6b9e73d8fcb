"""Paper 003's system end to end on synthetic IU X-ray: classify, describe, write, score; `medcap report`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medcap import cli
from medcap.config import ConfigError, load_experiment


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("findings_report")
    config = load_experiment("findings_report_template", smoke=True, overrides=[f"data.data_dir={root / 'data'}", "train.verbose=0"])
    from medcap import training

    training.fit(config, root / "run")
    return root


def test_the_run_writes_descriptions_reports_and_the_review_sheet(run):
    workdir = run / "run"
    metrics = json.loads((workdir / "metrics.json").read_text())
    test_ids = [json.loads(line)["study_id"] for line in (workdir / "descriptions_test.jsonl").read_text().splitlines()]
    assert metrics["meta/num_examples"] == len(test_ids) > 0
    reports = [json.loads(line) for line in (workdir / "reports_test.jsonl").read_text().splitlines()]
    assert [r["id"] for r in reports] == test_ids
    # The template writer says exactly what it was given.
    assert metrics["faithfulness/f1"] == 1.0 and metrics["faithfulness/hallucinated"] == 0
    for key in ("Bleu_4", "CIDEr", "ROUGE_L", "ce/micro_f1", "truth/ce/micro_f1", "baselines/constant/Bleu_4", "baselines/random_train/faithfulness/f1"):
        assert key in metrics, key
    assert metrics["classifier/labels_scored"] == 7 and "classifier/auroc_macro" in metrics
    assert (workdir / "classifier" / "report.md").is_file() and (workdir / "thresholds.json").is_file()
    bank = json.loads((workdir / "sentence_bank.json").read_text())
    assert set(bank["findings"]) == {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion", "Lung Lesion", "Pneumothorax"}
    with open(workdir / "review.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["study_id"] for r in rows] == test_ids and all(r["accuracy_1to5"] == "" for r in rows)
    assert rows[0]["report"] == reports[0]["report"] and rows[0]["structured_findings"].startswith("Findings (")
    report = (workdir / "report.md").read_text()
    assert "## Faithfulness" in report and "baseline: constant" in report and "Synthetic data" in report
    assert (workdir / "samples.md").read_text().count("**Report:**") == min(20, len(test_ids))


def test_medcap_report_prints_structured_findings_then_the_report(run, capsys):
    images = sorted(str(p) for p in (run / "data").rglob("images/*/0.png"))[:2]
    assert cli.main(["report", "--workdir", str(run / "run"), *images]) == 0
    out = capsys.readouterr().out
    assert out.count("structured findings (JSON):") == 2 and out.count("report:") == 2
    assert "structured findings (text):\nFindings (classifier probability" in out
    assert cli.main(["report", "--workdir", str(run / "run"), "--json", images[0]]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["image"] == images[0] and len(record["description"]["findings"]) == 7 and record["report"]


def test_report_options_are_checked(tmp_path):
    from medcap.models.findings_to_report_task import FindingsToReportTask

    for option, message in (
        ("model.options.writer=poet", "writer='poet'"),
        ("model.options.uncertain_below=0", "uncertain_below=0"),
        ('model.options.certainty_words=["a","b"]', "3 edges need 4 words"),
        ("model.options.explain_method=magic", "explain_method='magic'"),
    ):
        config = load_experiment("findings_report_template", smoke=True, overrides=[option])
        with pytest.raises(ConfigError, match=message):
            FindingsToReportTask(config)
