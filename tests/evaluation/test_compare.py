"""`medcap compare`: refusal of runs that differ, numbers equal to each run's
metrics file, CIs, paired tests on constructed cases, the four leaderboard files.

Runs are built here the way a task writes them: `evaluate_texts` scores the
system and its baselines, the trainer's metrics.json holds the result, and
`save_scored_texts` writes texts_<split>.json. Real workdirs of every system
are compared in their own end-to-end tests (`compare_checks`).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from medcap.config import EvalConfig, ExperimentConfig
from medcap.evaluation.compare import TEXT_COLUMNS, CompareError, compare_runs
from medcap.evaluation.evaluator import TextOutputs, evaluate_texts, save_scored_texts
from medcap.evaluation.leaderboard import write_leaderboard

FINDINGS = (
    "the heart is enlarged . there is a small left pleural effusion .",
    "there is patchy consolidation in the right lower lobe .",
    "mild pulmonary edema . the heart is enlarged .",
    "there is a right pneumothorax .",
    "there is atelectasis at the left base .",
    "no acute cardiopulmonary abnormality . the lungs are clear .",
)
NORMAL = "the heart is normal in size . the lungs are clear . no pleural effusion or pneumothorax ."


def _references(n: int = 24) -> dict[str, list[str]]:
    return {f"s{i:03d}": [FINDINGS[i % len(FINDINGS)] + (" no fracture ." if i % 4 == 0 else "")] for i in range(n)}


def make_run(
    root: Path,
    name: str,
    predictions: dict[str, str],
    references: dict[str, list[str]] | None = None,
    *,
    dataset: str = "iu_xray",
    variant: str = "r2gen",
    split: str = "test",
    ce_uncertain: int = 0,
    seed: int = 42,
    pretrained: bool = False,
    jar=None,
) -> Path:
    """A finished run's files, as the trainer and a report-writing task leave them."""
    references = references or _references()
    workdir = root / name
    workdir.mkdir(parents=True)
    config = ExperimentConfig(name=name)
    config.data.name, config.data.variant = dataset, variant
    config.eval.split, config.eval.ce_uncertain = split, ce_uncertain
    config.train.seed = seed
    (workdir / "config.json").write_text(config.to_json())
    (workdir / "data.json").write_text(json.dumps({"info": {"dataset": dataset, "variant": variant}}))
    (workdir / "environment.json").write_text(json.dumps({"pretrained_weights": {"vision": {"pretrained": pretrained}}}))
    train_texts = list(FINDINGS) + [NORMAL] * 4
    outputs = TextOutputs(references, predictions, train_texts)
    texts = evaluate_texts(outputs, EvalConfig(ce_uncertain=ce_uncertain), seed=seed, meteor=jar)
    (workdir / "metrics.json").write_text(json.dumps(texts.metrics, indent=1))
    save_scored_texts(workdir, split, outputs, texts)
    return workdir


@pytest.fixture(scope="module")
def jar():
    """One METEOR jar for the module (each start takes seconds); None without java."""
    from medcap.evaluation.text_metrics import MeteorJar, find_java

    if find_java() is None:
        yield None
        return
    with MeteorJar() as running:
        yield running


@pytest.fixture(scope="module")
def runs(tmp_path_factory, jar) -> dict[str, Path]:
    """good: the references themselves; fair: right on two thirds; normal: one normal report."""
    root = tmp_path_factory.mktemp("runs")
    refs = _references()
    ids = sorted(refs)
    good = {i: refs[i][0] for i in ids}
    fair = {i: refs[i][0] if k % 3 else FINDINGS[(k + 1) % len(FINDINGS)] for k, i in enumerate(ids)}
    normal = dict.fromkeys(ids, NORMAL)
    return {
        "good": make_run(root, "good", good, pretrained=True, jar=jar),
        "fair": make_run(root, "fair", fair, jar=jar),
        "normal": make_run(root, "normal", normal, jar=jar),
        "good_again": make_run(root, "good_again", good, jar=jar),
    }


def _rows(comparison):
    return {row.name: row for row in comparison.rows}


def test_numbers_equal_each_runs_metrics_file(runs, jar, tmp_path):
    comparison = compare_runs([runs["good"], runs["fair"], runs["normal"]], bootstrap=200, meteor=jar)
    rows = _rows(comparison)
    assert [r.name for r in comparison.rows] == ["good", "fair", "normal", "baseline: constant", "baseline: random_train"]
    for name in ("good", "fair", "normal"):
        metrics = json.loads((runs[name] / "metrics.json").read_text())
        for key, _, _ in TEXT_COLUMNS:
            assert rows[name].metrics[key]["value"] == metrics[key], (name, key)
            low, high = rows[name].metrics[key]["ci_low"], rows[name].metrics[key]["ci_high"]
            if key != "METEOR" or metrics[key] is not None:
                assert low <= high
        assert rows[name].per_finding["Pneumothorax"] == metrics["ce/f1/Pneumothorax"]
    good = json.loads((runs["good"] / "metrics.json").read_text())
    for key, _, _ in TEXT_COLUMNS:  # baselines come from the first run that made them
        assert rows["baseline: constant"].metrics[key]["value"] == good[f"baselines/constant/{key}"]
    assert rows["good"].metrics["Bleu_4"]["value"] == pytest.approx(1.0)
    assert rows["good"].pretrained == "yes" and rows["fair"].pretrained == "no"
    assert rows["good"].synthetic is True

    paths = write_leaderboard(comparison, tmp_path / "board")
    assert sorted(p.name for p in paths.values()) == ["leaderboard.csv", "leaderboard.json", "leaderboard.md", "leaderboard.png"]
    assert paths["png"].stat().st_size > 10_000
    board = json.loads(paths["json"].read_text())
    by_name = {row["name"]: row for row in board["rows"]}
    assert by_name["fair"]["metrics"]["CIDEr"]["value"] == rows["fair"].metrics["CIDEr"]["value"]
    assert board["num_reports"] == 24 and board["split"] == "test"
    with open(paths["csv"], newline="") as handle:
        table = {line["name"]: line for line in csv.DictReader(handle)}
    assert float(table["fair"]["Bleu_4"]) == rows["fair"].metrics["Bleu_4"]["value"]
    assert float(table["fair"]["Bleu_4/p_bootstrap"]) < 0.05
    assert table["good"]["Bleu_4/p_bootstrap"] == ""  # the best row is not tested against itself
    markdown = paths["md"].read_text()
    assert f"**{rows['good'].metrics['CIDEr']['value']:.4f} [" in markdown
    assert "## Clinical efficacy F1 per finding" in markdown and "| Pneumothorax |" in markdown.replace(" | ", " |\n| ")


def test_paired_tests_on_constructed_cases(runs, jar):
    """A system that differs on every report from the best is significantly
    worse in both tests; a second run with the same texts is identical (p = 1)."""
    comparison = compare_runs([runs["good"], runs["normal"], runs["good_again"]], bootstrap=500, meteor=jar)
    for key, _, per_report in TEXT_COLUMNS:
        test = comparison.tests.get(key)
        if test is None:  # METEOR without java
            assert key == "METEOR"
            continue
        assert test["best"] in ("good", "good_again"), key
        other = "good_again" if test["best"] == "good" else "good"
        same, worse = test["against"][other], test["against"]["normal"]
        assert same["diff"] == 0 and same["bootstrap_p"] == 1.0, (key, same)
        assert worse["diff"] < 0 and worse["bootstrap_p"] <= 2 / 501, (key, worse)
        if per_report:
            assert same["t_p"] == 1.0 and worse["t_p"] < 1e-3, (key, same, worse)
        else:
            assert same["t_p"] is None and worse["t_p"] is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dataset": "mimic"}, "different datasets"),
        ({"variant": "random_721"}, "variant"),
        ({"split": "val"}, "different splits"),
        ({"ce_uncertain": 1}, "eval.ce_uncertain"),
    ],
)
def test_refuses_runs_that_differ(runs, jar, tmp_path, change, message):
    refs = _references()
    other = make_run(tmp_path, "other", {i: NORMAL for i in refs}, **change, jar=jar)
    with pytest.raises(CompareError, match=message) as caught:
        compare_runs([runs["good"], other], bootstrap=20, meteor=jar)
    assert str(runs["good"]) in str(caught.value) and str(other) in str(caught.value)


def test_refuses_other_test_ids_and_other_references(runs, jar, tmp_path):
    refs = _references()
    fewer = {k: v for k, v in refs.items() if k != "s007"}
    run = make_run(tmp_path, "fewer", {i: NORMAL for i in fewer}, fewer, jar=jar)
    with pytest.raises(CompareError, match="test ids differ.*s007"):
        compare_runs([runs["good"], run], bootstrap=20, meteor=jar)
    recleaned = {k: [v[0].replace(" .", ".")] for k, v in refs.items()}
    run = make_run(tmp_path, "recleaned", {i: NORMAL for i in recleaned}, recleaned, jar=jar)
    with pytest.raises(CompareError, match="reference texts differ for id s000"):
        compare_runs([runs["good"], run], bootstrap=20, meteor=jar)


def test_refuses_a_run_whose_files_disagree_or_are_missing(runs, jar, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(runs["fair"], tampered)
    metrics = json.loads((tampered / "metrics.json").read_text())
    metrics["CIDEr"] += 0.01
    (tampered / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(CompareError, match="CIDEr is .* in its metrics file but its scored texts give"):
        compare_runs([runs["good"], tampered], bootstrap=20, meteor=jar)
    (tampered / "texts_test.json").unlink()
    with pytest.raises(CompareError, match="no texts_test.json"):
        compare_runs([tampered], bootstrap=20, meteor=jar)
    with pytest.raises(CompareError, match="not a medcap workdir"):
        compare_runs([tmp_path / "nothing"], bootstrap=20, meteor=jar)


def test_cli_writes_the_leaderboard_and_refuses_in_one_line(runs, jar, tmp_path, capsys):
    from medcap.cli import main

    out = tmp_path / "board"
    assert main(["compare", str(runs["good"]), str(runs["fair"]), "--out", str(out), "--bootstrap", "50"]) == 0
    assert "| good |" in capsys.readouterr().out
    assert (out / "leaderboard.png").is_file()
    other = make_run(tmp_path, "mimic_run", {i: NORMAL for i in _references()}, dataset="mimic", jar=jar)
    assert main(["compare", str(runs["good"]), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("medcap: error: runs read different datasets")
