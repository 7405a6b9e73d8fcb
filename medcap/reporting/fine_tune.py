"""Fine-tuning a keras-hub causal LM to write reports from structured descriptions, with LoRA.

Paper 003 (Research Plan 4): "Fine-tuning will be conducted with
domain-specific datasets". Ours: the keras_hub writer's model learns, on
the train split only, to continue each study's prompt (its structured
description, as `render_prompt` writes it with ICIL and CoT off) with its
reference report. LoRA (Hu et al. 2021) through keras-hub's own
`backbone.enable_lora(rank)`: every backbone weight is frozen and low-rank
factors are trained on the attention query and value projections
(keras-hub's default targets; `target_layers` names others), so a
7B model's update fits one GPU; only the factors are saved
(`backbone.save_lora_weights`, a `.lora.h5` file) and the writer loads
them over the untouched preset (`KerasHubWriter(lora_weights=...)`).

The loss is the causal LM's cross-entropy on the report tokens only: the
prompt's positions get sample weight 0 (the prompt length is counted with
the model's own tokenizer, start token included), padding too. Batches are
drawn in a seeded order; Adam at `learning_rate`; `fine_tune_causal_lm`
returns the masked loss on the train pairs before and after, so a run
records that it learned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

LORA_FILE = "model.lora.h5"
RECORD_FILE = "fine_tune.json"


def _pairs_to_arrays(lm, prompts: Sequence[str], reports: Sequence[str], sequence_length: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    preprocessor = lm.preprocessor
    x, y, weight = preprocessor([p + r for p, r in zip(prompts, reports)], sequence_length=sequence_length)
    weight = np.array(weight, dtype="float32")
    tokenizer = preprocessor.tokenizer
    for row, prompt in enumerate(prompts):
        # y[t] is token t+1: the first report token is predicted at position len(prompt tokens) (start token included) - 1.
        prompt_tokens = int(np.asarray(tokenizer(prompt)).shape[-1]) + 1
        weight[row, : max(prompt_tokens - 1, 0)] = 0.0
    if not weight.any():
        raise ValueError(f"every report falls beyond sequence_length={sequence_length}: nothing to learn; raise it")
    return {k: np.asarray(v) for k, v in x.items()}, np.asarray(y), weight


def masked_loss(lm, x: dict[str, np.ndarray], y: np.ndarray, weight: np.ndarray, batch_size: int = 8) -> float:
    """Mean cross-entropy over the weighted (report) tokens."""
    import keras

    total, count = 0.0, 0.0
    for start in range(0, len(y), batch_size):
        batch = {k: v[start : start + batch_size] for k, v in x.items()}
        logits = lm(batch, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(y[start : start + batch_size], logits, from_logits=True)
        w = weight[start : start + batch_size]
        total += float(np.sum(np.asarray(losses) * w))
        count += float(w.sum())
    return total / count


def fine_tune_causal_lm(
    preset_dir: str | Path,
    prompts: Sequence[str],
    reports: Sequence[str],
    out_dir: str | Path,
    *,
    lora_rank: int = 4,
    epochs: int = 1,
    batch_size: int = 4,
    learning_rate: float = 1e-4,
    sequence_length: int = 1024,
    seed: int = 0,
    target_layers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Trains LoRA factors on (prompt, report) pairs; writes `out_dir/model.lora.h5` and a record."""
    import keras
    import keras_hub

    if len(prompts) != len(reports) or not prompts:
        raise ValueError(f"{len(prompts)} prompts and {len(reports)} reports: need equal, non-zero numbers")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    lm = keras_hub.models.CausalLM.from_preset(str(preset_dir))
    lm.backbone.enable_lora(lora_rank, target_layer_names=list(target_layers) if target_layers else None)
    # enable_lora leaves the targets' biases trainable, but only the factors are saved: freeze them.
    for weight in lm.backbone.trainable_weights:
        if "lora_" not in weight.path:
            weight.trainable = False
    x, y, weight = _pairs_to_arrays(lm, prompts, reports, sequence_length)
    before = masked_loss(lm, x, y, weight)
    preprocessor, lm.preprocessor = lm.preprocessor, None  # the arrays are tokenised already
    try:
        lm.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[],
        )
        history = lm.fit(x, y, sample_weight=weight, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    finally:
        lm.preprocessor = preprocessor
    after = masked_loss(lm, x, y, weight)
    lm.backbone.save_lora_weights(str(out / LORA_FILE))
    trainable = int(sum(np.prod(v.shape) for v in lm.backbone.trainable_weights))
    total = int(sum(np.prod(v.shape) for v in lm.backbone.weights))
    record = {
        "preset_dir": str(Path(preset_dir).resolve()),
        "lora_weights": str((out / LORA_FILE).resolve()),
        "lora_rank": lora_rank,
        "target_layers": list(target_layers) if target_layers else lm.backbone.default_lora_layer_names(),
        "pairs": len(prompts),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "sequence_length": sequence_length,
        "seed": seed,
        "trainable_parameters": trainable,
        "backbone_parameters": total,
        "train_loss_before": before,
        "train_loss_after": after,
        "history_loss": [float(v) for v in history.history.get("loss", [])],
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def load_lora(backbone, lora_weights: str | Path) -> None:
    """Enables LoRA on `backbone` with the rank and targets the factors were
    trained with (the record beside them; without one, keras-hub's defaults
    and the file's rank) and loads them."""
    path = Path(lora_weights)
    record_path = path.parent / RECORD_FILE
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        backbone.enable_lora(int(record["lora_rank"]), target_layer_names=record.get("target_layers"))
    backbone.load_lora_weights(str(path))
