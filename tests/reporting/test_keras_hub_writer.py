"""The keras_hub writer end to end: a tiny random GPT-2 whose byte-level BPE is learned from train reports,
saved as a keras-hub preset folder and loaded through the writer's own code; prompts, batching, parsing, cache."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_causal_lm import write_tiny_gpt2

from medcap.reporting.description import describe
from medcap.reporting.llm_writers import KerasHubWriter, LLMError
from medcap.reporting.prompts import ExampleIndex, PromptSettings, parse_reply, render_prompt

NAMES = ("Cardiomegaly", "Edema", "Pneumothorax")
TRAIN_REPORTS = [
    "The heart is normal in size. The lungs are clear. No pneumothorax.",
    "Mild cardiomegaly. Pulmonary edema. No pneumothorax.",
    "Heart size is normal. No pulmonary edema. Small right pneumothorax.",
    "The heart is enlarged. The lungs are clear.",
]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    return folder, write_tiny_gpt2(folder, TRAIN_REPORTS)


def studies(n: int, seed: int = 0, prefix: str = "s"):
    rng = np.random.default_rng(seed)
    return [describe(f"{prefix}{i}", {name: float(rng.uniform()) for name in NAMES}, {name: 0.5 for name in NAMES}) for i in range(n)]


def writer(folder, tmp_path, **kwargs) -> KerasHubWriter:
    train = studies(4, seed=3, prefix="t")
    examples = ExampleIndex(train, TRAIN_REPORTS)
    return KerasHubWriter(preset_dir=str(folder), settings=PromptSettings(icil=True, k=1, cot=True), cache_dir=str(tmp_path / "cache"), examples=examples, progress=False, **kwargs)


def test_a_local_preset_writes_in_batches_parses_and_caches(preset, tmp_path):
    folder, _ = preset
    descriptions = studies(5)
    first = writer(folder, tmp_path, batch_size=2, max_tokens=12)
    assert first.generate_calls == []
    written = first.write(descriptions)
    # Five prompts, two at a time, each batch to its longest prompt plus 12 new tokens.
    assert [c["prompts"] for c in first.generate_calls] == [2, 2, 1]
    assert all(c["max_length"] == c["longest_prompt"] + 12 for c in first.generate_calls)
    longest = [c["longest_prompt"] for c in first.generate_calls]
    assert longest == sorted(longest)  # batches of similar lengths
    for description, report in zip(descriptions, written):
        messages = report.extras["prompt"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert messages[-1]["content"] == description.to_text() and render_prompt(messages).endswith("Report:\n")
        # The reply is the generated continuation only (the prompt stripped), parsed for the marker.
        reply = report.extras["reply"]
        assert isinstance(reply, str) and "Structured findings:" not in reply  # may be empty: the end token can come first
        assert (report.report, report.extras["reasoning"], report.extras["marker_missing"]) == parse_reply(reply, cot=True)
    # The same prompts again: all from the cache, nothing generated.
    again = writer(folder, tmp_path, batch_size=2, max_tokens=12)
    rerun = again.write(descriptions)
    assert again.generate_calls == [] and [w.report for w in rerun] == [w.report for w in written]
    # Other generation settings are other cache entries.
    longer = writer(folder, tmp_path, batch_size=5, max_tokens=13)
    longer.write(descriptions)
    assert [c["prompts"] for c in longer.generate_calls] == [5]


def test_bad_folders_and_settings_are_named(preset, tmp_path):
    folder, _ = preset
    with pytest.raises(LLMError, match="not a keras-hub preset folder"):
        writer(tmp_path, tmp_path)
    with pytest.raises(ValueError, match="sampler='nucleus'"):
        writer(folder, tmp_path, sampler="nucleus")
    small = writer(folder, tmp_path, max_tokens=4)
    small.lm.backbone.max_sequence_length = 50  # a context too short for the ICIL prompt
    with pytest.raises(LLMError, match="does not fit the model's 50; lower icil_k"):
        small.write(studies(1))
