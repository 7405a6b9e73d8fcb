"""`medcap data synth|check|prepare` through the real `medcap` entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medcap.cli
from medcap.data import synthetic
from medcap.registry import DATASETS


@pytest.fixture(autouse=True)
def only_data_commands(monkeypatch):
    # Other command groups are written in parallel; this file tests `data` only.
    monkeypatch.setattr(medcap.cli, "COMMAND_MODULES", ("medcap.cli", "medcap.data.cli"))


def run(*argv: str) -> int:
    return medcap.cli.main([str(a) for a in argv])


def test_synth_writes_real_format_trees(tmp_path: Path, capsys):
    assert run("data", "synth", "medicat", "--out", tmp_path / "m", "--num", 12, "--seed", 3, "--image-size", 64) == 0
    assert "wrote synthetic medicat (12 records, seed 3)" in capsys.readouterr().out
    assert (tmp_path / "m" / "s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl").is_file()
    assert len(synthetic.load_truth(tmp_path / "m")) == 13  # 12 short captions + 1 long
    assert run("data", "synth", "iu_xray", "--out", tmp_path / "i", "--num", 10, "--image-size", 64) == 0
    assert (tmp_path / "i" / "annotation.json").is_file() and len(list((tmp_path / "i" / "ecgen-radiology").glob("*.xml"))) == 10
    # A non-empty directory is not overwritten by accident.
    assert run("data", "synth", "iu_xray", "--out", tmp_path / "i", "--num", 10) == 2
    assert "exists and is not empty; pass --force" in capsys.readouterr().err


def test_synth_mimic_dispatches_to_the_registered_source(tmp_path: Path, monkeypatch):
    calls = []

    class FakeMimic:
        name = "mimic"
        variants = ("balanced_10k",)

        def synthesize(self, out_dir, *, num, seed, image_size):
            calls.append((Path(out_dir), num, seed, image_size))
            Path(out_dir).mkdir(parents=True)
            return Path(out_dir)

    real = DATASETS.get("mimic")
    DATASETS.register("mimic", FakeMimic(), override=True)
    try:
        assert run("data", "synth", "mimic", "--out", tmp_path / "x", "--num", 40, "--seed", 9) == 0
    finally:
        DATASETS.register("mimic", real, override=True)
    assert calls == [(tmp_path / "x", 40, 9, 256)]


def test_check_good_and_broken_trees(tmp_path: Path, capsys):
    tree = tmp_path / "iu"
    run("data", "synth", "iu_xray", "--out", tree, "--num", 12, "--image-size", 64)
    capsys.readouterr()
    assert run("data", "check", "iu_xray", "--source", tree) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "train=" in out
    annotation = json.loads((tree / "annotation.json").read_text())
    entry = annotation["train"][0]
    (tree / "images" / entry["image_path"][1]).unlink()
    xml = tree / "ecgen-radiology" / "3.xml"
    xml.write_bytes(xml.read_bytes().replace(b"Indiana University Chest", b"Indiana Universit\xe9 Chest"))
    assert run("data", "check", "iu_xray", "--source", tree) == 1
    captured = capsys.readouterr()
    assert "2 problem(s):" in captured.err
    assert f"annotation.json: train[0] (id {entry['id']}): field 'image_path[1]': missing image file" in captured.err
    assert "3.xml: line" in captured.err and "not valid UTF-8" in captured.err
    assert run("data", "check", "iu_xray", "--source", tree, "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and {p["field"] for p in report["problems"]} == {"image_path[1]", None}


def test_check_errors_are_one_line(tmp_path: Path, capsys):
    assert run("data", "check", "medicat", "--source", tmp_path) == 1
    assert "MediCat jsonl not found" in capsys.readouterr().err
    assert run("data", "check", "chexpert", "--source", tmp_path) == 1
    assert "missing file: expected CheXpert's train.csv" in capsys.readouterr().err
    assert run("data", "check", "chexpert14", "--source", tmp_path) == 2
    assert "unknown dataset 'chexpert14'; valid names: chestxray14, chexpert, iu_xray, labelled_images" in capsys.readouterr().err


def test_prepare_prints_counts_and_skipped(tmp_path: Path, capsys):
    tree = tmp_path / "medicat"
    run("data", "synth", "medicat", "--out", tree, "--num", 20, "--image-size", 64)
    records = (tree / "s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl").read_text().splitlines()
    records[0] = "{not json"
    (tree / "s2_full_figures_oa_nonroco_combined_medical_top4_public.jsonl").write_text("\n".join(records) + "\n")
    capsys.readouterr()
    assert run("data", "prepare", "medicat", "--source", tree, "--data-dir", tmp_path / "tfds") == 2
    assert "line 1: malformed JSON" in capsys.readouterr().err
    code = run("data", "prepare", "medicat", "--source", tree, "--data-dir", tmp_path / "tfds", "--skip-invalid", "--config", "model70")
    assert code == 0
    out = capsys.readouterr().out
    summary = next(line for line in out.splitlines() if line.startswith("medcap_medicat/model70_skipinvalid in "))
    counts = dict(part.split("=") for part in summary.split(": ")[1].split())
    assert set(counts) == {"train", "val", "test"}
    assert sum(map(int, counts.values())) in (19, 20)  # the broken line was either a short or a long caption
    assert "skipped 1 invalid record(s):" in out and "line 1: malformed JSON" in out


def test_the_cli_offers_every_registered_dataset():
    from medcap.data.cli import SYNTH_DATASETS
    from medcap.registry import DATASETS

    assert sorted(SYNTH_DATASETS) == DATASETS.names()


def test_prepare_refuses_beam_options_without_beam_and_builds_findings_datasets(tmp_path: Path, capsys):
    tree = DATASETS.get("chestxray14").synthesize(tmp_path / "nih", num=20, seed=0, image_size=32)
    assert run("data", "prepare", "chestxray14", "--source", tree, "--data-dir", tmp_path / "tfds", "--beam-options=--runner=DirectRunner") == 2
    assert "--beam-options without --beam" in capsys.readouterr().err
    assert run("data", "prepare", "chestxray14", "--source", tree, "--data-dir", tmp_path / "tfds") == 0
    assert "medcap_chestxray14/official in" in capsys.readouterr().out
