"""Batched compiled greedy decoding vs a per-token Python loop, same model.

    python bench/decode.py [--batch 64] [--vocab 1000] [--max-length 21] [--preset model80]

Both decoders run paper 000's model (`CaptionBiLSTM`, preset model80 by
default) on the same 64 feature vectors:

* compiled: `medcap.decoding.Decoder` (keras_hub GreedySampler in one
  XLA-compiled tf.function over the whole batch, as the model80 task runs it;
  `--no-xla` for a plain tf.function);
* loop: `medcap.decoding.reference_greedy_decode`, one sequence at a time and
  one `model.predict_on_batch(...)` call per token: the tutorial recipe
  (`model.predict` per word), with Keras' compiled predict function and
  without `predict`'s per-call progress/iterator overhead, so the ratio is
  conservative. `--loop-call eager` calls `model(...)` eagerly instead
  (much slower: the LSTM then runs op by op).

Prints captions/s for each and the ratio, and asserts identical tokens.
Goal: ratio >= 20x. The model has random weights with its output
layer sharpened (x30) so that argmax never sits on a near-tie that batch-size
dependent float rounding could flip; sequences then run to `max_length`
unless `<end>` wins, the same work for both decoders.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from medcap.decoding import Decoder, reference_greedy_decode  # noqa: E402
from medcap.models.model80 import IMAGE_INPUT, TOKEN_INPUT, from_preset, next_token_fn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=21)
    parser.add_argument("--preset", default="model80")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the compiled decoder (best kept)")
    parser.add_argument("--no-xla", dest="xla", action="store_false",
                        help="plain tf.function instead of XLA (the model80 task decodes with XLA)")
    parser.add_argument("--loop-call", choices=("predict_on_batch", "eager"), default="predict_on_batch")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = from_preset(args.preset, vocabulary_size=args.vocab)
    output = model.get_layer("next_word")
    output.kernel.assign(output.kernel * 30.0)
    features = np.random.default_rng(0).normal(size=(args.batch, model.feature_dim)).astype("float32")

    decoder = Decoder(next_token_fn(model), max_length=args.max_length, method="greedy", jit_compile=args.xla)
    decoder({IMAGE_INPUT: features})  # trace + compile once
    compiled_seconds = float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        compiled = decoder({IMAGE_INPUT: features})
        compiled_seconds = min(compiled_seconds, time.perf_counter() - started)

    def predict_next(row, prompt, index):
        inputs = {IMAGE_INPUT: features[row : row + 1], TOKEN_INPUT: prompt}
        if args.loop_call == "eager":
            return np.asarray(model(inputs, training=False))[0]
        return np.asarray(model.predict_on_batch(inputs))[0]

    predict_next(0, np.zeros((1, args.max_length + 1), np.int32), 1)  # warm-up
    started = time.perf_counter()
    looped = reference_greedy_decode(predict_next, args.batch, max_length=args.max_length)
    loop_seconds = time.perf_counter() - started

    np.testing.assert_array_equal(compiled, looped)
    steps = int((looped != 0).sum())
    compiled_rate = args.batch / compiled_seconds
    loop_rate = args.batch / loop_seconds
    print(f"model: {args.preset}, vocabulary {args.vocab}, batch {args.batch}, max_length {args.max_length}, "
          f"{steps} generated tokens; outputs identical: yes")
    print(f"compiled batched greedy : {compiled_rate:10.1f} captions/s  ({compiled_seconds:.3f} s, "
          f"{'XLA' if args.xla else 'tf.function'})")
    print(f"python per-token loop   : {loop_rate:10.1f} captions/s  ({loop_seconds:.3f} s, {args.loop_call} per token)")
    print(f"ratio                   : {compiled_rate / loop_rate:10.1f}x  (goal >= 20x)")


if __name__ == "__main__":
    main()
