"""Paper 003's ablation: the template writer against an LLM writer, with and without ICIL and CoT.

The proposal credits ICIL and chain of thought for coherent, clinically
sound reports; this table measures that on one trained classifier. Each
row re-evaluates (`medcap evaluate`, in a child process) a copy of a finished `findings_to_report` run (same
classifier, same test studies, same descriptions) with another writer:

    template                     the sentence bank (the run's own writer)
    llm (ICIL + CoT)             the LLM as the proposal plans
    llm, no ICIL                 instruction and CoT only
    llm, no CoT                  ICIL examples, the report asked for directly
    llm, neither                 the instruction alone
    llm fine-tuned (LoRA)        the keras_hub model fine-tuned on the train split first
                                 (only with LLM_PRESET_DIR: a local model to train)

The LLM is the one the environment names (`LLM_PRESET_DIR`: keras_hub;
else `LLM_BASE_URL` and `LLM_MODEL`: openai, as `findings_report_llm`);
without one the table holds the template row and says no LLM was
configured. All LLM rows share one reply cache, so rerunning the ablation
sends nothing twice.

    python -m medcap.models.findings_to_report_ablation RUN_DIR [--out DIR]

writes `ablation.md` and `ablation.json` into `--out` (default
`RUN_DIR/ablation`) and adds the table to RUN_DIR/report.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROWS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("template", {"writer": "template"}),
    ("llm (ICIL + CoT)", {"writer": "llm", "icil": True, "cot": True}),
    ("llm, no ICIL", {"writer": "llm", "icil": False, "cot": True}),
    ("llm, no CoT", {"writer": "llm", "icil": True, "cot": False}),
    ("llm, neither", {"writer": "llm", "icil": False, "cot": False}),
    ("llm fine-tuned (LoRA)", {"writer": "keras_hub", "icil": False, "cot": False, "fine_tune_llm": True}),
)
COLUMNS = (
    ("BLEU-4", "Bleu_4"),
    ("METEOR", "METEOR"),
    ("ROUGE-L", "ROUGE_L"),
    ("CIDEr", "CIDEr"),
    ("CE micro F1", "ce/micro_f1"),
    ("faithfulness F1", "faithfulness/f1"),
    ("hallucinated", "faithfulness/hallucinated"),
    ("omitted", "faithfulness/omitted"),
)
SECTION = "## Ablation: template vs LLM, ICIL, CoT"


def llm_configured() -> bool:
    return bool(os.environ.get("LLM_PRESET_DIR") or os.environ.get("LLM_BASE_URL"))


def run_ablation(run_dir: str | Path, out_dir: str | Path | None = None, rows: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluates every row (or the named `rows`) on a copy of `run_dir` (module docstring); returns {row: metrics}."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "ablation"
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((run_dir / "config.json").read_text())
    if config["model"]["name"] != "findings_to_report":
        raise ValueError(f"{run_dir} holds a {config['model']['name']} run; the ablation needs a findings_to_report run")
    results: dict[str, Any] = {}
    cache = out / "llm_cache"
    known = [name for name, _ in ROWS]
    unknown = sorted(set(rows or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; valid: {known}")
    for name, options in ROWS:
        if rows is not None and name not in rows:
            continue
        if options["writer"] == "llm" and not llm_configured():
            continue
        if options["writer"] == "keras_hub" and not os.environ.get("LLM_PRESET_DIR"):
            continue  # fine-tuning needs a local model
        workdir = out / "".join(c if c.isalnum() else "_" for c in name).strip("_")
        if not (workdir / "model.keras").is_file():
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.copytree(run_dir, workdir, ignore=shutil.ignore_patterns("ablation", "llm_cache", "tensorboard", "checkpoints"))
        variant = json.loads(json.dumps(config))
        variant["model"]["options"].update({**options, "llm_cache": str(cache)})
        (workdir / "config.json").write_text(json.dumps(variant, indent=1))
        # `medcap evaluate` in a child process, as the user would run it (the trainer sits above this module).
        subprocess.run([sys.executable, "-m", "medcap.cli", "evaluate", "--workdir", str(workdir)], check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads((workdir / "metrics.json").read_text())
        results[name] = {key: metrics.get(key) for _, key in COLUMNS} | {"meta/writer": metrics.get("meta/writer")}
    table = render_table(results)
    (out / "ablation.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "ablation.md").write_text(table)
    report = run_dir / "report.md"
    if report.is_file():
        text = report.read_text()
        if SECTION in text:
            text = text[: text.index(SECTION)].rstrip() + "\n"
        report.write_text(text + "\n" + table)
    return results


def render_table(results: dict[str, Any]) -> str:
    lines = [SECTION, "", "| writer | " + " | ".join(c for c, _ in COLUMNS) + " | marker missing |", "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name, row in results.items():
        cells = [_cell(row.get(key), key) for _, key in COLUMNS]
        writer = json.loads(row.get("meta/writer") or "{}")
        missing = str(writer["marker_missing"]) if "marker_missing" in writer and writer.get("cot") else "—"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {missing} |")
    lines.append("")
    llm = next((json.loads(r["meta/writer"]) for n, r in results.items() if n != "template"), None)
    if llm is None:
        lines.append("No LLM was configured (set LLM_PRESET_DIR for a keras-hub causal LM folder, or LLM_BASE_URL and LLM_MODEL for an OpenAI-compatible endpoint), so only the template row was run.")
    else:
        lines.append(f"LLM: `{llm.get('model')}` through the `{llm.get('writer')}` writer; every row scores the same test studies and descriptions.")
    return "\n".join(lines) + "\n"


COUNTS = ("faithfulness/hallucinated", "faithfulness/omitted")


def _cell(value: Any, key: str = "") -> str:
    if value is None:
        return "—"
    return str(int(value)) if key in COUNTS else f"{float(value):.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a finished findings_to_report run (e.g. results/findings_report)")
    parser.add_argument("--out", help="where the variants and the table go (default RUN_DIR/ablation)")
    args = parser.parse_args(argv)
    results = run_ablation(args.run_dir, args.out)
    print(render_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
