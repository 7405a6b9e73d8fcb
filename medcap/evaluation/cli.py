"""`medcap score` and `medcap baseline`.

    medcap score --references REFS.json --predictions PREDS.json [--json]
                 [--metrics bleu meteor rouge cider ce] [--bleu-flavour coco|nltk]
                 [--bootstrap N] [--seed S] [--ce-uncertain 0|1]
    medcap baseline {constant,random_train} --dataset NAME --data-dir DIR
                 [--split test] [--out FILE] [--references-out FILE] [--seed S]
                 [--criterion bleu4|cider] [--variant V] [--option KEY=VALUE]
    medcap compare RUN_DIR... --out DIR [--split S] [--bootstrap N] [--seed S]

Both files map `id -> [text, ...]` (a plain string is accepted too), the
pycocoevalcap / R2Gen result format. `--json` prints one JSON object whose
keys are exactly Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr plus namespaced
extras (see medcap.evaluation.text_metrics). `baseline` reads the dataset with
its registered reader and predicts for the chosen split from the train
split's `report_clean` texts; `--references-out` also writes the split's
`report_clean` texts as a references file for `medcap score`.
`compare` puts several trained runs on one leaderboard
(`medcap.evaluation.compare`, `medcap.evaluation.leaderboard`).

No TensorFlow is imported here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cmd_score(args: argparse.Namespace) -> int:
    from medcap.errors import CommandError
    from medcap.evaluation import report, text_metrics

    references = text_metrics.load_text_map(args.references, role="references")
    predictions = text_metrics.load_text_map(args.predictions, role="predictions")
    mismatch = text_metrics.describe_id_mismatch(references, predictions)
    if mismatch:
        raise CommandError(f"{args.references} vs {args.predictions}: {mismatch}")
    for key, texts in predictions.items():
        if len(texts) != 1:
            raise CommandError(
                f"{args.predictions}: {key}: expected exactly one predicted text, got {len(texts)}"
            )
    result = text_metrics.score_corpus(
        references,
        predictions,
        metrics=args.metrics,
        bleu_flavour=args.bleu_flavour,
        bootstrap=args.bootstrap,
        seed=args.seed,
        ce_uncertain=args.ce_uncertain,
    )
    meteor_note = result.get("meta/meteor", "")
    if isinstance(meteor_note, str) and meteor_note.startswith("unavailable"):
        print(f"medcap: warning: METEOR {meteor_note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, default=_json_default, allow_nan=True))
    else:
        sys.stdout.write(report.score_listing(result))
    return 0


def _parse_options(pairs: list[str] | None) -> dict[str, str]:
    from medcap.errors import CommandError

    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


def _write_json(data: Any, path: str | None) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    if path is None or path == "-":
        sys.stdout.write(text)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")


def _cmd_baseline(args: argparse.Namespace) -> int:
    from medcap.errors import CommandError
    from medcap.evaluation import baselines
    from medcap.registry import DATASETS

    source = DATASETS.get(args.dataset)
    read_kwargs: dict[str, Any] = {"options": _parse_options(args.option)} if args.option else {}
    if args.variant:
        read_kwargs["variant"] = args.variant
    result = source.read(args.data_dir, **read_kwargs)
    train = result.splits.get("train") or []
    if not train:
        raise CommandError(f"{args.data_dir}: the train split of {args.dataset} is empty")
    if args.split not in result.splits:
        raise CommandError(
            f"{args.data_dir}: no split {args.split!r}; splits: {', '.join(result.splits)}"
        )
    targets = result.splits[args.split]
    target_ids = [str(example["id"]) for example in targets]
    train_texts = [example["report_clean"] for example in train]
    if args.kind == "constant":
        predictions, choice = baselines.constant_baseline(
            target_ids, train_texts, criterion=args.criterion, seed=args.seed
        )
        print(choice.describe(), file=sys.stderr)
    else:
        predictions = baselines.random_train_baseline(target_ids, train_texts, seed=args.seed)
        print(f"random_train baseline: {len(predictions)} ids, seed {args.seed}", file=sys.stderr)
    _write_json(predictions, args.out)
    if args.references_out:
        _write_json({str(e["id"]): [e["report_clean"]] for e in targets}, args.references_out)
    where = args.out or "stdout"
    print(
        f"wrote {len(predictions)} {args.split} predictions to {where} ({result.summary()})",
        file=sys.stderr,
    )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from medcap.evaluation.compare import compare_runs
    from medcap.evaluation.leaderboard import write_leaderboard

    comparison = compare_runs(args.runs, split=args.split, bootstrap=args.bootstrap, seed=args.seed)
    paths = write_leaderboard(comparison, args.out)
    sys.stdout.write(paths["md"].read_text(encoding="utf-8"))
    for note in comparison.notes:
        print(f"medcap: note: {note}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from medcap.evaluation.text_metrics import BLEU_FLAVOURS, METRIC_GROUPS

    p = subparsers.add_parser(
        "score",
        help="score predictions against references (pycocoevalcap-exact BLEU/METEOR/ROUGE_L/CIDEr, CE)",
        description="Score predictions against references. Both files map id -> [text, ...] (or id -> text).",
    )
    p.add_argument("--references", required=True, help="JSON file: id -> [reference text, ...]")
    p.add_argument("--predictions", required=True, help="JSON file: id -> [predicted text]")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--metrics",
        nargs="+",
        choices=list(METRIC_GROUPS),
        default=None,
        metavar="GROUP",
        help="metric groups (default: all): "
        + "; ".join(f"{k}: {v}" for k, v in METRIC_GROUPS.items()),
    )
    p.add_argument(
        "--bleu-flavour",
        choices=BLEU_FLAVOURS,
        default="coco",
        help="flavour reported under Bleu_1..Bleu_4 (both are always under coco/ and nltk/)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="bootstrap resamples for 95%% CIs (0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--ce-uncertain",
        type=int,
        choices=(0, 1),
        default=0,
        help="uncertain CE labels count as 0 (R2Gen) or 1 (ViLMedic)",
    )
    p.set_defaults(handler=_cmd_score)

    p = subparsers.add_parser(
        "baseline",
        help="write a trivial-baseline predictions file (constant or random train report)",
        description="Predict a train report for every id of a split: the best-consensus one or a random one.",
    )
    p.add_argument("kind", choices=("constant", "random_train"))
    p.add_argument(
        "--dataset", required=True, help="registered dataset name (e.g. iu_xray, mimic, medicat)"
    )
    p.add_argument("--data-dir", required=True, help="raw dataset (or synthetic tree) directory")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--out", help="predictions JSON to write (default: stdout)")
    p.add_argument("--references-out", help="also write the split's reference texts here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--criterion",
        choices=("bleu4", "cider"),
        default="bleu4",
        help="constant: consensus metric",
    )
    p.add_argument(
        "--variant",
        default="",
        help="dataset variant (split scheme); default: the reader's default",
    )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="reader option, e.g. check_images=none",
    )
    p.set_defaults(handler=_cmd_baseline)

    p = subparsers.add_parser(
        "compare",
        help="one leaderboard of several runs on the same test reports, with CIs and paired tests",
        description="Compare trained runs on identical terms: refuses runs whose dataset, split, test ids or "
        "references differ; writes leaderboard.{md,csv,json,png} into --out.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run workdirs (or results collections: their default run)")
    p.add_argument("--out", required=True, help="directory for leaderboard.{md,csv,json,png}")
    p.add_argument("--split", default=None, choices=("train", "val", "test"), help="default: the runs' eval.split")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="resamples for CIs and the paired bootstrap test")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.set_defaults(handler=_cmd_compare)
