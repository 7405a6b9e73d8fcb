"""`medcap` console script.

Each command group lives beside the code it drives and exposes
`register(subparsers)`; this module only assembles them. Command modules
must not import TensorFlow at import time, so `medcap --help` stays instant.
A command handler returns an exit code (or None for 0). Known input errors
print one line, `medcap: error: ...`, and exit with status 2.

TensorFlow's C++ log lines are kept off the terminal unless `--verbose`
(accepted before or after the command) or MEDCAP_VERBOSE=1 is given; see
`medcap.tf_logs` for what is set and why.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from medcap.errors import USER_ERRORS
from medcap.errors import CommandError as CommandError  # defined low, re-exported here

#: Modules whose `register(subparsers)` adds commands, in help order.
COMMAND_MODULES = (
    "medcap.cli",  # experiments, train, evaluate, caption (below)
    "medcap.evaluation.cli",  # score, baseline
    "medcap.data.cli",  # data synth|prepare|check
    "medcap.features",  # features extract
)


class _Parser(argparse.ArgumentParser):
    """Every parser and sub-parser takes `--verbose`, so it works wherever it
    is typed (`medcap --verbose caption ...` or `medcap caption ... --verbose`).
    SUPPRESS keeps a sub-parser from resetting a flag given before the command."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show TensorFlow's C++ log lines (also MEDCAP_VERBOSE=1)",
        )



# ---------------------------------------------------------------------------
# Commands owned by this module


def _cmd_experiments(args: argparse.Namespace) -> int:
    from medcap.config import list_experiments, load_experiment

    rows = []
    for name in list_experiments():
        config = load_experiment(name)
        rows.append({"name": name, "paper": config.paper, "table": config.table})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max([len(r["name"]) for r in rows] + [4])
    print(f"{'name':<{width}}  paper / table")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['paper']} / {r['table']}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from medcap.config import load_experiment, load_experiment_module

    overrides = list(args.set or [])
    if args.data_dir:
        overrides.append(f"data.source_dir={args.data_dir}")
    config = load_experiment(args.experiment, smoke=args.smoke, overrides=overrides)
    # An experiment whose one run is part of a set (mtl_stl) says which part this is.
    notice = getattr(load_experiment_module(args.experiment), "train_notice", None)
    if notice is not None:
        print(notice(config), file=sys.stderr)
    workdir = Path(args.workdir or Path("runs") / (config.name + ("-smoke" if args.smoke else "")))
    if args.workers:
        return _launch_workers(args, config, workdir)
    from medcap import training

    result = training.fit(config, workdir)
    print(f"workdir: {workdir}")
    if result.get("metrics"):
        print(json.dumps(result["metrics"], indent=2, default=float))
    return 0


def _launch_workers(args: argparse.Namespace, config, workdir: Path) -> int:
    from medcap import launcher
    from medcap.data.loading import load_splits

    if args.workers < 2:
        raise CommandError(f"--workers {args.workers}: a cluster needs at least 2 workers")
    # Synthetic data is written here, once, not by N workers at a time.
    load_splits(config.data)
    arguments = ["train", args.experiment, "--workdir", str(workdir)]
    arguments += ["--smoke"] if args.smoke else []
    arguments += ["--data-dir", args.data_dir] if args.data_dir else []
    for item in args.set or []:
        arguments += ["--set", item]
    code = launcher.run_local_workers(arguments, args.workers)
    if code:
        raise CommandError(f"training with {args.workers} workers failed (exit status {code})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from medcap import training

    metrics = training.evaluate_workdir(Path(args.workdir), split=args.split)
    print(json.dumps(metrics, indent=2, default=float))
    return 0


def _cmd_caption(args: argparse.Namespace) -> int:
    from medcap import training

    for path in args.images:
        if not Path(path).is_file():
            raise CommandError(f"{path}: no such image file")
    outputs = training.caption_images(Path(args.workdir), [str(p) for p in args.images])
    for path, output in zip(args.images, outputs):
        print(json.dumps({"image": str(path), **output}) if args.json else f"{path}\t{output['text']}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from medcap import training

    for path in args.images:
        if not Path(path).is_file():
            raise CommandError(f"{path}: no such image file")
    outputs = training.caption_images(Path(args.workdir), [str(p) for p in args.images])
    if outputs and "description" not in outputs[0]:
        raise CommandError(f"medcap report needs a findings-to-report run (model findings_to_report); {args.workdir} holds another system: use medcap caption")
    for path, output in zip(args.images, outputs):
        if args.json:
            print(json.dumps({"image": str(path), "description": output["description"], "report": output["report"]}))
            continue
        print(f"== {path}")
        print("structured findings (JSON):")
        print(json.dumps(output["description"], indent=1))
        print("structured findings (text):")
        print(output["description_text"])
        print("report:")
        print(output["report"])
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from medcap import training

    for path in args.images:
        if not Path(path).is_file():
            raise CommandError(f"{path}: no such image file")
    try:
        summary = training.explain_images(
            Path(args.workdir), [str(p) for p in args.images], method=args.method, label=args.label or "", top=args.top or 0, out_dir=args.out
        )
    except ValueError as err:
        raise CommandError(str(err)) from None
    for record in summary["explanations"]:
        peak = record["peak"]
        print(f"{record['image']}\t{record['finding']}\tp={record['probability']:.3f}\tpeak=({peak['y']:.2f}, {peak['x']:.2f})\t{record.get('overlay', '')}")
    print(f"wrote {len(summary['explanations'])} explanation(s) to {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("experiments", help="list experiments: name, paper, table")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_experiments)

    p = subparsers.add_parser("train", help="train an experiment into a self-contained workdir")
    p.add_argument("experiment", help="experiment name (see `medcap experiments`) or a path to an experiment .py")
    p.add_argument("--smoke", action="store_true", help="synthetic data, tiny preset, a few steps")
    p.add_argument("--data-dir", help="raw dataset download (default: synthetic data in that format)")
    p.add_argument("--workdir", help="run directory (default: runs/<experiment>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=3")
    p.add_argument(
        "--workers", type=int, default=0, metavar="N", help="train as a cluster of N worker processes on this machine (TF_CONFIG each)"
    )
    p.set_defaults(handler=_cmd_train)

    p = subparsers.add_parser("evaluate", help="score a trained workdir on a split")
    p.add_argument("--workdir", required=True)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.set_defaults(handler=_cmd_evaluate)

    p = subparsers.add_parser("caption", help="caption images with a trained workdir")
    p.add_argument("--workdir", required=True)
    p.add_argument("images", nargs="+", help="PNG or JPEG files")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(handler=_cmd_caption)

    p = subparsers.add_parser("report", help="structured findings and a written report per image (findings-to-report runs)")
    p.add_argument("--workdir", required=True)
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, DICOM)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(handler=_cmd_report)

    from medcap.explanations.methods import METHODS

    p = subparsers.add_parser("explain", help="saliency maps of a trained findings classifier, drawn over the images")
    p.add_argument("--workdir", required=True)
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, DICOM)")
    p.add_argument("--method", default="gradcam", choices=METHODS)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--label", help="explain this finding for every image")
    which.add_argument("--top", type=int, help="explain each image's K most probable findings (default 1)")
    p.add_argument("--out", required=True, help="directory for the overlays, explanations.json and maps.npz")
    p.set_defaults(handler=_cmd_explain)


# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from medcap import __version__

    parser = _Parser(
        prog="medcap",
        description="Reproduce medical image captioning and report generation papers.",
    )
    parser.add_argument("--version", action="version", version=f"medcap {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = sys.modules[__name__] if name == __name__ or name == "medcap.cli" else importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from medcap import tf_logs

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    # Before any command imports TensorFlow: it reads the level when it first logs.
    verbose = getattr(args, "verbose", False)
    tf_logs.configure(verbose)
    try:
        with tf_logs.quiet_tensorflow_import(verbose):
            code = args.handler(args)
    except USER_ERRORS as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"medcap: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medcap: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
