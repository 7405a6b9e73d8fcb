"""LoRA fine-tuning of a keras-hub causal LM on (structured description -> report) pairs, end to end on a tiny GPT-2."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from tiny_causal_lm import write_tiny_gpt2

from medcap.reporting.description import describe
from medcap.reporting.fine_tune import LORA_FILE, _pairs_to_arrays, fine_tune_causal_lm, masked_loss
from medcap.reporting.llm_writers import KerasHubWriter
from medcap.reporting.prompts import PromptSettings, build_messages, render_prompt

NAMES = ("Cardiomegaly", "Edema")
REPORTS = ["The heart is enlarged.", "Pulmonary edema.", "The heart is normal in size.", "The heart is enlarged. Pulmonary edema."]
PROBABILITIES = [(0.9, 0.1), (0.1, 0.9), (0.1, 0.1), (0.9, 0.9)]


def prompts() -> list[str]:
    settings = PromptSettings(icil=False, cot=False)
    out = []
    for i, (c, e) in enumerate(PROBABILITIES):
        description = describe(f"t{i}", {"Cardiomegaly": c, "Edema": e}, {"Cardiomegaly": 0.5, "Edema": 0.5})
        out.append(render_prompt(build_messages(description, settings)))
    return out


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    write_tiny_gpt2(folder, REPORTS + prompts(), merges=400, embedding_scale=50.0)  # a tokenizer of this domain's text
    return folder


def test_only_report_tokens_carry_loss(preset):
    import keras_hub

    lm = keras_hub.models.CausalLM.from_preset(str(preset))
    x, y, weight = _pairs_to_arrays(lm, prompts()[:1], REPORTS[:1], 1024)
    tokenizer = lm.preprocessor.tokenizer
    prompt_tokens = len(tokenizer(prompts()[0])) + 1  # the start token
    report_tokens = len(tokenizer(prompts()[0] + REPORTS[0])) + 1 - prompt_tokens
    # Weighted: the report's tokens and the end token after it; the prompt predicts nothing.
    assert weight[0, : prompt_tokens - 1].sum() == 0
    assert weight[0].sum() == report_tokens + 1
    np.testing.assert_array_equal(y[0, prompt_tokens - 1 : prompt_tokens - 1 + report_tokens], np.asarray(tokenizer(prompts()[0] + REPORTS[0]))[prompt_tokens - 1 :])


def test_lora_learns_the_reports_and_leaves_the_preset_untouched(preset, tmp_path):
    """keras-hub's default LoRA targets (attention query and value), rank 4, Adam 3e-2, 30 epochs
    of 2 batches on 4 pairs, biases frozen: 320 of 76,592 backbone parameters train. Masked train
    loss 9.84 -> 6.13 (2-core Intel Xeon, oneDNN on and off identical); asserted: at least 2.0 lower."""
    import keras_hub

    record = fine_tune_causal_lm(preset, prompts(), REPORTS, tmp_path / "lora", lora_rank=4, epochs=30, batch_size=2, learning_rate=3e-2, sequence_length=1024)
    assert (tmp_path / "lora" / LORA_FILE).is_file()
    assert json.loads((tmp_path / "lora" / "fine_tune.json").read_text())["train_loss_after"] == record["train_loss_after"]
    assert record["train_loss_before"] - record["train_loss_after"] >= 2.0
    assert 0 < record["trainable_parameters"] < record["backbone_parameters"] / 2
    # The preset folder's weights are the ones it was written with.
    base = keras_hub.models.CausalLM.from_preset(str(preset))
    again = keras_hub.models.CausalLM.from_preset(str(preset))
    for a, b in zip(base.backbone.weights, again.backbone.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The writer loads the factors over the preset, and its cache key tells the two apart.
    keras.utils.set_random_seed(0)
    settings = PromptSettings(icil=False, cot=False)
    tuned = KerasHubWriter(preset_dir=str(preset), settings=settings, cache_dir=str(tmp_path / "cache"), lora_weights=str(tmp_path / "lora" / LORA_FILE), max_tokens=8, progress=False)
    plain = KerasHubWriter(preset_dir=str(preset), settings=settings, cache_dir=str(tmp_path / "cache"), max_tokens=8, progress=False)
    assert tuned.model != plain.model and "+lora@" in tuned.model
    # The writer's model is the fine-tuned one: its masked loss on the train pairs is the one training ended with.
    x, y, weight = _pairs_to_arrays(tuned.lm, prompts(), REPORTS, 1024)
    assert masked_loss(tuned.lm, x, y, weight) == pytest.approx(record["train_loss_after"], abs=1e-4)
    assert masked_loss(plain.lm, x, y, weight) == pytest.approx(record["train_loss_before"], abs=1e-4)
    description = describe("q", {"Cardiomegaly": 0.9, "Edema": 0.1}, {"Cardiomegaly": 0.5, "Edema": 0.5})
    assert tuned.write([description])[0].report != plain.write([description])[0].report
