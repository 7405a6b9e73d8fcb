"""`medcap explain` on a trained findings run: overlays, peaks JSON, maps; bad requests say why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medcap import cli
from medcap.config import load_experiment


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("explain")
    config = load_experiment("findings_chexnet", smoke=True, overrides=[f"data.data_dir={root / 'data'}", "train.verbose=0"])
    from medcap import training

    training.fit(config, root / "run")
    return root


def _images(root: Path, n: int) -> list[str]:
    return [str(p) for p in sorted((root / "data").rglob("images/*.png"))[:n]]


def test_explain_top_k_writes_overlays_json_and_maps(run, capsys):
    out = run / "maps"
    code = cli.main(["explain", "--workdir", str(run / "run"), *_images(run, 3), "--top", "2", "--method", "gradcam", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "explanations.json").read_text())
    assert record["method"] == "gradcam" and len(record["explanations"]) == 6
    maps = np.load(out / "maps.npz")["maps"]
    assert maps.shape == (6, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    for entry, saliency in zip(record["explanations"], maps):
        assert (out / entry["overlay"]).is_file()
        assert saliency[entry["peak"]["row"], entry["peak"]["col"]] == pytest.approx(saliency.max())
    # Each image's two findings are its two most probable ones, most probable first.
    first, second = record["explanations"][:2]
    assert first["image"] == second["image"] and first["probability"] >= second["probability"]
    printed = capsys.readouterr().out
    assert "wrote 6 explanation(s)" in printed


def test_explain_one_label_with_integrated_gradients(run):
    out = run / "ig"
    code = cli.main(["explain", "--workdir", str(run / "run"), *_images(run, 2), "--label", "Effusion", "--method", "integrated_gradients", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "explanations.json").read_text())
    assert [e["finding"] for e in record["explanations"]] == ["Effusion", "Effusion"]


def test_explain_unknown_label_is_a_clear_error(run, capsys):
    code = cli.main(["explain", "--workdir", str(run / "run"), *_images(run, 1), "--label", "Fracture", "--out", str(run / "x")])
    assert code != 0
    assert "unknown finding 'Fracture'" in capsys.readouterr().err


def test_caption_prints_the_findings(run, capsys):
    code = cli.main(["caption", "--workdir", str(run / "run"), *_images(run, 1)])
    assert code == 0
    assert "\t" in capsys.readouterr().out
