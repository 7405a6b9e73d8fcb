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


def test_the_leaderboard_reads_the_run_and_its_classifier_auroc(run):
    from compare_checks import assert_leaderboard_matches

    metrics = json.loads((run / "run" / "metrics.json").read_text())
    assert_leaderboard_matches(run / "run", metrics)


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
        ("model.options.uncertain_below=1.5", "uncertain_below=1.5"),
        ('model.options.certainty_words=["a","b"]', "3 edges need 4 words"),
        ("model.options.explain_method=magic", "explain_method='magic'"),
    ):
        config = load_experiment("findings_report_template", smoke=True, overrides=[option])
        with pytest.raises(ConfigError, match=message):
            FindingsToReportTask(config)


def test_an_openai_writer_run_sends_icil_prompts_caches_and_scores_cleaned_text(run, tmp_path):
    """The same trained run re-evaluated with the openai writer against a local chat-completions server."""
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from chat_server import ChatServer

    from medcap import training

    server = ChatServer()
    try:
        workdir = tmp_path / "llm_run"
        shutil.copytree(run / "run", workdir)
        config = json.loads((workdir / "config.json").read_text())
        config["model"]["options"].update({"writer": "openai", "llm_base_url": server.base_url, "llm_model": "tiny-chat", "icil_k": 2, "llm_concurrency": 2})
        (workdir / "config.json").write_text(json.dumps(config))
        metrics = training.evaluate_workdir(workdir)
        n = metrics["meta/num_examples"]
        prompts = [json.loads(line) for line in (workdir / "prompts_test.jsonl").read_text().splitlines()]
        assert len(prompts) == n and [m["role"] for m in prompts[0]["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]
        # One request per distinct prompt (the smoke classifier gives some studies the same description).
        distinct = {json.dumps(p["messages"]) for p in prompts}
        assert {json.dumps(r["body"]["messages"]) for r in server.requests} == distinct
        assert len(server.requests) == len(distinct) and server.max_in_flight <= 2
        writer = json.loads(metrics["meta/writer"])
        assert writer["writer"] == "openai" and writer["model"] == "tiny-chat" and writer["sent"] == len(distinct) and writer["icil_k"] == 2
        train_ids = {json.loads(line)["description"]["study_id"] for line in (workdir / "descriptions_train.jsonl").read_text().splitlines()}
        test_ids = {p["id"] for p in prompts}
        assert train_ids and not train_ids & test_ids  # examples come from the train split only
        reports = [json.loads(line) for line in (workdir / "reports_test.jsonl").read_text().splitlines()]
        assert reports[0]["report"].startswith("There is ") and reports[0]["scored"] == reports[0]["scored"].lower()
        assert 0.0 <= metrics["faithfulness/f1"] <= 1.0 and "Bleu_4" in metrics
        # Evaluating again sends nothing: every reply is cached.
        server.requests.clear()
        training.evaluate_workdir(workdir)
        assert server.requests == []
        # `medcap report` with the LLM writer: ICIL examples from the saved train descriptions.
        image = sorted(str(p) for p in (run / "data").rglob("images/*/0.png"))[0]
        (output,) = training.caption_images(workdir, [image])
        assert output["report"].startswith("There is ") and len(server.requests) <= 1
    finally:
        server.close()


def test_the_llm_experiment_says_what_to_set(monkeypatch):
    from medcap.models.findings_to_report_task import FindingsToReportTask

    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    monkeypatch.delenv("LLM_PRESET_DIR", raising=False)
    config = load_experiment("findings_report_template", smoke=True, overrides=["model.options.writer=openai"])
    with pytest.raises(ConfigError, match="set LLM_BASE_URL"):
        FindingsToReportTask(config)
    with pytest.raises(ConfigError, match="set LLM_PRESET_DIR .* or LLM_BASE_URL"):
        FindingsToReportTask(load_experiment("findings_report_llm", smoke=True))
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert FindingsToReportTask(load_experiment("findings_report_llm", smoke=True)).options["writer"] == "openai"
    monkeypatch.setenv("LLM_PRESET_DIR", "/some/preset")
    assert FindingsToReportTask(load_experiment("findings_report_llm", smoke=True)).options["writer"] == "keras_hub"


def test_the_ablation_rows_share_the_classifier_and_say_when_no_llm_is_configured(run, tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from chat_server import ChatServer

    from medcap.models.findings_to_report_ablation import render_table, run_ablation

    monkeypatch.delenv("LLM_PRESET_DIR", raising=False)

    server = ChatServer()
    try:
        monkeypatch.setenv("LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("LLM_MODEL", "tiny-chat")
        # Three of the five rows keep the test short; ICIL and CoT are each on in one and off in the other.
        results = run_ablation(run / "run", tmp_path / "all", rows=["template", "llm (ICIL + CoT)", "llm, neither"])
        assert list(results) == ["template", "llm (ICIL + CoT)", "llm, neither"]
        roles = {len(r["body"]["messages"]) for r in server.requests}
        assert roles == {2, 8}  # without ICIL: system + study; with it: three examples in between
        systems = {r["body"]["messages"][0]["content"].endswith("nothing after the report.") for r in server.requests}
        assert systems == {True, False}  # CoT on and off
        table = (tmp_path / "all" / "ablation.md").read_text()
        assert table.count("\n| llm") == 2 and "`tiny-chat` through the `openai` writer" in table
        with pytest.raises(ValueError, match="unknown ablation rows \\['llm, maybe'\\]"):
            run_ablation(run / "run", tmp_path / "all", rows=["llm, maybe"])
        # The classifier was evaluated once, in the run; every row reused that evaluation.
        original = (run / "run" / "classifier" / "metrics_test.json").stat().st_mtime
        for row in (tmp_path / "all").glob("*/classifier/metrics_test.json"):
            assert row.stat().st_mtime == original
        assert results["template"]["faithfulness/f1"] == 1.0
    finally:
        server.close()
    assert "No LLM was configured" in render_table({"template": results["template"]})
    assert "## Ablation: template vs LLM" in (run / "run" / "report.md").read_text()


def test_a_fine_tuned_keras_hub_writer_run(run, tmp_path, monkeypatch):
    """The trained run re-evaluated with findings_report_llm_finetuned's writer: a tiny GPT-2 preset
    (tokenizer learned from the train reports) fine-tuned with LoRA on the train pairs, then writing."""
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tiny_causal_lm import write_tiny_gpt2

    from medcap import training

    workdir = tmp_path / "finetuned"
    shutil.copytree(run / "run", workdir)
    bank = json.loads((run / "run" / "sentence_bank.json").read_text())  # sentences of the train reports
    train_sentences = [s for states in bank["sentences"].values() for s in states.values()]
    write_tiny_gpt2(tmp_path / "preset", train_sentences, merges=300, embedding_scale=50.0)
    monkeypatch.setenv("LLM_PRESET_DIR", str(tmp_path / "preset"))
    experiment = load_experiment("findings_report_llm_finetuned", smoke=True)
    config = json.loads((workdir / "config.json").read_text())
    config["model"]["options"].update({**experiment.model.options, "max_new_tokens": 8, "lora_epochs": 1, "lora_sequence_length": 1200})
    (workdir / "config.json").write_text(json.dumps(config))
    metrics = training.evaluate_workdir(workdir)
    record = json.loads(metrics["meta/llm_fine_tune"])
    assert record["pairs"] == len((workdir / "descriptions_train.jsonl").read_text().splitlines()) > 0
    assert record["trainable_parameters"] < record["backbone_parameters"] and (workdir / "llm_lora" / "model.lora.h5").is_file()
    writer = json.loads(metrics["meta/writer"])
    assert writer["writer"] == "keras_hub" and writer["lora_weights"].endswith("model.lora.h5") and writer["icil"] is False
    # A second evaluation reuses the factors and the cached replies: nothing is trained or generated.
    mtime = (workdir / "llm_lora" / "model.lora.h5").stat().st_mtime
    again = json.loads(training.evaluate_workdir(workdir)["meta/writer"])
    assert again["sent"] == 0 and (workdir / "llm_lora" / "model.lora.h5").stat().st_mtime == mtime
