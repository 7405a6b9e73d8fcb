"""Paper 001, STL: Aksoy, Sharoff, Ravikumar, "Enhancing Image-to-Text
Generation in Radiology Reports through Cross-modal Multi-Task Learning".

Single-task learning baselines: three separate models with the same encoder
and training recipe, each trained on one task. This file is one experiment
run three times with `--set model.options.tasks=report` (default),
`=acuity` and `=findings`; `make reproduce-mtl` puts them in
`results/mtl/stl/{report,acuity,findings}`. `medcap train mtl_stl` trains
one of them and says so before training (`train_notice`), naming the
commands for the other two. The paper reports for STL:

    Table 1  BLEU-1 0.3326  BLEU-2 0.2159  BLEU-3 0.1488  BLEU-4 0.0950
             BERTScore F1 0.2056  Bio-ClinicalBERTScore F1 0.7857  ROUGE-L 0.3096
    Table 3  precision 0.7520  recall 0.6552  F1 0.7005  Hamming 0.1466  exact match 0.8534
    Table 4  accuracy 0.8790  MAE 0.1210  ACC+Corr 0.8197

and that the STL multi-label model overfits after 4 epochs (section 5).
Without a MIMIC download each run trains the scaled-down
`synthetic_overrides` on synthetic MIMIC-format data (numbers not comparable
with the paper's). Our choices are in `experiments/_paper001.py` (`CHOICES`).
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

#: The three single-task runs: `--set model.options.tasks=<task>`.
STL_TASKS = ("report", "acuity", "findings")


def train_notice(config: ExperimentConfig) -> str:
    """What `medcap train mtl_stl` prints before training: one invocation
    trains one of the three STL models, so it says which and how to run
    the other two."""
    from medcap.models.mtl_task import parse_tasks

    tasks = parse_tasks(config.model.options["tasks"])
    others = [task for task in STL_TASKS if task not in tasks]
    runs = "; ".join(
        f"medcap train mtl_stl --set model.options.tasks={task} --workdir runs/mtl_stl_{task}"
        for task in others
    )
    return (
        f"mtl_stl: this run trains the single-task model for {', '.join(tasks)} only; paper 001's STL baseline is "
        f"three separate models ({', '.join(STL_TASKS)}). Train the others with: {runs} "
        "(`make reproduce-mtl` runs all three into results/mtl/stl/)."
    )


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper001")
    config = shared.paper_config(
        name="mtl_stl",
        tasks=("report",),
        loss_weights=(1.0, 1.0, 1.0),
        regime="",  # "STL (<task>)", derived from model.options.tasks
        label="STL",
        paper_results=shared._paper("STL"),
    )
    return shared.smoke_config(config) if smoke else config
