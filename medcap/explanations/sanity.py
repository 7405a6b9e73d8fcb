"""The model-parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

A map that explains the model must change when the model's learnt weights
are replaced by random ones. Cascading randomisation, as the paper does it:
first the output layer only ("head"), then the output layer and the last
block of the backbone ("top_block"; `randomise_from` names its first layer).
For each stage a copy of the model is built from its config with fresh
random weights (seeded) and given the trained weights of every layer that
stays; the maps of the same (image, finding) pairs are compared with the
trained model's by Spearman rank correlation over pixels. A correlation
near 1 would mean the map shows the image, not the model's decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medcap.explanations.methods import Explainer


def layers_from(model, prefix: str) -> list[str]:
    """Names of the weighted layers from the first one named `prefix...` to the end."""
    names = [layer.name for layer in model.layers]
    start = next((i for i, name in enumerate(names) if name.startswith(prefix)), None)
    if start is None:
        raise ValueError(f"no layer of {model.name} starts with {prefix!r}")
    return [layer.name for layer in model.layers[start:] if layer.weights]


def randomised_copy(model, randomise: Sequence[str], *, seed: int = 0):
    """The model with the layers named in `randomise` re-initialised (seeded), every other layer trained."""
    import keras

    keras.utils.set_random_seed(seed)
    copy = model.__class__.from_config(model.get_config())
    chosen = set(randomise)
    for layer in model.layers:
        if layer.weights and layer.name not in chosen:
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


def rank_correlations(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman correlation of each pair of maps over their pixels (NaN for a constant map)."""
    from scipy.stats import spearmanr

    out = []
    for a, b in zip(first, second):
        a, b = np.ravel(a), np.ravel(b)
        out.append(np.nan if a.std() == 0 or b.std() == 0 else float(spearmanr(a, b).statistic))
    return np.asarray(out, dtype=np.float64)


def randomisation_test(
    model,
    images: np.ndarray,
    labels: Sequence[int],
    *,
    method: str,
    feature_layer: str,
    head_layers: Sequence[str],
    top_block: str,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """`sanity/<method>/rank_correlation/<stage>` (mean over pairs) and the pair count."""

    def maps_of(net) -> np.ndarray:
        explainer = Explainer(net, method, feature_layer=feature_layer)
        return np.concatenate(
            [explainer(images[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        )

    trained = maps_of(model)
    stages = {"head": list(head_layers), "top_block": sorted(set(head_layers) | set(layers_from(model, top_block)))}
    out: dict[str, Any] = {f"sanity/{method}/pairs": len(images), f"sanity/{method}/top_block": top_block}
    for stage, randomise in stages.items():
        correlations = rank_correlations(trained, maps_of(randomised_copy(model, randomise, seed=seed)))
        out[f"sanity/{method}/rank_correlation/{stage}"] = float(np.nanmean(correlations)) if np.isfinite(correlations).any() else float("nan")
    return out
