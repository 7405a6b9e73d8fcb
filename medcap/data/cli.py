"""`medcap data ...`: write synthetic trees, validate downloads, build TFDS datasets.

    medcap data synth DATASET --out DIR --num N --seed S [--reports listed|realistic]
    medcap data check DATASET --source DIR [--config NAME] [--json]
    medcap data prepare DATASET --source DIR [--data-dir DIR] [--config NAME]
                        [--split-seed S] [--skip-invalid] [--max-image-size N]
                        [--beam [--beam-options="--runner=... ..."]]

`check` reads the download with every image decoded and lists each problem
(file, record, field, message); it exits 1 when there is any, 0 otherwise.
`prepare` builds the TFDS dataset (TFDS shows a progress bar per split) and
prints the per-split counts and the number of skipped records. With `--beam`
an Apache Beam pipeline encodes and writes the examples (the DirectRunner
here, or the runner `--beam-options` names: Dataflow, Flink, Spark); it
needs the `beam` extra.

TensorFlow is imported inside the handlers only, so `medcap --help` stays fast.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

DEFAULT_TFDS_DIR = "datasets/tfds"
DEFAULT_DATA_ROOT = "datasets"
#: Every registered dataset (a test keeps it equal to the registry's names;
#: spelt out so that `medcap --help` imports no reader).
SYNTH_DATASETS = ("medicat", "iu_xray", "mimic", "chestxray14", "chexpert", "mimic_cxr_labels", "labelled_images")


def _source(name: str):
    from medcap.registry import DATASETS

    return DATASETS.get(name)


#: Problems listed in text output; `--json` lists all.
MAX_LISTED = 100


def _print_problems(problems, stream) -> None:
    for problem in problems[:MAX_LISTED]:
        print(f"  - {problem}", file=stream)
    if len(problems) > MAX_LISTED:
        print(f"  ... and {len(problems) - MAX_LISTED} more (--json lists all)", file=stream)


def _cmd_synth(args: argparse.Namespace) -> int:
    from medcap.errors import CommandError

    if args.num < 1:
        raise CommandError(f"--num {args.num}: need at least 1")
    from medcap.data.synthetic import DEFAULT_IMAGE_SIZE, ensure_synthetic, synthetic_dir

    size = args.image_size or DEFAULT_IMAGE_SIZE
    # The default place is the one training uses, so `medcap train` reuses the tree.
    out = Path(args.out) if args.out else synthetic_dir(DEFAULT_DATA_ROOT, args.dataset, num=args.num, seed=args.seed, image_size=size, reports=args.reports)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise CommandError(f"{out} exists and is not empty; pass --force to write into it")
    path = ensure_synthetic(_source(args.dataset), out, num=args.num, seed=args.seed, image_size=size, force=True, reports=args.reports)
    print(f"wrote synthetic {args.dataset} ({args.num} records, seed {args.seed}) to {path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from medcap.errors import CommandError

    source = _source(args.dataset)
    kwargs = {}
    if args.config:
        if "variant" not in inspect.signature(source.check).parameters:
            raise CommandError(f"{args.dataset}: check takes no --config; it checks the whole download")
        kwargs["variant"] = args.config
    report = source.check(args.source, **kwargs)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return 0 if report.ok else 1
    counts = " ".join(f"{name}={n}" for name, n in report.counts.items()) or "(nothing read)"
    print(f"{args.dataset} at {args.source}: {counts}")
    if report.ok:
        print("no problems found")
        return 0
    print(f"{len(report.problems)} problem(s):", file=sys.stderr)
    _print_problems(report.problems, sys.stderr)
    return 1


def _parse_options(items: list[str] | None) -> dict:
    from medcap.errors import CommandError

    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _cmd_prepare(args: argparse.Namespace) -> int:
    from medcap.data import tfds_builders

    builder = tfds_builders.make_builder(
        args.dataset,
        variant=args.config or "",
        data_dir=args.data_dir,
        split_seed=args.split_seed,
        skip_invalid=args.skip_invalid,
        check_images=args.check_images,
        max_image_size=args.max_image_size,
        options=_parse_options(args.option),
    )
    from medcap.errors import CommandError

    if args.beam_options and not args.beam:
        raise CommandError("--beam-options without --beam")
    beam_options = (args.beam_options or "") if args.beam else None
    tfds_builders.prepare(builder, args.source, beam_options=beam_options)
    splits = builder.info.splits
    counts = " ".join(f"{name}={splits[name].num_examples}" for name in splits.keys())
    print(f"{builder.name}/{builder.builder_config.name} in {builder.data_dir}: {counts}")
    result = builder.read_result
    if result is None:
        print("already prepared; nothing rebuilt (delete the directory above to rebuild)")
    elif result.skipped:
        print(f"skipped {len(result.skipped)} invalid record(s):")
        _print_problems(result.skipped, sys.stdout)
    else:
        print("skipped 0 invalid records")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="synthetic trees, download checks, TFDS builds")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND")
    data.set_defaults(handler=lambda args: (data.print_help(), 2)[1])

    p = commands.add_parser("synth", help="write a learnable synthetic tree in a dataset's real format")
    p.add_argument("dataset", choices=SYNTH_DATASETS)
    p.add_argument("--out", help=f"output directory (default: {DEFAULT_DATA_ROOT}/synthetic/DATASET-nN-sS, where training looks)")
    p.add_argument("--num", type=int, default=600, help="number of studies / figures (default 600)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--image-size", type=int, help="side of the drawn images (dataset default)")
    p.add_argument("--reports", default="listed", choices=("listed", "realistic"), help="FINDINGS prose variety (realistic: IU X-ray and MIMIC)")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    p.set_defaults(handler=_cmd_synth)

    p = commands.add_parser("check", help="validate a download without building; exit 1 on problems")
    p.add_argument("dataset", help=f"dataset name: {', '.join(SYNTH_DATASETS)}")
    p.add_argument("--source", required=True, help="the unpacked download (or a synthetic tree)")
    p.add_argument("--config", help="variant whose split to check (default: the dataset's default)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_check)

    p = commands.add_parser("prepare", help="build the TFDS dataset from a download")
    p.add_argument("dataset", help=f"dataset name: {', '.join(SYNTH_DATASETS)}")
    p.add_argument("--source", required=True, help="the unpacked download (or a synthetic tree)")
    p.add_argument("--data-dir", default=DEFAULT_TFDS_DIR, help=f"TFDS data_dir (default {DEFAULT_TFDS_DIR})")
    p.add_argument("--config", help="variant, e.g. model80, model70, r2gen, random_721, balanced_10k")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split the reader draws (default 0)")
    p.add_argument("--skip-invalid", action="store_true", help="skip malformed records (counted) instead of failing")
    p.add_argument("--check-images", default="decode", choices=("none", "exists", "decode"), help="image check while reading")
    p.add_argument("--max-image-size", type=int, help="downscale images so their longer side is at most N pixels")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="reader option (JSON value), e.g. uncertain_label=1")
    p.add_argument("--beam", action="store_true", help="generate through Apache Beam (the beam extra; DirectRunner by default)")
    p.add_argument("--beam-options", metavar="FLAGS", help='Beam pipeline flags, given with "=": --beam-options="--runner=DataflowRunner --project=P --region=R"')
    p.set_defaults(handler=_cmd_prepare)
