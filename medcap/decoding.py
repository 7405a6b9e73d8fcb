"""Batched, compiled autoregressive decoding through `keras_hub.samplers`.

Any next-token model plugs in through one function, keras-hub's convention:

    next_fn(prompt, cache, index) -> (scores, cache)

`prompt` is the (batch, length) int32 token buffer: `<start>` at position 0,
tokens generated so far at `1 .. index-1`, `<pad>` after. `scores` is the
(batch, vocab) distribution of the token at position `index`, given as
probabilities (`scores="probabilities"`, a softmax model such as paper 000's)
or logits (`scores="logits"`, e.g. a transformer decoder). `cache` is any
nested structure of tensors with a leading batch axis: the image features
for paper 000's model, encoder outputs and key/value caches for a
transformer. Beam search repeats and reorders it with the beams.

`Decoder` runs `keras_hub.samplers.GreedySampler` or `BeamSampler` inside one
`tf.function` over the whole batch (no per-token Python). Two rules keep the
output well formed, the same rules for every method, so greedy decoding equals
beam search with one beam token for token:

* **A stop token really stops a sequence.** Once a row has produced
  `<end>`, its next-token distribution is replaced by certainty on `<pad>`:
  it keeps its score (log 1 = 0) and emits only padding, so a finished beam
  competes with its true probability and nothing trails after `<end>`. The
  loop exits when every row has finished. We compare token ids, never
  strings (a comparison with `" <end>"`, the keras-io example's bug, never
  matches the `<end>` token, so nothing stops early); and
  keras_hub's samplers on their own only end the loop once *every* row has
  stopped, leaving tokens after `<end>` in the rows that finished first.
* `<pad>`, `<unk>` and `<start>` are never generated inside a sequence
  (`forbidden_ids`): `<pad>` and `<start>` are structural (a `<pad>` inside
  the prefix would break the right-padded mask the models rely on), and
  `<unk>` is no word: a caption saying "<unk>" is unreadable and scores
  nothing against the references' real words. Their log-probability is set
  to -1e9 before the sampler chooses (exp of it is exactly 0 in float32, as
  -inf would be, without the NaN that an all -inf row would give), so the
  sampler takes the best remaining token. Paper 000 does not say how it
  treated `<unk>` in decoding; this is ours, for every task.

Output: (batch, max_length) int32 ids after `<start>`, padded with `<pad>`
after the first `<end>` (which is kept). `reference_greedy_decode` is the
plain per-token Python loop the benchmark and tests compare with.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from medcap.text import END_ID, PAD_ID, START_ID, UNK_ID

METHODS = ("greedy", "beam")
#: Logit given to excluded tokens: exp(-1e9 - max) underflows to exactly 0.
_EXCLUDED = -1e9

#: Tokens no decoder ever generates (module docstring).
FORBIDDEN_IDS: tuple[int, ...] = (PAD_ID, UNK_ID, START_ID)

NextFn = Callable[[Any, Any, Any], tuple[Any, Any]]


def make_sampler(method: str = "greedy", beam_size: int = 1):
    """`keras_hub.samplers.GreedySampler()` or `BeamSampler(num_beams=beam_size)`."""
    import keras_hub

    if method == "greedy":
        return keras_hub.samplers.GreedySampler()
    if method == "beam":
        if beam_size < 1:
            raise ValueError(f"beam_size={beam_size}: must be >= 1")
        return keras_hub.samplers.BeamSampler(num_beams=beam_size)
    raise ValueError(f"unknown decoding method {method!r}; expected one of {', '.join(METHODS)}")


def well_formed_logits(
    scores,
    prompt,
    index,
    *,
    scores_are: str = "probabilities",
    end_id: int = END_ID,
    pad_id: int = PAD_ID,
    forbidden_ids: tuple[int, ...] = FORBIDDEN_IDS,
):
    """Turns a model's next-token scores into the logits the samplers see.

    Rows that already hold `end_id` before `index` get certainty on `pad_id`;
    other rows never get `forbidden_ids`. Probabilities become log-probs
    (softmax(log p) = p, so the sampler's own softmax is a no-op).
    """
    import tensorflow as tf

    scores = tf.cast(scores, tf.float32)
    if scores_are == "probabilities":
        logits = tf.math.log(scores)
    elif scores_are == "logits":
        logits = scores
    else:
        raise ValueError(f"scores_are={scores_are!r}: expected 'probabilities' or 'logits'")
    vocab = tf.shape(logits)[-1]
    if forbidden_ids:
        forbidden = tf.reduce_any(tf.equal(tf.range(vocab)[:, None], tf.constant(forbidden_ids)[None, :]), axis=-1)
        logits = tf.where(forbidden[None, :], tf.cast(_EXCLUDED, logits.dtype), logits)
    length = tf.shape(prompt)[1]
    before = tf.range(length)[None, :] < tf.cast(index, tf.int32)
    finished = tf.reduce_any(tf.logical_and(tf.equal(prompt, end_id), before), axis=-1)
    only_pad = tf.where(tf.equal(tf.range(vocab), pad_id), 0.0, _EXCLUDED)
    return tf.where(finished[:, None], only_pad[None, :], logits)


class Decoder:
    """Compiled batched decoding of a next-token model.

    Args:
        next_fn: `(prompt, cache, index) -> (scores, cache)`, see module docstring.
        max_length: generated tokens at most (`<end>` included), after `<start>`.
        method: "greedy" or "beam".
        beam_size: beams for "beam" (1 gives exactly greedy).
        scores_are: "probabilities" or "logits" (what `next_fn` returns).
        jit_compile: XLA-compile the whole loop (about 1.6x faster for paper
            000's BiLSTM on CPU, `bench/decode.py --xla`). Should XLA reject
            the graph on some device, the decoder warns and falls back to a
            plain tf.function.

    Call with the initial `cache` (batch-leading tensors) and the batch size
    comes from it; returns a numpy (batch, max_length) int32 array.
    """

    def __init__(
        self,
        next_fn: NextFn,
        *,
        max_length: int,
        method: str = "greedy",
        beam_size: int = 1,
        scores_are: str = "probabilities",
        start_id: int = START_ID,
        end_id: int = END_ID,
        pad_id: int = PAD_ID,
        forbidden_ids: tuple[int, ...] = FORBIDDEN_IDS,
        jit_compile: bool = False,
    ):
        import tensorflow as tf

        if max_length < 1:
            raise ValueError(f"max_length={max_length}: must be >= 1")
        self.next_fn = next_fn
        self.max_length = int(max_length)
        self.method = method
        self.beam_size = int(beam_size)
        self.scores_are = scores_are
        self.start_id, self.end_id, self.pad_id = int(start_id), int(end_id), int(pad_id)
        self.forbidden_ids = tuple(int(i) for i in forbidden_ids)
        self.sampler = make_sampler(method, beam_size)
        self.jit_compile = bool(jit_compile)
        self._generate = tf.function(self._generate_graph, jit_compile=self.jit_compile, reduce_retracing=True)

    def _wrapped_next(self, prompt, cache, index):
        scores, cache = self.next_fn(prompt, cache, index)
        logits = well_formed_logits(
            scores,
            prompt,
            index,
            scores_are=self.scores_are,
            end_id=self.end_id,
            pad_id=self.pad_id,
            forbidden_ids=self.forbidden_ids,
        )
        return logits, None, cache

    def _generate_graph(self, cache):
        import keras
        import tensorflow as tf

        batch = tf.shape(keras.tree.flatten(cache)[0])[0]
        prompt = tf.concat(
            [tf.fill([batch, 1], self.start_id), tf.fill([batch, self.max_length], self.pad_id)], axis=1
        )
        prompt = self.sampler(
            self._wrapped_next,
            prompt,
            cache=cache,
            index=1,
            stop_token_ids=(self.end_id,),
        )
        return prompt[:, 1:]

    def __call__(self, cache) -> np.ndarray:
        import keras
        import tensorflow as tf

        cache = keras.tree.map_structure(lambda t: keras.ops.convert_to_tensor(t), cache)
        try:
            return np.asarray(self._generate(cache)).astype(np.int32)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError) as err:
            if not self.jit_compile:
                raise
            warnings.warn(f"XLA could not compile the decoding loop ({type(err).__name__}); using tf.function", RuntimeWarning, stacklevel=2)
            self.jit_compile = False
            self._generate = tf.function(self._generate_graph, reduce_retracing=True)
            return np.asarray(self._generate(cache)).astype(np.int32)

    def decode_batches(self, cache_batches) -> np.ndarray:
        """Decodes an iterable of cache batches (e.g. a batched tf.data of
        features) and concatenates the results."""
        outputs = [self(batch) for batch in cache_batches]
        if not outputs:
            return np.zeros((0, self.max_length), np.int32)
        return np.concatenate(outputs, axis=0)


def clean_after_end(tokens: np.ndarray, end_id: int = END_ID, pad_id: int = PAD_ID) -> np.ndarray:
    """Pads everything after the first `end_id` of each row (kept)."""
    tokens = np.array(tokens, copy=True)
    for row in tokens:
        hits = np.flatnonzero(row == end_id)
        if hits.size:
            row[hits[0] + 1 :] = pad_id
    return tokens


def reference_greedy_decode(
    predict_next: Callable[[np.ndarray, int], np.ndarray],
    batch_size: int,
    *,
    max_length: int,
    start_id: int = START_ID,
    end_id: int = END_ID,
    pad_id: int = PAD_ID,
    forbidden_ids: tuple[int, ...] = FORBIDDEN_IDS,
) -> np.ndarray:
    """The straightforward decoder: a Python loop, one model call per token,
    one sequence at a time, stopping at `<end>`.

    `predict_next(row, prompt, index) -> (vocab,) scores` for example `row`
    given its (1, max_length + 1) prompt; only the argmax matters. Same output format and rules as `Decoder`
    (the benchmark asserts identical tokens).
    """
    output = np.full((batch_size, max_length), pad_id, np.int32)
    for row in range(batch_size):
        prompt = np.full((1, max_length + 1), pad_id, np.int32)
        prompt[0, 0] = start_id
        for index in range(1, max_length + 1):
            scores = np.array(predict_next(row, prompt, index), dtype=np.float64)
            scores[list(forbidden_ids)] = -np.inf
            token = int(np.argmax(scores))
            prompt[0, index] = token
            if token == end_id:
                break
        output[row] = prompt[0, 1:]
    return output
