"""Evaluation: text metrics, clinical efficacy, classification, statistics, baselines, reports.

The trainer's entry points (details in each module's docstring):

    from medcap.evaluation import evaluate, score_corpus
    result = evaluate(references, predictions, bleu_flavour="coco", bootstrap=1000, ce_uncertain=0)
    result.corpus        # flat dict: Bleu_1..4, METEOR, ROUGE_L, CIDEr, coco/..., nltk/..., ce/..., meta/...
    result.per_report    # key -> np.ndarray aligned with result.ids (for paired t-tests)

    compare_systems(result_a, result_b)            # paired t-test per metric (statistics)
    NextWordMetrics().update(ids, probs)           # paper 000 Table 2 (classification)
    multilabel_metrics / ordinal_metrics / retrieval_metrics   # papers 001 and 002
    constant_baseline / random_train_baseline / nearest_train_baseline   # baselines
    results_table(ours, paper=..., baselines=..., synthetic=...)         # report
    BertScorer(preset, model_type=..., layer=..., baseline=...).score(refs, cands)   # bertscore (paper 001)
"""

from medcap.evaluation.baselines import (
    choose_constant_report,
    constant_baseline,
    nearest_train_baseline,
    random_train_baseline,
)
from medcap.evaluation.bertscore import BertScorer, bertscore
from medcap.evaluation.classification import (
    NextWordMetrics,
    decode_ordinal,
    encode_ordinal,
    multilabel_metrics,
    ordinal_metrics,
    retrieval_metrics,
)
from medcap.evaluation.clinical import OBSERVATIONS, ce_metrics, label_report, label_reports
from medcap.evaluation.report import results_table, score_listing, t_test_table
from medcap.evaluation.statistics import bootstrap_ci, compare_systems, paired_t_test
from medcap.evaluation.text_metrics import (
    COCO_KEYS,
    Evaluation,
    IdMismatchError,
    MeteorJar,
    evaluate,
    load_text_map,
    score_corpus,
)

__all__ = [
    "BertScorer",
    "COCO_KEYS",
    "Evaluation",
    "IdMismatchError",
    "MeteorJar",
    "NextWordMetrics",
    "OBSERVATIONS",
    "bertscore",
    "bootstrap_ci",
    "ce_metrics",
    "choose_constant_report",
    "compare_systems",
    "constant_baseline",
    "decode_ordinal",
    "encode_ordinal",
    "evaluate",
    "label_report",
    "label_reports",
    "load_text_map",
    "multilabel_metrics",
    "nearest_train_baseline",
    "ordinal_metrics",
    "paired_t_test",
    "random_train_baseline",
    "results_table",
    "retrieval_metrics",
    "score_corpus",
    "score_listing",
    "t_test_table",
]
