"""Peak memory of one epoch of (prefix -> next word) pairs: lazy tf.data vs materialised one-hot.

    python bench/prefix_memory.py [--captions 20000] [--vocab 5000] [--max-words 20]

Paper 000's model learns (image, caption prefix) -> next word. The common
recipe (keras-io / tutorial style) materialises every prefix and a one-hot
target row per prefix before training; the model80 task expands prefixes
lazily inside tf.data (`Model80Task.train_dataset`) with integer targets.

Each side runs in its own subprocess on the same synthetic captions
(`--captions` captions of 1..max_words words, uniform; words uniform over the
vocabulary) and iterates one epoch in batches of 64:

* lazy: the real `Model80Task.train_dataset` (shuffled, expanded, batched);
* materialised: prefixes (pairs x (max_words + 1) int32) and one-hot targets
  (pairs x vocab float32, written in full as `np.eye(vocab)[targets]` does),
  then the same batches sliced from them.

Image features are left out of both sides (`--feature-dim 1`): both designs
can keep one feature row per image and gather it per batch; the tutorial
recipe that also repeats the 4096-d vector per prefix would only widen the
gap. Peak RSS is read from `getrusage` in each subprocess; the baseline is
the RSS after imports and the shared inputs, so "delta" is the memory the
epoch itself needs. Goal: lazy delta <= 1/50 of materialised.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _captions(count: int, vocab: int, max_words: int, seed: int = 0) -> tuple[list[str], list[str]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab - 4)]  # + 4 reserved ids = vocab
    lengths = rng.integers(1, max_words + 1, size=count)
    captions = [" ".join(words[j] for j in rng.integers(0, len(words), size=n)) for n in lengths]
    return words, captions


def run_side(side: str, args: argparse.Namespace) -> dict:
    import numpy as np
    import tensorflow as tf  # noqa: F401  (both sides pay for the runtime before the baseline)

    from medcap.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from medcap.features import FeatureSet
    from medcap.models.model80_task import Model80Task
    from medcap.text import Vocabulary

    words, captions = _captions(args.captions, args.vocab, args.max_words)
    config = ExperimentConfig(
        name="bench",
        data=DataConfig(name="medicat", options={"max_words": args.max_words}),
        model=ModelConfig(name="model80", preset="tiny", encoder_weights="none",
                          options={"min_count": 1}),
        train=TrainConfig(batch_size=args.batch_size),
    ).validate()
    task = Model80Task(config)
    task.vocabulary = Vocabulary(sorted(words))
    examples = [{"id": str(i), "image": "", "report_clean": text} for i, text in enumerate(captions)]
    features = np.zeros((len(examples), args.feature_dim), np.float16)
    task.features = {"train": FeatureSet([e["id"] for e in examples], features, {})}
    tokens = task.caption_tokens(examples)  # shared input: (captions, max_words + 2) int32
    pairs = int(np.count_nonzero(tokens) - len(examples))
    baseline = _rss_mb()
    started = time.perf_counter()
    checksum = 0
    if side == "lazy":
        dataset, steps = task.train_dataset(examples, batch_size=args.batch_size, seed=0, first_epoch=0, epochs=1)
        seen = 0
        for _, targets in dataset:
            seen += int(targets.shape[0])
            checksum += int(targets.numpy().sum())
        assert seen == pairs, (seen, pairs)
    else:
        width = args.max_words + 1
        prefixes = np.zeros((pairs, width), np.int32)
        targets = np.zeros(pairs, np.int64)
        k = 0
        for caption in tokens:
            n = int(np.count_nonzero(caption)) - 1
            for end in range(n):
                prefixes[k, : end + 1] = caption[: end + 1]
                targets[k] = caption[end + 1]
                k += 1
        one_hot = np.eye(args.vocab, dtype=np.float32)[targets]
        for start in range(0, pairs, args.batch_size):
            batch_y = one_hot[start : start + args.batch_size]
            checksum += int(batch_y.argmax(-1).sum())
            checksum += int(prefixes[start : start + args.batch_size, 0].sum() * 0)
    return {
        "side": side,
        "pairs": pairs,
        "baseline_mb": baseline,
        "peak_mb": _peak_mb(),
        "delta_mb": _peak_mb() - baseline,
        "seconds": time.perf_counter() - started,
        "checksum": checksum,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=20_000)
    parser.add_argument("--vocab", type=int, default=5_000)
    parser.add_argument("--max-words", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--feature-dim", type=int, default=1)
    parser.add_argument("--side", choices=("lazy", "materialised"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args)))
        return

    results = {}
    for side in ("lazy", "materialised"):
        command = [sys.executable, __file__, "--side", side, "--captions", str(args.captions), "--vocab", str(args.vocab),
                   "--max-words", str(args.max_words), "--batch-size", str(args.batch_size),
                   "--feature-dim", str(args.feature_dim)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    lazy, full = results["lazy"], results["materialised"]
    assert lazy["pairs"] == full["pairs"]
    print(f"{args.captions} captions, vocabulary {args.vocab}, {lazy['pairs']} (prefix, next word) pairs, batch {args.batch_size}")
    for r in (lazy, full):
        print(f"{r['side']:>13}: peak RSS {r['peak_mb']:8.1f} MB  (baseline {r['baseline_mb']:7.1f} MB, "
              f"epoch needs {r['delta_mb']:8.1f} MB, {r['seconds']:.1f} s)")
    print(f"ratio lazy/materialised: epoch memory {lazy['delta_mb'] / full['delta_mb']:.4f} "
          f"(1/{full['delta_mb'] / max(lazy['delta_mb'], 1e-9):.0f}; goal <= 1/50), "
          f"peak RSS {lazy['peak_mb'] / full['peak_mb']:.3f}")


if __name__ == "__main__":
    main()
