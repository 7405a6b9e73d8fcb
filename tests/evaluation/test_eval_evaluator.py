"""The one evaluator of generated reports (medcap.evaluation.evaluator)."""

from __future__ import annotations

import pytest

from medcap.config import EvalConfig
from medcap.evaluation import baselines as trivial
from medcap.evaluation.evaluator import TextOutputs, evaluate_texts
from medcap.evaluation.text_metrics import COCO_KEYS, score_corpus

REFERENCES = {
    "a": ["the heart is normal in size . no pleural effusion ."],
    "b": ["large right pleural effusion . the heart is enlarged ."],
    "c": ["no acute cardiopulmonary process ."],
    "d": ["mild pulmonary edema . cardiomegaly ."],
}
TRAIN = [
    "the heart is normal in size . no pleural effusion .",
    "no acute cardiopulmonary process .",
    "small left pleural effusion .",
    "cardiomegaly with mild edema .",
    "no acute cardiopulmonary process .",
]
#: The reference scorer without METEOR: each jar start costs seconds, and the
#: evaluator's METEOR is score_corpus's (it passes its jar through).
NO_METEOR = ["bleu", "rouge", "cider", "ce"]
TRUTH = {
    "a": {"Pleural Effusion": False, "Cardiomegaly": False, "Edema": False},
    "b": {"Pleural Effusion": True, "Cardiomegaly": True, "Edema": False},
    "c": {"Pleural Effusion": False, "Cardiomegaly": False, "Edema": False},
    "d": {"Pleural Effusion": False, "Cardiomegaly": True, "Edema": True},
}


def _config(**changes) -> EvalConfig:
    return EvalConfig(**{"bleu_flavour": "coco", "baselines": ("constant", "random_train"), **changes})


def test_model_and_baselines_get_the_same_keys_and_the_reference_scorer_values():
    generated = {"a": "the heart is normal .", "b": "right pleural effusion .", "c": "no acute process .", "d": "edema ."}
    config = _config(bleu_flavour="nltk")
    result = evaluate_texts(TextOutputs(REFERENCES, generated, TRAIN), config, seed=3, truth=TRUTH)

    # The model's scores are score_corpus's, key for key.
    expected = score_corpus(REFERENCES, generated, bleu_flavour="nltk", seed=3, metrics=NO_METEOR)
    for key in (*COCO_KEYS, "coco/Bleu_4", "nltk/Bleu_2", "rouge_score/ROUGE_L_F1", "ce/micro_f1"):
        if key != "METEOR":
            assert result.metrics[key] == expected[key], key
    assert "METEOR" in result.metrics  # None, with meta/meteor saying why, where java is missing

    # Each baseline has exactly the model's numeric text and truth keys, scored by the same scorer.
    ours = {k for k, v in result.metrics.items() if "/" not in k or k.split("/")[0] in ("coco", "nltk", "ce", "truth")}
    ours = {k for k in ours if not k.startswith(("meta/", "baselines/"))}
    for name in ("constant", "random_train"):
        keys = {k[len(f"baselines/{name}/") :] for k in result.metrics if k.startswith(f"baselines/{name}/")}
        assert ours <= keys, (name, sorted(ours - keys))
        assert set(result.baselines[name]) == keys
        assert result.metrics[f"meta/baselines/{name}"].startswith(f"{name} baseline")
    constant, _ = trivial.constant_baseline(list(REFERENCES), TRAIN, seed=3)
    assert result.baseline_texts["constant"] == {k: v[0] for k, v in constant.items()}
    assert result.baselines["constant"]["Bleu_2"] == score_corpus(REFERENCES, constant, bleu_flavour="nltk", metrics=["bleu"])["Bleu_2"]
    random_train = trivial.random_train_baseline(list(REFERENCES), TRAIN, seed=3)
    assert result.baseline_texts["random_train"] == {k: v[0] for k, v in random_train.items()}

    # Truth CE for the model and each baseline.
    assert "truth/ce/micro_f1" in result.metrics and "baselines/constant/truth/ce/micro_f1" in result.metrics
    assert result.evaluation.ids == sorted(REFERENCES)


def test_a_perfect_system_scores_one_and_beats_every_trivial_baseline():
    perfect = {key: texts[0] for key, texts in REFERENCES.items()}
    result = evaluate_texts(TextOutputs(REFERENCES, perfect, TRAIN), _config(), seed=0, truth=TRUTH)
    assert result.metrics["Bleu_4"] == pytest.approx(1.0)
    assert result.metrics["truth/ce/micro_f1"] == 1.0
    for name in ("constant", "random_train"):
        assert result.metrics[f"baselines/{name}/Bleu_4"] < result.metrics["Bleu_4"]


def test_image_baselines_come_from_the_task_or_are_recorded_unavailable():
    generated = {key: "no acute cardiopulmonary process ." for key in REFERENCES}
    nearest = {key: TRAIN[0] for key in REFERENCES}
    config = _config(baselines=("nearest_train",))
    supplied = evaluate_texts(
        TextOutputs(REFERENCES, generated, TRAIN, task_baselines={"nearest_train": (nearest, "nearest: test")}),
        config,
        seed=0,
    )
    assert supplied.baseline_texts == {"nearest_train": nearest}
    assert supplied.metrics["baselines/nearest_train/Bleu_1"] == score_corpus(REFERENCES, nearest, metrics=["bleu"])["Bleu_1"]
    assert supplied.metrics["meta/baselines/nearest_train"] == "nearest: test"
    assert "truth/ce/micro_f1" not in supplied.metrics  # no truth: real data

    missing = evaluate_texts(TextOutputs(REFERENCES, generated, TRAIN), config, seed=0)
    assert missing.baselines == {}
    assert missing.metrics["meta/baselines/nearest_train"].startswith("unavailable")
    assert not any(k.startswith("baselines/") for k in missing.metrics)


def test_label_scores_and_their_baselines_get_the_same_ml_keys():
    import numpy as np

    from medcap.evaluation.baselines import majority_labels_baseline
    from medcap.evaluation.classification import multilabel_metrics
    from medcap.evaluation.evaluator import evaluate_labels

    names = ["Edema", "Pleural Effusion", "Cardiomegaly"]
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    train = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1]])
    scores = evaluate_labels(labels, labels * 0.9 + 0.05, names, train_labels=train, seed=0)
    assert scores.metrics["ml/f1"] == 1.0 and scores.metrics["meta/findings_names"] == ",".join(names)
    ours = {k for k in scores.metrics if k.startswith("ml/")}
    for name in ("prevalence", "majority"):
        assert set(scores.baselines[name]) == ours
        assert all(scores.metrics[f"baselines/{name}/{k}"] == v for k, v in scores.baselines[name].items())
    expected = multilabel_metrics(labels, majority_labels_baseline(train, 4), label_names=names)
    assert scores.baselines["majority"]["ml/f1"] == expected["micro_f1"]  # every label at its train majority: 1, 0, 1


def test_ordinal_target_and_its_majority_baseline():
    import numpy as np

    from medcap.evaluation.classification import ordinal_metrics
    from medcap.evaluation.evaluator import evaluate_ordinal

    scores = evaluate_ordinal([1, 2, 3, 3, 2], [1, 2, 3, 3, 2], train_levels=[3, 3, 2, 4])
    assert scores.metrics["oc/accuracy"] == 1.0 and scores.metrics["meta/acuity_majority_level"] == 3
    majority = {f"oc/{k}": v for k, v in ordinal_metrics([1, 2, 3, 3, 2], [3] * 5).items()}
    np.testing.assert_equal(scores.baselines, {"majority": majority})  # NaN Spearman for a constant, on both sides
    assert scores.metrics["baselines/majority/oc/accuracy"] == 0.4


def test_retrieval_counts_a_hit_on_any_copy_of_a_shared_report():
    import numpy as np

    from medcap.evaluation.evaluator import evaluate_retrieval

    texts = ["no effusion .", "no effusion .", "cardiomegaly .", "edema ."]
    similarity = np.eye(4)
    similarity[1] = [0.9, 0.5, 0.1, 0.0]  # image 1 ranks its report's twin first: a hit
    metrics = evaluate_retrieval(similarity, texts, (1, 2))
    assert metrics["retrieval/i2t/R@1"] == 1.0
    assert metrics["retrieval/num_distinct_reports"] == 3
    assert metrics["retrieval/num_studies_sharing_a_report"] == 2
    assert metrics["retrieval/chance/R@1"] == 1 / 3 and metrics["retrieval/chance/R@2"] == 2 / 3
