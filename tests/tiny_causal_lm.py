"""A tiny keras-hub GPT-2 whose byte-level BPE is learned from given texts, saved as a preset folder.

The LLM writer tests load it through the same `CausalLM.from_preset` a
user's folder takes; its weights are random, so its text is nonsense.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import keras


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



def write_tiny_gpt2(folder: Path, texts, *, merges: int = 200, seed: int = 0, embedding_scale: float = 1.0):
    """Saves the preset under `folder`; returns the tokenizer.

    `embedding_scale` multiplies the (tied) token embeddings: at GPT-2's
    initial scale (std 0.02) a 16-wide model's logits stay near zero, so a
    LoRA update, which leaves the embeddings frozen, cannot move its loss."""
    import keras_hub

    vocabulary, learned = learn_bpe(texts, merges)
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=learned)
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=4096
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer, sequence_length=64)
    if embedding_scale != 1.0:
        embedding = backbone.get_layer("token_embedding")
        embedding.embeddings.assign(embedding.embeddings * embedding_scale)
    keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor).save_to_preset(str(folder))
    return tokenizer
