"""Builds synthetic trees twice, in process and through Beam's DirectRunner, and compares every example.

    python tests/data/beam_equality.py OUT_DIR

Run by `tests/data/test_tfds_beam.py` with the Python of the environment
that has apache-beam (`make beam-env`). Prints one JSON line: per dataset
and split, the ids of each build and every (id, feature) whose values differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from medcap.data import tfds_builders
from medcap.registry import DATASETS

TREES = {"iu_xray": {"num": 16}, "mimic": {"num": 40}}


def _examples(builder, split: str) -> dict[str, dict]:
    return {example["id"].decode(): example for example in tfds.as_numpy(builder.as_dataset(split=split))}


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.asarray(a).shape == np.asarray(b).shape and np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def main(out: Path) -> dict:
    result = {}
    transforms: list[int] = []  # one per split the Beam builds hand to Beam
    to_beam = tfds_builders._beam_examples

    def recording(examples, encoding):
        transforms.append(len(examples))
        return to_beam(examples, encoding)

    tfds_builders._beam_examples = recording
    for name, spec in TREES.items():
        tree = DATASETS.get(name).synthesize(out / f"{name}-tree", num=spec["num"], seed=0, image_size=48)
        plain = tfds_builders.prepare(tfds_builders.make_builder(name, data_dir=out / f"{name}-plain"), tree)
        beam = tfds_builders.prepare(tfds_builders.make_builder(name, data_dir=out / f"{name}-beam"), tree, beam_options="--direct_num_workers=1")
        for split in plain.info.splits.keys():
            a, b = _examples(plain, split), _examples(beam, split)
            differ = [
                [key, feature] for key in sorted(set(a) & set(b)) for feature in sorted(set(a[key]) | set(b[key]))
                if feature not in a[key] or feature not in b[key] or not _same(a[key][feature], b[key][feature])
            ]  # fmt: skip
            result[f"{name}/{split}"] = {"plain": sorted(a), "beam": sorted(b), "differ": differ, "features": sorted(next(iter(a.values())))}
        result[f"{name}/metadata_equal"] = plain.info.metadata["read_counts"] == beam.info.metadata["read_counts"]
    result["beam_transforms"] = transforms
    return result


if __name__ == "__main__":
    print("RESULT" + json.dumps(main(Path(sys.argv[1]))))
