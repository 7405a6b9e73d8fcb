"""Measures how much the learning tests' margins move between seeds and CPUs.

    python tests/measure_learning_spread.py --out /tmp/spread [--runs model80,clip,mtl]
        [--train-seeds 42,1,2,3,4] [--data-seeds 0,1] [--onednn 1,0] [--jobs 2]
    python tests/measure_learning_spread.py --out /tmp/spread --summary

Each (run, train seed, data seed, TF_ENABLE_ONEDNN_OPTS) trains in its own
process (`tests/learning_runs.py` holds the configurations the tests use) and
leaves `metrics.json` under `--out`; finished ones are not run again. The
summary prints, per run and margin (`learning_runs.MARGINS`), the metric
minus its baseline for every run, their mean, the largest deviation from the
mean, and mean / largest deviation (`blind/...` is `learning_runs.blind_truth_f1` of the
run's data seed): a test may assert a margin that leaves at
least three largest deviations between it and the mean. oneDNN on and off
stand in for CPUs whose kernels differ.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import learning_runs  # noqa: E402


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _key(name: str, train_seed: int, data_seed: int, onednn: int) -> str:
    return f"{name}-t{train_seed}-d{data_seed}-onednn{onednn}"


def _one(out: Path, name: str, train_seed: int, data_seed: int, onednn: int) -> str:
    key = _key(name, train_seed, data_seed, onednn)
    target = out / f"{key}.json"
    if target.is_file():
        return f"{key}: done before"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": str(onednn), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as scratch:
        # The data tree of a data seed is shared by its runs; the run dir is not.
        data_root = out / "trees" / f"{name}-d{data_seed}"
        data_root.mkdir(parents=True, exist_ok=True)
        env["KERAS_HOME"] = str(Path(scratch) / "keras_home")  # no ImageNet weights: the tests' setting
        code = (
            "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import learning_runs; "
            "m = learning_runs.run(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), "
            "run_dir=Path(sys.argv[6])); "
            "Path(sys.argv[7]).write_text(json.dumps({k: v for k, v in m.items() if isinstance(v, (int, float))}))"
        )
        log = out / f"{key}.log"
        with log.open("w") as handle:
            proc = subprocess.run(
                [sys.executable, "-c", code, str(HERE), name, str(data_root), str(train_seed), str(data_seed),
                 str(Path(scratch) / "run"), str(target)],
                env=env, stdout=handle, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
    return f"{key}: {'ok' if proc.returncode == 0 else f'FAILED ({proc.returncode}), see {log}'}"


def summary(out: Path) -> str:
    lines = []
    for name, margins in learning_runs.MARGINS.items():
        results = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob(f"{name}-t*.json"))}
        if not results:
            continue
        if any(baseline == learning_runs.BLIND for _, baseline in margins):
            blind: dict[int, float] = {}
            for key, metrics in results.items():
                data_seed = int(key.split("-d")[1].split("-")[0])
                if data_seed not in blind:
                    config = learning_runs.RUNS[name](out / "trees" / f"{name}-d{data_seed}", 0, data_seed)
                    blind[data_seed] = learning_runs.blind_truth_f1(config)
                metrics[learning_runs.BLIND] = blind[data_seed]
        lines.append(f"## {name}: {len(results)} runs")
        for metric, baseline in margins:
            rows = {k: m[metric] - m[baseline] for k, m in results.items() if metric in m and baseline in m}
            if not rows:
                continue
            values = list(rows.values())
            mean = sum(values) / len(values)
            deviation = max(abs(v - mean) for v in values)
            metric_values = [m[metric] for m in results.values() if metric in m]
            base_values = [m[baseline] for m in results.values() if baseline in m]
            lines.append(
                f"{metric} - {baseline}: mean {mean:+.4f}, min {min(values):+.4f}, largest deviation {deviation:.4f}, "
                f"mean/deviation {mean / deviation if deviation else float('inf'):.1f}; "
                f"metric {min(metric_values):.4f}..{max(metric_values):.4f}, baseline {min(base_values):.4f}..{max(base_values):.4f}"
            )
            lines.append("    " + " ".join(f"{k.split('-', 1)[1]}={v:+.4f}" for k, v in rows.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--runs", default=",".join(learning_runs.RUNS))
    parser.add_argument("--train-seeds", default="42,1,2,3,4")
    parser.add_argument("--data-seeds", default="0,1")
    parser.add_argument("--onednn", default="1,0")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--summary", action="store_true", help="only print the summary of what is there")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        # Data seeds alternate, so runs side by side rarely share a tree; each tree
        # is written once, before any run, so none is written by two at a time.
        grid = list(itertools.product(_ints(args.onednn), _ints(args.train_seeds), _ints(args.data_seeds),
                                      args.runs.split(",")))  # fmt: skip
        from medcap.training import load_splits

        for name, data_seed in sorted({(g[3], g[2]) for g in grid}):
            load_splits(learning_runs.RUNS[name](args.out / "trees" / f"{name}-d{data_seed}", 0, data_seed).data)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for line in pool.map(lambda g: _one(args.out, g[3], g[1], g[2], g[0]), grid):
                print(line, flush=True)
    print(summary(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
