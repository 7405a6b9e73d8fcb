"""`medcap score` and `medcap baseline` through the real console entry point."""

from __future__ import annotations

import json

import pytest

from medcap.cli import main
from medcap.data.base import ReadResult
from medcap.evaluation import text_metrics as tm
from medcap.registry import DATASETS

REFS = {
    "s1": ["The heart is normal in size. No pleural effusion."],
    "s2": "Mild cardiomegaly.\nSmall left pleural effusion.",
    "s3": ["No acute cardiopulmonary abnormality.", "Lungs are clear."],
    "s4": ["Possible right lower lobe pneumonia."],
}
PREDS = {
    "s1": ["the heart is normal in size . no effusion ."],
    "s2": "the heart is enlarged . small pleural effusion .",
    "s3": ["lungs are clear ."],
    "s4": [""],
}
QUICK = ["--metrics", "bleu", "rouge", "cider", "ce"]


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def files(tmp_path):
    return _write(tmp_path, "refs.json", REFS), _write(tmp_path, "preds.json", PREDS)


def test_score_json_keys_and_values(files, capsys):
    refs, preds = files
    assert main(["score", "--references", refs, "--predictions", preds, "--json", *QUICK]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [k for k in result if "/" not in k] == list(tm.COCO_KEYS)
    assert result["METEOR"] is None  # not requested
    expected = tm.score_corpus(REFS, PREDS, metrics=["bleu", "rouge", "cider", "ce"])
    for key, value in expected.items():
        if isinstance(value, float):
            assert result[key] == pytest.approx(value, abs=1e-12), key
    assert result["meta/normalisation"] == tm.NORMALISATION and result["meta/ce_uncertain"] == 0


def test_score_options(files, capsys):
    refs, preds = files
    args = ["score", "--references", refs, "--predictions", preds, "--json", *QUICK]
    assert (
        main(
            [
                *args,
                "--bleu-flavour",
                "nltk",
                "--bootstrap",
                "50",
                "--seed",
                "2",
                "--ce-uncertain",
                "1",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["Bleu_1"] == result["nltk/Bleu_1"] and result["meta/bleu_flavour"] == "nltk"
    assert result["ci_low/Bleu_1"] <= result["Bleu_1"] <= result["ci_high/Bleu_1"]
    assert result["meta/bootstrap_resamples"] == 50 and result["meta/ce_uncertain"] == 1


def test_score_without_java_warns_and_scores_the_rest(files, capsys, monkeypatch):
    monkeypatch.setattr(tm, "find_java", lambda: None)
    refs, preds = files
    assert main(["score", "--references", refs, "--predictions", preds, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["METEOR"] is None and result["Bleu_1"] > 0 and result["CIDEr"] is not None
    assert "warning: METEOR unavailable: java not found" in captured.err


def test_score_plain_listing(files, capsys):
    refs, preds = files
    assert main(["score", "--references", refs, "--predictions", preds, "--metrics", "bleu"]) == 0
    out = capsys.readouterr().out
    assert (
        out.splitlines()[0].startswith("Bleu_1")
        and "meta/bleu_flavour: coco" in out
        and "CIDEr" not in out
    )


def test_score_id_mismatch_is_one_line(tmp_path, capsys):
    refs = _write(tmp_path, "r.json", {f"id{i}": "a" for i in range(8)})
    preds = _write(tmp_path, "p.json", {f"id{i}": "a" for i in range(3, 8)} | {"x9": "b"})
    assert main(["score", "--references", refs, "--predictions", preds]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "missing from predictions: id0, id1, id2" in err and "missing from references: x9" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "b"]', "expected a JSON object"),
        ('{"s1": 3}', "s1: expected a text or a list of texts"),
        ('{"s1": []}', "s1: empty list"),
    ],
)
def test_score_bad_files_name_file_and_record(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    refs = _write(tmp_path, "r.json", {"s1": "a"})
    assert main(["score", "--references", refs, "--predictions", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err


def test_score_two_predictions_for_one_id(tmp_path, capsys):
    refs = _write(tmp_path, "r.json", {"s1": "a"})
    preds = _write(tmp_path, "p.json", {"s1": ["a", "b"]})
    assert main(["score", "--references", refs, "--predictions", preds]) == 2
    assert "s1: expected exactly one predicted text, got 2" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# medcap baseline, with a tiny fake dataset reader


class FakeSource:
    name = "fake_eval_dataset"
    variants = ("default",)

    def __init__(self, train=None):
        self.train_texts = (
            train
            if train is not None
            else [
                "the heart is normal . no effusion .",
                "the heart is normal . no effusion .",
                "mild cardiomegaly .",
                "no pneumothorax . lungs are clear .",
            ]
        )
        self.calls = []

    def _example(self, i, text, split):
        return {
            "id": f"{split}{i}",
            "patient_id": f"p{split}{i}",
            "image": "x.png",
            "report": text.upper(),
            "report_clean": text,
        }

    def read(self, source_dir, *, variant="", split_seed=0, skip_invalid=False, options=None):
        self.calls.append({"source_dir": str(source_dir), "variant": variant, "options": options})
        return ReadResult(
            splits={
                "train": [self._example(i, t, "train") for i, t in enumerate(self.train_texts)],
                "val": [self._example(0, "lungs are clear .", "val")],
                "test": [
                    self._example(i, t, "test")
                    for i, t in enumerate(["no effusion .", "heart enlarged .", "clear ."])
                ],
            }
        )

    def check(self, source_dir):  # pragma: no cover - unused here
        raise NotImplementedError

    def synthesize(self, out_dir, *, num, seed):  # pragma: no cover - unused here
        raise NotImplementedError


@pytest.fixture
def fake_dataset():
    source = FakeSource()
    DATASETS.register(FakeSource.name, source, override=True)
    yield source
    DATASETS.unregister(FakeSource.name)


def test_baseline_constant_writes_predictions(tmp_path, capsys, fake_dataset):
    out, refs_out = tmp_path / "preds.json", tmp_path / "refs.json"
    code = main(
        [
            "baseline",
            "constant",
            "--dataset",
            FakeSource.name,
            "--data-dir",
            str(tmp_path),
            "--out",
            str(out),
            "--references-out",
            str(refs_out),
            "--option",
            "check_images=none",
        ]
    )
    assert code == 0
    predictions = json.loads(out.read_text())
    assert list(predictions) == ["test0", "test1", "test2"]
    assert all(v == ["the heart is normal . no effusion ."] for v in predictions.values())
    assert json.loads(refs_out.read_text()) == {
        "test0": ["no effusion ."],
        "test1": ["heart enlarged ."],
        "test2": ["clear ."],
    }
    assert fake_dataset.calls == [
        {"source_dir": str(tmp_path), "variant": "", "options": {"check_images": "none"}}
    ]
    assert "constant baseline" in capsys.readouterr().err
    # The written files are what `medcap score` reads.
    assert (
        main(
            [
                "score",
                "--references",
                str(refs_out),
                "--predictions",
                str(out),
                "--json",
                "--metrics",
                "bleu",
            ]
        )
        == 0
    )


def test_baseline_random_train_is_seeded(tmp_path, capsys, fake_dataset):
    outputs = []
    for seed in ("5", "5", "6"):
        path = tmp_path / f"r{len(outputs)}.json"
        args = [
            "baseline",
            "random_train",
            "--dataset",
            FakeSource.name,
            "--data-dir",
            str(tmp_path),
        ]
        assert main([*args, "--split", "val", "--seed", seed, "--out", str(path)]) == 0
        outputs.append(json.loads(path.read_text()))
    assert outputs[0] == outputs[1] and list(outputs[0]) == ["val0"]
    assert outputs[0]["val0"][0] in fake_dataset.train_texts
    capsys.readouterr()
    assert (
        main(
            ["baseline", "random_train", "--dataset", FakeSource.name, "--data-dir", str(tmp_path)]
        )
        == 0
    )
    assert set(json.loads(capsys.readouterr().out)) == {"test0", "test1", "test2"}


def test_baseline_errors(tmp_path, capsys):
    assert (
        main(["baseline", "constant", "--dataset", "no_such_dataset", "--data-dir", str(tmp_path)])
        == 2
    )
    assert "unknown dataset 'no_such_dataset'; valid names:" in capsys.readouterr().err
    DATASETS.register(FakeSource.name, FakeSource(train=[]), override=True)
    try:
        assert (
            main(
                ["baseline", "constant", "--dataset", FakeSource.name, "--data-dir", str(tmp_path)]
            )
            == 2
        )
        assert "train split of fake_eval_dataset is empty" in capsys.readouterr().err
    finally:
        DATASETS.unregister(FakeSource.name)
