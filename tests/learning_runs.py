"""The runs behind the suite's learning tests, shared by the tests and by
`tests/measure_learning_spread.py`, which measures their spread.

Each learning test trains a paper model on a synthetic tree and asserts it
beats a trivial baseline. Float results differ between CPUs (oneDNN kernels,
thread counts), so each assertion's margin is set from the spread measured
over training seeds, data seeds and `TF_ENABLE_ONEDNN_OPTS=0/1` with this
module's exact configurations; the numbers are in each test's docstring.

`RUNS[name](root, train_seed, data_seed) -> ExperimentConfig` builds one run's
config with its data under `root`; `run(name, root, ...)` trains it and
returns the metrics dict; `blind_truth_f1(config)` is the truth CE micro F1
an image-blind report picker gets on average.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The seeds the suite itself runs with (the experiments' default train seed).
TRAIN_SEED = 42
DATA_SEED = 0


def model80(root: Path, train_seed: int = TRAIN_SEED, data_seed: int = DATA_SEED):
    """Model-80's smoke run trained long enough to learn: 1,000 synthetic
    MediCat figures (about 100 test captions: with 600, one seed's findings
    F1 differed from another's by as much as the margin), 20 full epochs,
    widths 64, both trivial baselines."""
    from medcap.config import load_experiment

    return load_experiment(
        "model80",
        smoke=True,
        overrides=[
            f"data.data_dir={root / 'data'}", "data.synthetic_num=1000", f"data.synthetic_seed={data_seed}",
            "train.epochs=20", "train.steps_per_epoch=null", "train.learning_rate=0.003",
            f"train.seed={train_seed}", "model.options.hidden_dim=64", "model.options.embedding_dim=64",
            "model.options.decoder_dim=64", "eval.baselines=constant,random_train",
        ],
    )  # fmt: skip


def clip(root: Path, train_seed: int = TRAIN_SEED, data_seed: int = DATA_SEED):
    """The dual encoder's smoke preset on 600 synthetic IU X-ray studies at
    64x64 px for 30 epochs, with the random_train and constant baselines."""
    from medcap.config import load_experiment

    return load_experiment(
        "clip_densenet",
        smoke=True,
        overrides=[
            f"data.data_dir={root / 'data'}", "data.synthetic_num=600", f"data.synthetic_seed={data_seed}",
            "data.image_size=[64,64]", "train.steps_per_epoch=null", "train.epochs=30",
            "train.learning_rate=0.001", f"train.seed={train_seed}", "train.verbose=0",
            'eval.baselines=["random_train","constant"]',
        ],
    )  # fmt: skip


def mtl(root: Path, train_seed: int = TRAIN_SEED, data_seed: int = DATA_SEED):
    """MTL-EQ's smoke preset, widened, on 1,000 synthetic MIMIC studies at
    64 px for 45 epochs (the tree is written here, under `root/mimic`)."""
    from medcap.config import load_experiment
    from medcap.registry import DATASETS

    data = root / "mimic"
    if not (data / "synthetic_truth.json").is_file():
        DATASETS.get("mimic").synthesize(data, num=1000, seed=data_seed, image_size=64)
    return load_experiment(
        "mtl_eq",
        smoke=True,
        overrides=[
            f"data.source_dir={data}", "data.variant=official", f"data.data_dir={root}",
            "train.epochs=45", "train.steps_per_epoch=null", "train.batch_size=32", "train.learning_rate=2e-3",
            f"train.seed={train_seed}", "model.options.hidden_dim=64", "model.options.intermediate_dim=128",
            "model.options.max_report_words=60", "eval.max_length=61",
        ],
    )  # fmt: skip


def findings(root: Path, train_seed: int = TRAIN_SEED, data_seed: int = DATA_SEED):
    """Paper 004's synthetic default (the tiny CNN on 600 synthetic
    ChestX-ray14-format images drawn at 64 px, seven findings, 40 epochs)
    with the prevalence baseline only (the probe is not what is asserted)."""
    from medcap.config import load_experiment

    return load_experiment(
        "findings_chexnet",
        overrides=[
            f"data.data_dir={root / 'data'}", f"data.synthetic_seed={data_seed}", f"train.seed={train_seed}",
            "train.verbose=0", "train.tensorboard=false", 'eval.label_baselines=["prevalence"]', "eval.bootstrap=0",
        ],
    )  # fmt: skip


def findings_report(root: Path, train_seed: int = TRAIN_SEED, data_seed: int = DATA_SEED):
    """Paper 003's template run, the synthetic default of
    `experiments/findings_report_template.py` (600 synthetic IU X-ray studies,
    paper 004's tiny CNN at 64 px for 40 epochs, then the template writer);
    the classifier's prevalence baseline only, no bootstrap."""
    from medcap.config import load_experiment

    return load_experiment(
        "findings_report_template",
        overrides=[
            f"data.data_dir={root / 'data'}", f"data.synthetic_seed={data_seed}", f"train.seed={train_seed}",
            "train.verbose=0", "train.tensorboard=false",
            'eval.label_baselines=["prevalence"]', "eval.bootstrap=0",
        ],
    )  # fmt: skip


RUNS: dict[str, Callable[..., Any]] = {"model80": model80, "clip": clip, "mtl": mtl, "findings": findings, "findings_report": findings_report}

#: The key under which the spread script puts `blind_truth_f1`.
BLIND = "blind/truth/ce/micro_f1"

#: What each learning test asserts: (metric, baseline metric) pairs whose
#: difference the spread script reports.
MARGINS: dict[str, list[tuple[str, str]]] = {
    "model80": [
        ("truth/ce/micro_f1", BLIND),
        ("truth/ce/micro_f1", "baselines/random_train/truth/ce/micro_f1"),
        ("truth/ce/micro_f1", "baselines/constant/truth/ce/micro_f1"),
        ("Bleu_2", "baselines/random_train/Bleu_2"),
        ("Bleu_2", "baselines/constant/Bleu_2"),
    ],
    "clip": [
        ("truth/ce/micro_f1", BLIND),
        ("truth/ce/micro_f1", "baselines/random_train/truth/ce/micro_f1"),
        ("truth/ce/micro_f1", "baselines/constant/truth/ce/micro_f1"),
        ("retrieval/i2t/R@5", "retrieval/chance/R@5"),
        ("retrieval/t2i/R@5", "retrieval/chance/R@5"),
        ("retrieval/i2t/R@10", "retrieval/chance/R@10"),
        ("Bleu_2", "baselines/random_train/Bleu_2"),
    ],
    "mtl": [
        ("truth/ce/micro_f1", BLIND),
        ("truth/ce/micro_f1", "baselines/constant/truth/ce/micro_f1"),
        ("truth/ce/micro_f1", "baselines/random_train/truth/ce/micro_f1"),
        ("ml/f1", "baselines/prevalence/ml/f1"),
        ("oc/accuracy", "baselines/majority/oc/accuracy"),
        ("Bleu_2", "baselines/constant/Bleu_2"),
    ],
    "findings_report": [
        ("ce/micro_f1", "baselines/constant/ce/micro_f1"),
        ("ce/micro_f1", "baselines/random_train/ce/micro_f1"),
        ("truth/ce/micro_f1", "baselines/constant/truth/ce/micro_f1"),
        ("truth/ce/micro_f1", "baselines/random_train/truth/ce/micro_f1"),
        ("faithfulness/f1", "baselines/random_train/faithfulness/f1"),
    ],
    "findings": [
        ("auroc_macro", "baselines/prevalence/auroc_macro"),
        *[(f"auroc/{name}", f"baselines/prevalence/auroc/{name}") for name in (
            "Atelectasis", "Cardiomegaly", "Effusion", "Nodule", "Pneumothorax", "Consolidation", "Edema")],
        *[(f"held_out/localisation/gradcam/pointing_game/{name}", f"held_out/localisation/baselines/{baseline}/pointing_game/{name}")
          for name in ("Atelectasis", "Cardiomegaly", "Effusion", "Nodule", "Pneumothorax", "Consolidation", "Edema")
          for baseline in ("centre", "random_point")],
        ("held_out/pooled/off_centre/gradcam", "held_out/pooled/off_centre/centre"),
        ("held_out/pooled/central/gradcam", "held_out/pooled/central/random_point"),
    ],
}

#: The held-out localisation set of the findings run: images drawn like its
#: training tree but from another seed, many enough that the pointing game
#: is not dominated by which few boxed test images a split holds (the test
#: split has 13 to 33 boxed images per finding: one run's pointing game moved
#: by up to 0.15 between seeds; on these about 1,000 images, by a few hundredths).
HELD_OUT_IMAGES = 1000
HELD_OUT_SEED = 1000


def held_out_localisation(run_dir: Path, root: Path, *, num: int = HELD_OUT_IMAGES, seed: int = HELD_OUT_SEED) -> dict[str, Any]:
    """Grad-CAM's pointing game and IoU, with their baselines, for a trained
    findings run on `num` fresh synthetic ChestX-ray14-format images (written
    once under `root/held_out`), every drawn lesion a box; keys prefixed `held_out/`."""
    import numpy as np
    import tensorflow as tf

    from medcap.data import synthetic
    from medcap.data.chestxray14 import write_synthetic_tree
    from medcap.data.pipeline import read_image
    from medcap.evaluation.localisation import localisation_scores
    from medcap.explanations.methods import Explainer
    from medcap.training import _load_workdir

    tree = Path(root) / "held_out"
    config, task, model = _load_workdir(Path(run_dir))
    size = tuple(config.data.image_size)
    if not (tree / "synthetic_truth.json").is_file():
        write_synthetic_tree(tree, num=num, seed=seed, image_size=size[0])
    files = {p.name: p for p in tree.glob("images_*/images/*.png")}
    names = list(task.label_names)
    pairs = [
        (image, names.index(name), [b for b in boxes if b["finding"] == name])
        for image, boxes in sorted(synthetic.load_truth_boxes(tree).items())
        for name in sorted({b["finding"] for b in boxes} & set(names))
    ]
    explainer = Explainer(model, config.eval.explain_method, feature_layer=model.feature_layer)
    maps = []
    for start in range(0, len(pairs), 64):
        chunk = pairs[start : start + 64]
        pixels = np.stack([read_image(tf.constant(str(files[image])), size).numpy() for image, _, _ in chunk])
        maps.append(explainer(pixels, [j for _, j, _ in chunk]))
    frame = (size[0], size[1])
    scores = localisation_scores(
        list(np.concatenate(maps)), [b for _, _, b in pairs], [frame] * len(pairs), [names[j] for _, j, _ in pairs],
        method=config.eval.explain_method,
    )
    out = {f"held_out/{key}": value for key, value in scores.items()}
    out.update(pooled_pointing_game(out, names, method=config.eval.explain_method))
    return out


def pooled_pointing_game(metrics: dict[str, Any], names: list[str], *, method: str, prefix: str = "held_out/") -> dict[str, Any]:
    """The pointing game pooled over boxed images (weighted by their count)
    in two groups: `off_centre`, the findings some of whose boxes miss the
    image centre, with the centre point's pooled score; `central`, those
    whose every box holds the centre (no map can beat the centre point
    there), with the random point's."""
    key = f"{prefix}localisation"
    present = [n for n in names if f"{key}/{method}/n/{n}" in metrics]
    central = [n for n in present if metrics[f"{key}/baselines/centre/pointing_game/{n}"] == 1.0]
    groups = {"off_centre": ([n for n in present if n not in central], "centre"), "central": (central, "random_point")}
    out: dict[str, Any] = {}
    for group, (members, baseline) in groups.items():
        counts = [metrics[f"{key}/{method}/n/{n}"] for n in members]
        if not members:
            continue
        for source, name in ((f"{method}/pointing_game", method), (f"baselines/{baseline}/pointing_game", baseline)):
            values = [metrics[f"{key}/{source}/{n}"] for n in members]
            out[f"{prefix}pooled/{group}/{name}"] = sum(v * c for v, c in zip(values, counts)) / sum(counts)
        out[f"{prefix}pooled/{group}/findings"] = ",".join(members)
    return out


def blind_truth_f1(config, draws: int = 100) -> float:
    """Mean `truth/ce/micro_f1` of the `random_train` baseline over `draws`
    seeds on the config's test split: what captions chosen without looking
    at the image score on average. One draw (the baseline in metrics.json)
    moved by up to 0.14 between seeds with 60 test captions; the mean of 100
    draws is an expectation, so the model is compared with that."""
    import numpy as np

    from medcap.data import synthetic
    from medcap.evaluation import baselines, clinical
    from medcap.training import load_splits

    splits = load_splits(config.data).splits
    truth = synthetic.truth_for(config.data)
    ids = [str(e["id"]) for e in splits[config.eval.split]]
    reports = [e["report_clean"] for e in splits["train"]]
    values = [
        clinical.truth_ce_metrics(truth, baselines.random_train_baseline(ids, reports, seed=seed))["truth/ce/micro_f1"]
        for seed in range(draws)
    ]
    return float(np.mean(values))


def run(
    name: str, root: Path, train_seed: int = TRAIN_SEED, data_seed: int = DATA_SEED, *, run_dir: Path | None = None
) -> dict[str, Any]:
    """Trains one learning run (data under `root`, the workdir `run_dir` or
    `root/run`) and returns its metrics."""
    from medcap.training import fit

    config = RUNS[name](Path(root), train_seed, data_seed)
    run_dir = Path(run_dir) if run_dir else Path(root) / "run"
    metrics = fit(config, run_dir)["metrics"]
    if name == "findings":
        metrics.update(held_out_localisation(run_dir, Path(root)))
    return metrics
