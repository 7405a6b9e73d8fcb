"""The keras_hub writer end to end: a tiny random GPT-2 whose byte-level BPE is learned from train reports,
saved as a keras-hub preset folder and loaded through the writer's own code; prompts, batching, parsing, cache."""

from __future__ import annotations

import re
from collections import Counter

import keras
import numpy as np
import pytest

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


def learn_bpe(texts, merges: int):
    """GPT-2's byte-level BPE: words pre-split as GPT-2 does, the most frequent adjacent pair merged `merges` times."""
    from keras_hub.src.tokenizers.byte_pair_tokenizer import bytes_to_unicode

    byte_list, chars = bytes_to_unicode()
    to_char = {b[0]: c for b, c in zip(byte_list, chars)}
    words = Counter(tuple(to_char[b] for b in w.encode()) for t in texts for w in re.findall(r" ?\w+| ?[^\w\s]+|\s+", t))
    vocabulary = {c: i for i, c in enumerate(chars)}
    learned = []
    for _ in range(merges):
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        (a, b), _ = pairs.most_common(1)[0]
        learned.append(f"{a} {b}")
        vocabulary[a + b] = len(vocabulary)
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == (a, b):
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    vocabulary["<|endoftext|>"] = len(vocabulary)
    return vocabulary, learned


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    import keras_hub

    vocabulary, merges = learn_bpe(TRAIN_REPORTS, 200)
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=4096
    )
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=64))
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    lm.save_to_preset(str(folder))
    return folder, tokenizer


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
        assert reply and "Structured findings:" not in reply
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
