"""Reads the dataset a `DataConfig` names: the configured download, or the
synthetic tree in that dataset's real on-disk format when none is given.

The one entry point from a config to examples, shared by the trainer, the
feature cache, the tasks and the evaluation commands.
"""

from __future__ import annotations

from pathlib import Path

from medcap.config import DataConfig
from medcap.data.base import ReadResult


def load_splits(data: DataConfig) -> ReadResult:
    """Reads the configured dataset; with no `source_dir`, writes (once) and
    reads the synthetic dataset in that dataset's real on-disk format."""
    from medcap.registry import DATASETS

    source = DATASETS.get(data.name)
    if data.synthetic:
        from medcap.data.synthetic import ensure_synthetic, tree_dir

        source_dir = ensure_synthetic(
            source,
            tree_dir(data),
            num=data.synthetic_num,
            seed=data.synthetic_seed,
            image_size=data.synthetic_image_size,
            reports=data.synthetic_reports,
        )
    else:
        source_dir = Path(data.source_dir)
        if not source_dir.is_dir():
            raise FileNotFoundError(f"data.source_dir={source_dir}: no such directory")
    result = source.read(
        source_dir,
        variant=data.variant,
        split_seed=data.split_seed,
        skip_invalid=data.skip_invalid,
        options=dict(data.options),
    )
    if data.max_examples:
        result.splits = {name: examples[: data.max_examples] for name, examples in result.splits.items()}
    result.info.setdefault("source_dir", str(source_dir))
    result.info.setdefault("synthetic", data.synthetic)
    return result
