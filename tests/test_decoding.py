"""Batched compiled decoding (medcap.decoding): stop tokens, greedy == beam(1), beam == exhaustive."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from medcap.decoding import Decoder, clean_after_end, reference_greedy_decode
from medcap.text import END_ID, PAD_ID, START_ID, UNK_ID

VOCAB = 8  # 0 pad, 1 unk, 2 start, 3 end, 4..7 words


def _table_next_fn(table: np.ndarray, calls: tf.Variable | None = None):
    """A toy "model": the next-token distribution depends on (row, previous token, position).

    `table[row, prev, position]` is a (VOCAB,) probability vector.
    """
    table = tf.constant(table, tf.float32)

    def next_fn(prompt, cache, index):
        if calls is not None:
            calls.assign_add(1)
        prev = tf.gather(prompt, index - 1, axis=1)
        rows = cache["row"]
        position = tf.fill(tf.shape(rows), index - 1)
        probs = tf.gather_nd(table, tf.stack([rows, prev, position], axis=1))
        return probs, cache

    return next_fn


def _random_table(rng: np.random.Generator, rows: int, length: int, peaked: float = 3.0) -> np.ndarray:
    logits = rng.normal(size=(rows, VOCAB, length, VOCAB)) * peaked
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return probs / probs.sum(-1, keepdims=True)


def test_stop_token_really_stops_each_row_and_the_loop():
    # Row r emits words 4, 5, ... and <end> at step r + 1 (row 3 never ends).
    length = 6
    table = np.full((4, VOCAB, length, VOCAB), 1e-3)
    for row, stop in enumerate([1, 2, 4, 99]):
        for position in range(length):
            token = END_ID if position + 1 == stop else 4 + position % 4
            table[row, :, position, token] = 1.0
    table /= table.sum(-1, keepdims=True)
    calls = tf.Variable(0)
    decoder = Decoder(_table_next_fn(table, calls), max_length=length, method="greedy")
    out = decoder({"row": tf.range(4)})
    assert out.tolist() == [
        [END_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
        [4, END_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
        [4, 5, 6, END_ID, PAD_ID, PAD_ID],
        [4, 5, 6, 7, 4, 5],
    ]
    # When every row has finished the loop exits: rows 0-2 alone need 4 steps, not 6.
    calls.assign(0)
    out = decoder({"row": tf.range(3)})
    assert int(calls.numpy()) == 4
    assert (clean_after_end(out) == out).all()


def test_finished_rows_emit_only_padding_even_when_the_model_says_otherwise():
    # After <end> this model would happily emit <end> and words again.
    table = np.full((1, VOCAB, 5, VOCAB), 1.0 / VOCAB)
    table[0, :, 0, :] = 0.0
    table[0, :, 0, END_ID] = 1.0  # first token: <end>
    decoder = Decoder(_table_next_fn(table), max_length=5, method="greedy")
    assert decoder({"row": tf.constant([0, 0])}).tolist() == [[END_ID, 0, 0, 0, 0]] * 2


def test_pad_and_start_are_never_generated():
    table = np.full((1, VOCAB, 4, VOCAB), 0.01)
    table[0, :, :, PAD_ID] = 0.5  # the model prefers structural tokens
    table[0, :, :, START_ID] = 0.4
    table[0, :, :, 6] = 0.09
    decoder = Decoder(_table_next_fn(table), max_length=4, method="beam", beam_size=2)
    assert decoder({"row": tf.constant([0])}).tolist() == [[6, 6, 6, 6]]


@pytest.mark.parametrize("method,beams,xla", [("greedy", 1, False), ("greedy", 1, True), ("beam", 1, False), ("beam", 3, True)])
def test_unk_is_never_generated_even_as_the_most_probable_token(method, beams, xla):
    # <unk> is the model's favourite at every step; then word 5, then <end> from step 3 on.
    length = 5
    table = np.full((2, VOCAB, length, VOCAB), 0.01)
    table[:, :, :, UNK_ID] = 0.6
    table[:, :, :, 5] = 0.2
    table[:, :, 2:, END_ID] = 0.3
    table /= table.sum(-1, keepdims=True)
    decoder = Decoder(_table_next_fn(table), max_length=length, method=method, beam_size=beams, jit_compile=xla)
    out = decoder({"row": tf.range(2)})
    assert out.tolist() == [[5, 5, END_ID, PAD_ID, PAD_ID]] * 2
    assert UNK_ID not in out

    def predict_next(row, prompt, index):
        return table[row, prompt[0, index - 1], index - 1]

    np.testing.assert_array_equal(reference_greedy_decode(predict_next, 2, max_length=length), out)


@pytest.mark.parametrize("seed,xla", [(0, False), (1, False), (2, True)])
def test_greedy_equals_beam_of_one_and_the_python_loop(seed, xla):
    rng = np.random.default_rng(seed)
    length, rows = 7, 5
    table = _random_table(rng, rows, length)
    next_fn = _table_next_fn(table)
    cache = {"row": tf.range(rows)}
    greedy = Decoder(next_fn, max_length=length, method="greedy", jit_compile=xla)(cache)
    beam1 = Decoder(next_fn, max_length=length, method="beam", beam_size=1, jit_compile=xla)(cache)
    np.testing.assert_array_equal(greedy, beam1)

    def predict_next(row, prompt, index):
        return table[row, prompt[0, index - 1], index - 1]

    reference = reference_greedy_decode(predict_next, rows, max_length=length)
    np.testing.assert_array_equal(greedy, reference)


def _exhaustive_best(table: np.ndarray, row: int, length: int) -> list[int]:
    """Most probable well-formed sequence by enumeration (words 4..7; ends at <end>)."""
    allowed = [t for t in range(VOCAB) if t not in (PAD_ID, UNK_ID, START_ID)]
    best, best_score = None, -np.inf
    for size in range(1, length + 1):
        for seq in itertools.product(allowed, repeat=size):
            if END_ID in seq[:-1] or (size < length and seq[-1] != END_ID):
                continue
            prev, score = START_ID, 0.0
            for position, token in enumerate(seq):
                dist = table[row, prev, position].copy()
                dist[[PAD_ID, UNK_ID, START_ID]] = 0.0
                score += np.log(dist[token] / dist.sum())
                prev = token
            if score > best_score:
                best, best_score = list(seq), score
    return best + [PAD_ID] * (length - len(best))


def test_wide_beam_finds_the_exhaustive_optimum():
    """With as many beams as sequences, beam search is exact search. It only
    matches if finished beams keep their score and stop growing."""
    rng = np.random.default_rng(7)
    length, rows = 3, 4
    table = _random_table(rng, rows, length, peaked=1.5)
    table[:, :, :, END_ID] *= 4.0  # make short captions competitive
    table /= table.sum(-1, keepdims=True)
    decoder = Decoder(_table_next_fn(table), max_length=length, method="beam", beam_size=5**length, jit_compile=True)
    out = decoder({"row": tf.range(rows)})
    for row in range(rows):
        assert out[row].tolist() == _exhaustive_best(table, row, length), row


def test_xla_failure_falls_back_to_tf_function():
    table = _random_table(np.random.default_rng(3), 2, 4)
    inner = _table_next_fn(table)

    def next_fn(prompt, cache, index):  # a host callback XLA cannot compile
        probs, cache = inner(prompt, cache, index)
        hosted = tf.numpy_function(lambda p: p, [probs], tf.float32, stateful=False)
        return tf.ensure_shape(hosted, probs.shape), cache

    decoder = Decoder(next_fn, max_length=4, method="greedy", jit_compile=True)
    with pytest.warns(RuntimeWarning, match="XLA could not compile"):
        out = decoder({"row": tf.range(2)})
    assert not decoder.jit_compile
    np.testing.assert_array_equal(out, Decoder(inner, max_length=4, method="greedy")({"row": tf.range(2)}))
