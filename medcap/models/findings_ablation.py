"""The transfer-learning ablation paper 004's thesis needs: pretrained vs from scratch,
head only vs fine-tuning from two depths, on the same data, split and evaluation.

    python -m medcap.models.findings_ablation results/findings/ablation [--data-dir CXR14_DIR]

Each variant is `experiments/findings_chexnet.py` with `--set` overrides,
trained by `medcap train` in a child process into `<out>/<variant>/`:

    pretrained_head_only       the backbone frozen for every epoch
    pretrained_fine_tune_top   head phase, then fine-tuning from the last block
    pretrained_fine_tune_deep  head phase, then fine-tuning from the block before it
    pretrained_fine_tune_all   head phase, then the whole backbone
    scratch                    random initialisation, everything trained

"Pretrained" is ImageNet on a real download (the DenseNet121 file is
required). On the synthetic default no ImageNet file exists for the tiny
CNN, so pretraining is made explicit and measurable instead: a source run
(`<out>/source/`) trains the tiny CNN on a synthetic CheXpert-format tree
(other images, JPEG, CheXpert's five competition labels, 1,200 images),
and its backbone (`model.keras`, `FindingsClassifier` transfer) initialises
the pretrained variants, while the target training set is small (300
synthetic ChestX-ray14-format images): the setting transfer learning is for.

The table (`<out>/ablation.md`, also inserted into the sibling
`report.md` of the main run when one exists) gives, per variant, the mean
test AUROC with its bootstrap interval, mean AUPRC, macro F1 at the
validation thresholds, the Grad-CAM pointing game, the trainable parameters
of the last phase and the training time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from medcap.evaluation.report import format_value, markdown_table
from medcap.models.findings_classifier import PRESETS

EXPERIMENT = "findings_chexnet"
#: (last block, the block before it) per backbone: where fine-tuning starts.
FINE_TUNE_DEPTHS = {
    "densenet121": ("conv5_block1", "conv4_block1"),
    "resnet50": ("conv5_block1", "conv4_block1"),
    "efficientnetb0": ("block7a", "block6a"),
    "tiny_cnn": ("block3", "block2"),
}
VARIANTS = ("pretrained_head_only", "pretrained_fine_tune_top", "pretrained_fine_tune_deep", "pretrained_fine_tune_all", "scratch")
SECTION = "## Transfer-learning ablation"
#: The synthetic default's source pretraining and small target.
SOURCE_OVERRIDES = (
    "data.name=chexpert",
    "data.variant=official",
    "data.synthetic_num=1200",
    'data.options={"labels": ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]}',
    "model.encoder_weights=none",
    "paper_results={}",
    "eval.explain_method=none",
)
TARGET_OVERRIDES = ("data.synthetic_num=300",)


def variant_overrides(variant: str, *, pretrained: str, backbone: str, epochs: int, frozen_epochs: int) -> list[str]:
    top, deep = FINE_TUNE_DEPTHS[backbone]
    if variant == "scratch":
        return ["model.encoder_weights=none", "train.frozen_epochs=0", "train.fine_tune_from=", "model.options.freeze_batchnorm=false"]
    # train.epochs first: each --set list is validated as it is applied.
    common = [f"model.encoder_weights={pretrained}", f"train.epochs={epochs}"]
    if variant == "pretrained_head_only":
        return [*common, f"train.frozen_epochs={epochs}"]
    start = {"pretrained_fine_tune_top": top, "pretrained_fine_tune_deep": deep, "pretrained_fine_tune_all": ""}[variant]
    return [*common, f"train.frozen_epochs={frozen_epochs}", f"train.fine_tune_from={start}"]


def train(workdir: Path, overrides: list[str], data_dir: str | None) -> dict[str, Any]:
    """Trains one variant into its workdir. `ablation_overrides.json` records
    the overrides a workdir was started with: a finished run with the same
    ones is read, not retrained; an unfinished one resumes; a workdir started
    with other overrides is the ablation's own stale run and is removed."""
    intent = workdir / "ablation_overrides.json"
    same = intent.is_file() and json.loads(intent.read_text()) == overrides
    if same and (workdir / "metrics.json").is_file():
        return json.loads((workdir / "metrics.json").read_text())
    if workdir.exists() and not same:
        print(f"removing {workdir}: started with other settings", flush=True)
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    intent.write_text(json.dumps(overrides))
    command = [sys.executable, "-m", "medcap.cli", "train", EXPERIMENT, "--workdir", str(workdir)]
    if data_dir:
        command += ["--data-dir", data_dir]
    for item in overrides:
        command += ["--set", item]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((workdir / "metrics.json").read_text())


def _trainable_parameters(workdir: Path) -> int | None:
    import keras

    model = keras.saving.load_model(workdir / "model.keras", compile=False)
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))


def run_ablation(out: Path, data_dir: str | None = None) -> str:
    from medcap.config import load_experiment

    out.mkdir(parents=True, exist_ok=True)
    overrides_base = [] if data_dir else list(TARGET_OVERRIDES)
    config = load_experiment(EXPERIMENT, overrides=overrides_base + ([f"data.source_dir={data_dir}"] if data_dir else []))
    backbone = PRESETS[config.model.preset]["backbone"]
    epochs, frozen = config.train.epochs, max(config.train.frozen_epochs, 2)
    if data_dir:
        pretrained, source_note = "imagenet", "ImageNet (the Keras DenseNet121 file)"
    else:
        source = out / "source"
        if not (source / "model.keras").is_file():
            train(source, list(SOURCE_OVERRIDES), None)
        pretrained = str((source / "model.keras").resolve())
        source_note = "a source run on 1,200 synthetic CheXpert-format images (five CheXpert labels), backbone transferred"
    rows, record = [], {}
    for variant in VARIANTS:
        workdir = out / variant
        overrides = overrides_base + variant_overrides(variant, pretrained=pretrained, backbone=backbone, epochs=epochs, frozen_epochs=frozen)
        metrics = train(workdir, overrides, data_dir)
        environment = json.loads((workdir / "environment.json").read_text())
        record[variant] = {"overrides": overrides, "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, list))}}
        interval = metrics.get("auroc_macro_ci")
        auroc = format_value(metrics.get("auroc_macro")) + (f" [{format_value(interval[0], 3)}, {format_value(interval[1], 3)}]" if interval else "")
        rows.append(
            [
                variant,
                auroc,
                format_value(metrics.get("auprc_macro")),
                format_value(metrics.get("macro_f1")),
                format_value(metrics.get("localisation/gradcam/pointing_game")),
                str(_trainable_parameters(workdir)),
                format_value(environment.get("train_seconds"), 1),
            ]
        )
    (out / "ablation.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        SECTION,
        "",
        f"Pretrained = {source_note}. Target: {'the configured download' if data_dir else '300 synthetic ChestX-ray14-format images (about 210 for training)'}; "
        f"same split, epochs ({epochs}; head phase {frozen}) and evaluation for every variant. Fine-tuning depths: "
        f"{FINE_TUNE_DEPTHS[backbone][0]} (top) and {FINE_TUNE_DEPTHS[backbone][1]} (deep).",
        "",
        *markdown_table(
            ["variant", "mean AUROC [95% CI]", "mean AUPRC", "macro F1", "pointing game", "trainable parameters (last phase)", "train s"],
            rows,
        ),
        "",
    ]
    table = "\n".join(lines) + "\n"
    (out / "ablation.md").write_text(f"# {EXPERIMENT}: transfer-learning ablation\n\n" + table)
    insert_into_report(out.parent / "report.md", table)
    return table


def insert_into_report(report: Path, section: str) -> None:
    """Puts `section` at the end of `report`, replacing an earlier ablation section."""
    if not report.is_file():
        return
    text = report.read_text()
    if SECTION in text:
        text = text[: text.index(SECTION)].rstrip() + "\n"
    report.write_text(text.rstrip() + "\n\n" + section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="directory of the ablation runs (e.g. results/findings/ablation)")
    parser.add_argument("--data-dir", help="a ChestX-ray14 download (default: the synthetic default with a source pretraining run)")
    args = parser.parse_args(argv)
    print(run_ablation(Path(args.out), args.data_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
