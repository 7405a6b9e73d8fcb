"""Text metrics equal direct pycocoevalcap / nltk / rouge-score calls on real and messy text."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
from conftest import pairings

from medcap.evaluation import text_metrics as tm
from medcap.evaluation.statistics import bootstrap_weights

COCO_GROUPS = ["bleu", "meteor", "rouge", "cider"]

MESSY = {
    "newline": (["the heart is normal .\nno effusion ."], "heart normal\n\nno pleural effusion"),
    "crlf_tabs": (["lungs\tare clear\r\nno pneumothorax"], "lungs are  clear \t no pneumothorax "),
    "pipes_hyp": (["no focal consolidation"], "no ||| focal consolidation|||"),
    "pipes_ref": (["no ||| focal consolidation"], "no focal consolidation"),
    "empty_hyp": (["the cardiomediastinal silhouette is normal ."], ""),
    "empty_ref": ([""], "the heart is enlarged ."),
    "both_empty": ([""], "   "),
    "unicode": (["cœur normal — pas d'épanchement"], "cœur normal, épanchement…"),
    "punctuation_only": ([". . ."], " . "),
    "multi_ref_messy": (["no effusion\n", "  small left effusion |||"], "small effusion"),
}


def _direct(gts: dict, res: dict, meteor=None) -> dict:
    """pycocoevalcap's own classes, called the way R2Gen calls them."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, bleu_per = Bleu(4).compute_score(gts, res)
    for k in range(4):
        out[f"Bleu_{k + 1}"] = (bleu[k], np.array(bleu_per[k]))
    out["ROUGE_L"] = Rouge().compute_score(gts, res)
    out["CIDEr"] = Cider().compute_score(gts, res)
    if meteor is not None:
        out["METEOR"] = meteor.compute_score(gts, res)
    return out


def _normalised(refs: dict, preds: dict) -> tuple[dict, dict]:
    ids = sorted(refs)
    gts = {i: [tm.normalise_text(r) for r in refs[i]] for i in ids}
    res = {i: [tm.normalise_text(preds[i][0])] for i in ids}
    return gts, res


def _check_equal(result: tm.Evaluation, direct: dict) -> None:
    for key, (score, per_report) in direct.items():
        assert result.corpus[key] == pytest.approx(float(score), abs=1e-9), key
        np.testing.assert_allclose(
            result.per_report[key], np.asarray(per_report, dtype=float), atol=1e-9, err_msg=key
        )


@pytest.mark.parametrize("pairing", ["shifted", "same", "random", "two_refs"])
def test_equal_to_pycocoevalcap_on_real_reports(iu_reports, pairing):
    """BLEU-1..4, ROUGE_L and CIDEr on all 590 IU X-ray test reports, corpus and per report."""
    refs, preds = pairings(iu_reports)[pairing]
    result = tm.evaluate(refs, preds, metrics=["bleu", "rouge", "cider"])
    _check_equal(result, _direct(*_normalised(refs, preds)))
    assert result.ids == sorted(refs)
    if pairing == "same":
        assert result.corpus["Bleu_4"] > 0.999 and result.corpus["CIDEr"] > 1


def test_meteor_equal_to_pycocoevalcap_on_real_reports(iu_reports, meteor_jar, pycoco_meteor):
    """METEOR, corpus and per report, for every pairing (60 reports each: the jar is slow)."""
    ids = sorted(iu_reports)[:60]
    for pairing, (refs, preds) in pairings({i: iu_reports[i] for i in ids}).items():
        result = tm.evaluate(refs, preds, metrics=["meteor"], meteor=meteor_jar)
        gts, res = _normalised(refs, preds)
        score, per_report = pycoco_meteor.compute_score(gts, res)
        assert result.corpus["METEOR"] == pytest.approx(score, abs=1e-9), pairing
        np.testing.assert_allclose(
            result.per_report["METEOR"], per_report, atol=1e-9, err_msg=pairing
        )


def test_raw_reports_with_punctuation_equal_pycocoevalcap(
    iu_raw_reports, meteor_jar, pycoco_meteor
):
    """Uncleaned reports (capitals, punctuation glued to words) are scored as given."""
    ids = sorted(iu_raw_reports)[:60]
    refs = {i: [iu_raw_reports[i]] for i in ids}
    preds = {i: [iu_raw_reports[ids[(k + 3) % len(ids)]]] for k, i in enumerate(ids)}
    result = tm.evaluate(refs, preds, metrics=COCO_GROUPS, meteor=meteor_jar)
    _check_equal(result, _direct(*_normalised(refs, preds), meteor=pycoco_meteor))


def test_normalisation_is_identity_on_single_spaced_text(iu_reports, meteor_jar, pycoco_meteor):
    """On text without whitespace runs we equal pycocoevalcap on the raw input too."""
    ids = sorted(iu_reports)[:60]
    texts = {i: " ".join(iu_reports[i].split()) for i in ids}
    refs = {i: [texts[i]] for i in ids}
    preds = {i: [texts[ids[(k + 1) % len(ids)]]] for k, i in enumerate(ids)}
    gts, res = _normalised(refs, preds)
    assert gts == refs and res == preds
    _check_equal(
        tm.evaluate(refs, preds, metrics=COCO_GROUPS, meteor=meteor_jar),
        _direct(refs, preds, pycoco_meteor),
    )


def test_rouge_needs_the_normalisation():
    """R2Gen's cleaner leaves ' .  . ' runs; pycocoevalcap's ROUGE_L splits on single spaces and
    counts the empty tokens, so raw and normalised text score differently. We record which we used."""
    from pycocoevalcap.rouge.rouge import Rouge

    ref, hyp = "no effusion .  . heart normal .", "no effusion . heart normal ."
    raw = Rouge().calc_score([hyp], [ref])
    ours = tm.evaluate({"a": ref}, {"a": hyp}, metrics=["rouge"]).corpus
    assert ours["ROUGE_L"] == pytest.approx(
        Rouge().calc_score([hyp], [tm.normalise_text(ref)]), abs=1e-12
    )
    assert abs(ours["ROUGE_L"] - raw) > 0.01
    assert ours["meta/normalisation"] == tm.NORMALISATION


def test_messy_inputs_equal_pycocoevalcap_on_normalised_text(meteor_jar, pycoco_meteor):
    refs = {name: value[0] for name, value in MESSY.items()}
    preds = {name: [value[1]] for name, value in MESSY.items()}
    result = tm.evaluate(refs, preds, metrics=COCO_GROUPS, meteor=meteor_jar)
    gts, res = _normalised(refs, preds)
    direct = _direct(gts, res)  # BLEU, ROUGE_L, CIDEr take the normalised text as is
    # pycocoevalcap's Meteor is fed the jar-safe text (|||-free), the only input it survives.
    jar_gts = {i: [tm.jar_text(r) for r in v] for i, v in gts.items()}
    jar_res = {i: [tm.jar_text(v[0])] for i, v in res.items()}
    direct["METEOR"] = pycoco_meteor.compute_score(jar_gts, jar_res)
    _check_equal(result, direct)
    for key in tm.COCO_KEYS:
        assert np.isfinite(result.corpus[key]), key


def test_pipes_in_a_reference_do_not_split_it(meteor_jar):
    """pycocoevalcap would read 'a ||| b' in a reference as two references; we remove the separator."""
    one = tm.evaluate(
        {"x": ["no focal ||| consolidation"]},
        {"x": "no focal consolidation"},
        metrics=["meteor"],
        meteor=meteor_jar,
    )
    assert one.corpus["METEOR"] == pytest.approx(
        tm.evaluate(
            {"x": ["no focal consolidation"]},
            {"x": "no focal consolidation"},
            metrics=["meteor"],
            meteor=meteor_jar,
        ).corpus["METEOR"]
    )


@pytest.mark.parametrize("pairing", ["shifted", "two_refs"])
def test_nltk_flavour_equals_nltk(iu_reports, pairing):
    from nltk.translate.bleu_score import corpus_bleu, sentence_bleu

    refs, preds = pairings(iu_reports)[pairing]
    result = tm.evaluate(refs, preds, metrics=["bleu"], bleu_flavour="nltk")
    ids = sorted(refs)
    references = [[r.split() for r in refs[i]] for i in ids]
    hypotheses = [preds[i][0].split() for i in ids]
    expected = corpus_bleu(references, hypotheses, weights=tm.NLTK_WEIGHTS)
    for k in range(4):
        assert result.corpus[f"nltk/Bleu_{k + 1}"] == pytest.approx(expected[k], abs=1e-12)
        assert result.corpus[f"Bleu_{k + 1}"] == result.corpus[f"nltk/Bleu_{k + 1}"]
    assert result.corpus["meta/bleu_flavour"] == "nltk"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(0, len(ids), 37):
            sentence = sentence_bleu(references[j], hypotheses[j], weights=tm.NLTK_WEIGHTS)
            np.testing.assert_allclose(
                [result.per_report[f"nltk/Bleu_{k + 1}"][j] for k in range(4)],
                sentence,
                atol=1e-12,
                rtol=1e-9,
            )


def test_nltk_flavour_on_messy_text():
    from nltk.translate.bleu_score import corpus_bleu

    refs = {name: value[0] for name, value in MESSY.items()}
    preds = {name: value[1] for name, value in MESSY.items()}
    result = tm.evaluate(refs, preds, metrics=["bleu"])
    gts, res = _normalised(refs, {k: [v] for k, v in preds.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = corpus_bleu(
            [[r.split() for r in gts[i]] for i in gts],
            [res[i][0].split() for i in gts],
            weights=tm.NLTK_WEIGHTS,
        )
    np.testing.assert_allclose(
        [result.corpus[f"nltk/Bleu_{k}"] for k in range(1, 5)], expected, atol=1e-12
    )
    # No unigram match at all: nltk says 0.
    zero = tm.evaluate({"a": "x y z"}, {"a": "p q"}, metrics=["bleu"]).corpus
    assert [zero[f"nltk/Bleu_{k}"] for k in range(1, 5)] == [0.0] * 4


def test_rouge_score_flavour_equals_rouge_score(iu_reports):
    from rouge_score import rouge_scorer

    refs, preds = pairings(iu_reports)["two_refs"]
    result = tm.evaluate(refs, preds, metrics=["rouge"])
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = [scorer.score_multi(refs[i], preds[i][0])["rougeL"].fmeasure for i in sorted(refs)]
    assert result.corpus["rouge_score/ROUGE_L_F1"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert result.corpus["rouge_score/ROUGE_L_F1"] != pytest.approx(
        result.corpus["ROUGE_L"], abs=1e-3
    )


def test_result_keys(iu_reports):
    refs, preds = pairings(iu_reports)["shifted"]
    corpus = tm.score_corpus(refs, preds, metrics=["bleu", "rouge", "cider", "ce"])
    plain = [k for k in corpus if "/" not in k]
    assert plain == list(tm.COCO_KEYS)
    assert corpus["METEOR"] is None  # not requested
    assert {
        "coco/Bleu_4",
        "nltk/Bleu_4",
        "rouge_score/ROUGE_L_F1",
        "ce/micro_f1",
        "meta/ce_uncertain",
    } <= set(corpus)
    assert corpus["Bleu_4"] == corpus["coco/Bleu_4"] and corpus["meta/bleu_flavour"] == "coco"


def test_evaluate_starts_and_closes_its_own_jar(monkeypatch, meteor_jar):
    started, closed = [], []

    class RecordingJar:
        def __init__(self):
            started.append(self)

        def score(self, *args):
            return meteor_jar.score(*args)

        def close(self):
            closed.append(self)

    monkeypatch.setattr(tm, "MeteorJar", RecordingJar)
    corpus = tm.score_corpus(
        {"a": "no effusion ."}, {"a": "no pleural effusion ."}, metrics=["meteor"]
    )
    assert 0 < corpus["METEOR"] < 1 and len(started) == 1 and closed == started


def test_java_missing_reports_meteor_unavailable(monkeypatch, iu_reports):
    monkeypatch.setattr(tm, "find_java", lambda: None)
    refs, preds = pairings(iu_reports)["shifted"]
    corpus = tm.score_corpus(refs, preds, metrics=["bleu", "meteor", "cider"])
    assert corpus["METEOR"] is None
    assert corpus["meta/meteor"].startswith("unavailable: java not found on PATH")
    assert "install a Java runtime" in corpus["meta/meteor"]
    assert 0 < corpus["Bleu_4"] < 1 and corpus["CIDEr"] > 0
    with pytest.raises(tm.MeteorUnavailable, match="java not found"):
        tm.MeteorJar()


def test_id_mismatch_lists_missing_ids_on_each_side():
    refs = {f"r{i}": "text" for i in range(10)}
    preds = {f"r{i}": "text" for i in range(2, 10)} | {"p1": "x", "p2": "y"}
    with pytest.raises(tm.IdMismatchError) as err:
        tm.score_corpus(refs, preds, metrics=["bleu"])
    message = str(err.value)
    assert "\n" not in message
    assert (
        "missing from predictions: r0, r1" in message
        and "missing from references: p1, p2" in message
    )


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="exactly one text"):
        tm.score_corpus({"a": "x"}, {"a": ["x", "y"]}, metrics=["bleu"])
    with pytest.raises(ValueError, match="no reference text"):
        tm.score_corpus({"a": []}, {"a": "x"}, metrics=["bleu"])
    with pytest.raises(ValueError, match="unknown metric group"):
        tm.score_corpus({"a": "x"}, {"a": "x"}, metrics=["spice"])
    with pytest.raises(ValueError, match="nothing to score"):
        tm.score_corpus({}, {})


def test_cider_with_no_reference_tokens_is_zero_not_a_crash():
    from pycocoevalcap.cider.cider import Cider

    with pytest.raises(ValueError):
        Cider().compute_score({"a": [""]}, {"a": ["text"]})
    corpus = tm.score_corpus({"a": [""], "b": ["   "]}, {"a": "text", "b": ""}, metrics=["cider"])
    assert corpus["CIDEr"] == 0.0 and "pycocoevalcap would raise" in corpus["meta/cider"]


# ---------------------------------------------------------------------------
# Bootstrap: resampled corpus statistics equal the libraries on the resampled corpus


def _resampled(refs: dict, preds: dict, ids: list[str], counts: np.ndarray) -> tuple[dict, dict]:
    gts, res = {}, {}
    for i, c in zip(ids, counts):
        for copy in range(int(c)):
            gts[f"{i}#{copy}"] = [tm.normalise_text(r) for r in refs[i]]
            res[f"{i}#{copy}"] = [tm.normalise_text(preds[i][0])]
    return gts, res


def test_bleu_bootstrap_statistics_equal_libraries_on_resampled_corpora(iu_reports):
    from nltk.translate.bleu_score import corpus_bleu
    from pycocoevalcap.bleu.bleu import Bleu

    refs, preds = pairings(iu_reports)["two_refs"]
    corpus = tm.prepare_corpus(refs, preds)
    coco, _, stats = tm.coco_bleu(corpus)
    nltk_stats = tm.nltk_bleu_stats(stats)
    ones = np.ones((1, len(corpus.ids)))
    np.testing.assert_allclose(tm.coco_bleu_from_stats(stats, ones)[0], coco, atol=1e-12)
    weights = bootstrap_weights(len(corpus.ids), 3, seed=5)
    ours_coco = tm.coco_bleu_from_stats(stats, weights)
    ours_nltk = tm.nltk_bleu_from_stats(nltk_stats, weights)
    for b in range(len(weights)):
        gts, res = _resampled(refs, preds, corpus.ids, weights[b])
        with contextlib.redirect_stdout(io.StringIO()):
            expected = Bleu(4).compute_score(gts, res)[0]
        np.testing.assert_allclose(ours_coco[b], expected, atol=1e-9)
        keys = list(gts)
        expected = corpus_bleu(
            [[r.split() for r in gts[k]] for k in keys],
            [res[k][0].split() for k in keys],
            weights=tm.NLTK_WEIGHTS,
        )
        np.testing.assert_allclose(ours_nltk[b], expected, atol=1e-9)


def test_meteor_bootstrap_equals_jar_eval_on_resampled_lists(iu_reports, meteor_jar):
    """Summed statistics give the jar's own EVAL score, also with perfect matches duplicated."""
    refs, preds = pairings(iu_reports)["random"]
    ids = sorted(refs)[:80]
    refs = {i: refs[i] for i in ids}
    preds = {
        i: [refs[i][0]] if k % 9 == 0 else preds[i] for k, i in enumerate(ids)
    }  # some perfect matches
    corpus = tm.prepare_corpus(refs, preds)
    score, _, lines = meteor_jar.score(corpus.predictions, corpus.references)
    stats = tm.meteor_additive_statistics(lines)
    assert meteor_jar.aggregate(stats.sum(0))[0] == pytest.approx(score, abs=1e-12)
    weights = bootstrap_weights(len(ids), 3, seed=1)
    ours = meteor_jar.aggregate(weights @ stats)
    for b in range(len(weights)):
        resampled = [line for line, c in zip(lines, weights[b]) for _ in range(int(c))]
        reply = meteor_jar._exchange(["EVAL ||| " + " ||| ".join(resampled)], len(resampled) + 1)
        assert ours[b] == pytest.approx(float(reply[-1]), abs=1e-12)


def test_bootstrap_intervals(iu_reports, meteor_jar):
    ids = sorted(iu_reports)[:200]
    refs, preds = pairings({i: iu_reports[i] for i in ids})["shifted"]
    first = tm.evaluate(refs, preds, bootstrap=200, seed=4, meteor=meteor_jar).corpus
    again = tm.evaluate(refs, preds, bootstrap=200, seed=4, metrics=["bleu", "cider"]).corpus
    other = tm.evaluate(refs, preds, bootstrap=200, seed=5, metrics=["bleu"]).corpus
    for key in [
        *tm.COCO_KEYS,
        "nltk/Bleu_4",
        "rouge_score/ROUGE_L_F1",
        "ce/micro_f1",
        "ce/example_f1",
    ]:
        low, high = first[f"ci_low/{key}"], first[f"ci_high/{key}"]
        assert low <= first[key] <= high and high - low > 0, key
    assert (
        again["ci_low/Bleu_4"] == first["ci_low/Bleu_4"]
        and again["ci_high/CIDEr"] == first["ci_high/CIDEr"]
    )
    assert other["ci_low/Bleu_4"] != first["ci_low/Bleu_4"]
    assert first["meta/bootstrap_resamples"] == 200 and first["meta/bootstrap_seed"] == 4


def test_zz_pycocoevalcap_meteor_crashes_where_ours_survives(meteor_jar, pycoco_meteor):
    """pycocoevalcap's Meteor raises ValueError on a newline in a generated report; ours scores it.

    Runs last in this file: the crash leaves the shared jar out of step, so it is restarted after.
    """
    gts = {"a": ["the heart is normal in size ."], "b": ["no pleural effusion ."]}
    res = {"a": ["the heart is normal\nin size ."], "b": ["no effusion ."]}
    ours = tm.evaluate(gts, res, metrics=["meteor"], meteor=meteor_jar)
    clean = tm.evaluate(
        gts,
        {"a": ["the heart is normal in size ."], "b": ["no effusion ."]},
        metrics=["meteor"],
        meteor=meteor_jar,
    )
    assert ours.corpus["METEOR"] == clean.corpus["METEOR"] > 0.3
    assert ours.per_report["METEOR"][0] == pytest.approx(1.0, abs=1e-3)
    try:
        with pytest.raises(ValueError, match="could not convert string to float"):
            pycoco_meteor.compute_score(gts, res)
    finally:
        if pycoco_meteor.lock.locked():  # it raised while holding its lock
            pycoco_meteor.lock.release()
        meteor_jar.restart()
