"""Time medcap's scorer against pycocoevalcap's own calls on the same 3,000 report pairs.

    python bench/score.py [--pairs 3000]

Pairs come from ../shared/data/iu_xray/annotation.json (R2Gen-cleaned reports,
each paired with another report) when present, else from synthetic reports
(medcap.data.synthetic). Both sides include starting the METEOR jar once.
pycocoevalcap's side is what R2Gen runs: Bleu(4), Meteor(), Rouge(), Cider()
compute_score on the same (whitespace-normalised) text. Ours is timed twice:
the same four metrics, and everything (`medcap score` defaults: + nltk BLEU,
rouge-score, CE labeler). The script also prints the largest difference
between the two sides' numbers (must be < 1e-9).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medcap.evaluation import text_metrics as tm  # noqa: E402


def load_pairs(n: int) -> tuple[dict[str, list[str]], dict[str, list[str]], str]:
    annotation = ROOT.parent / "shared" / "data" / "iu_xray" / "annotation.json"
    if annotation.exists():
        from medcap.text import clean_report

        data = json.loads(annotation.read_text())
        reports = [
            clean_report(e["report"], "iu_xray")
            for split in ("train", "val", "test")
            for e in data[split]
        ]
        source = f"IU X-ray reports from {annotation}"
    else:
        from medcap.data import synthetic

        rng = np.random.default_rng(0)
        reports = [
            synthetic.write_report(synthetic.sample_findings(rng), rng, "findings")
            for _ in range(n)
        ]
        source = "synthetic reports (medcap.data.synthetic)"
    count = len(reports)
    refs = {f"r{k}": [reports[k % count]] for k in range(n)}
    preds = {f"r{k}": [reports[(7 * k + 1) % count]] for k in range(n)}
    return refs, preds, source


def pycocoevalcap_scores(gts: dict, res: dict) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    out.update({f"Bleu_{k + 1}": bleu[k] for k in range(4)})
    meteor = Meteor()
    out["METEOR"] = meteor.compute_score(gts, res)[0]
    del meteor
    out["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = Cider().compute_score(gts, res)[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args()
    refs, preds, source = load_pairs(args.pairs)
    gts = {k: [tm.normalise_text(t) for t in v] for k, v in refs.items()}
    res = {k: [tm.normalise_text(v[0])] for k, v in preds.items()}
    print(f"{args.pairs} report pairs: {source}")

    start = time.perf_counter()
    theirs = pycocoevalcap_scores(gts, res)
    pycoco_seconds = time.perf_counter() - start

    start = time.perf_counter()
    ours = tm.score_corpus(refs, preds, metrics=["bleu", "meteor", "rouge", "cider"])
    ours_seconds = time.perf_counter() - start

    start = time.perf_counter()
    everything = tm.score_corpus(refs, preds)
    all_seconds = time.perf_counter() - start

    difference = max(abs(ours[k] - theirs[k]) for k in theirs)
    rows = [
        ("pycocoevalcap (Bleu, Meteor, Rouge, Cider)", pycoco_seconds),
        ("medcap, same four metrics", ours_seconds),
        ("medcap, all metrics (+nltk, rouge-score, CE)", all_seconds),
    ]
    for name, seconds in rows:
        ratio = pycoco_seconds / seconds
        print(f"{name:<46} {seconds:8.2f} s   pycocoevalcap time / this time: {ratio:5.2f}x")
    print(f"largest |medcap - pycocoevalcap| over {', '.join(theirs)}: {difference:.2e}")
    print(
        "scores: "
        + ", ".join(f"{k} {ours[k]:.4f}" for k in theirs)
        + f", CE micro F1 {everything['ce/micro_f1']:.4f}"
    )


if __name__ == "__main__":
    main()
