"""Where paper 002's text encoder comes from, and how reports become its tokens.

The dual encoder (`medcap.models.clip_dual_encoder`) takes a built BERT
backbone; this module decides which one, once, from the train split, and
writes the decision into the run's workdir (`text_encoder.json` and the
vocabulary file) so that evaluation and captioning rebuild the same encoder:

* a local Hugging Face BERT folder (`config.json` with `model_type: bert`,
  `vocab.txt`, `model.safetensors`): keras-hub converts it; case follows its
  `tokenizer_config.json`, else the option, else the vocabulary;
* a keras-hub preset name or saved keras-hub preset folder;
* `none`, or nothing configured: a small random BERT with a WordPiece
  vocabulary computed from the train reports, recorded as
  `pretrained: false` (announced loudly when nothing was configured).

Each folder problem fails before training, naming the folder and the way out.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BERT_SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")


@dataclass
class TextEncoderSpec:
    """The text encoder's source, decided from the train split and saved in the workdir.

    kind: `random` (small random BERT, vocabulary from the train reports),
    `transformers` (a local Hugging Face folder), `keras_hub` (a keras-hub
    preset name or saved preset folder).
    """

    kind: str
    preset: str
    vocabulary_file: str
    lowercase: bool
    max_sequence_length: int
    bert: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TextEncoderSpec:
        return cls(**values)


TEXT_SPEC_FILE = "text_encoder.json"
#: Weight files of a Hugging Face folder that keras-hub cannot convert (named in the error).
HF_OTHER_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
TEXT_VOCAB_FILE = "text_vocab.txt"


def _announce(message: str) -> None:
    banner = "\n" + "!" * 78 + f"\n!! WARNING: {message}\n" + "!" * 78 + "\n"
    print(banner, file=sys.stderr, flush=True)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _write_vocabulary(tokens: Sequence[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")


def _hf_lowercase(
    directory: Path, vocabulary: list[str], requested: bool | None
) -> tuple[bool, str]:
    """do_lower_case from tokenizer_config.json; else `requested`; else whether the vocabulary has no capitals."""
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.is_file():
        value = json.loads(tokenizer_config.read_text()).get("do_lower_case")
        if value is not None:
            return bool(value), "tokenizer_config.json do_lower_case"
    if requested is not None:
        return bool(requested), "model.options.text_lowercase"
    cased = any(
        any(c.isupper() for c in token) for token in vocabulary if not token.startswith("[")
    )
    return (not cased), "inferred: the vocabulary has " + (
        "capitals (cased)" if cased else "no capitals (uncased)"
    )


def resolve_text_encoder(
    preset: str,
    *,
    train_reports: Sequence[str],
    fallback_bert: dict[str, Any],
    out_dir: str | Path,
    lowercase: bool | None = None,
) -> TextEncoderSpec:
    """Decides where the BERT and its vocabulary come from; writes the vocabulary to `out_dir`.

    `preset`: a local folder (Hugging Face: config.json with `model_type`,
    vocab.txt, model.safetensors; or a keras-hub preset folder), a keras-hub
    preset name (e.g. `bert_base_en_uncased`; needs it cached or the
    network), `none` (a random small BERT on purpose) or empty (no BioBERT
    configured: the random small BERT, announced loudly).
    """
    out_dir = Path(out_dir)
    vocabulary_file = out_dir / TEXT_VOCAB_FILE
    preset = str(preset or "").strip()
    if preset in ("", "none"):
        import keras_hub
        import tensorflow as tf

        size = int(fallback_bert.get("vocabulary_size", 4000))
        # A list would be read as file names; a dataset is read as the texts.
        texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(train_reports), tf.string))
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            texts, size, lowercase=True, reserved_tokens=list(BERT_SPECIAL_TOKENS)
        )
        _write_vocabulary(vocabulary, vocabulary_file)
        bert = {k: v for k, v in fallback_bert.items() if k != "vocabulary_size"}
        why = (
            "text_encoder_preset=none"
            if preset == "none"
            else "no text_encoder_preset (BioBERT folder) configured"
        )
        if preset == "":
            _announce(
                f"{why}: the text encoder is a SMALL RANDOMLY INITIALISED BERT (pretrained: false), frozen, with a "
                "WordPiece vocabulary computed from the train reports. The paper used BioBERT; set "
                "model.options.text_encoder_preset=/path/to/biobert (a Hugging Face folder)."
            )
        return TextEncoderSpec(
            kind="random",
            preset=preset,
            vocabulary_file=str(vocabulary_file),
            lowercase=True,
            max_sequence_length=int(bert["max_sequence_length"]),
            bert=bert,
            info={
                "text_encoder": "random BERT " + json.dumps(bert, sort_keys=True),
                "pretrained": False,
                "source": f"random init ({why}); WordPiece vocabulary of {len(vocabulary)} tokens computed from "
                f"{len(train_reports)} train reports (keras_hub.tokenizers.compute_word_piece_vocabulary, lowercase)",
            },
        )

    path = Path(preset).expanduser()
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"text_encoder_preset {path}: no config.json (expected a Hugging Face BERT folder)"
            )
        config = json.loads(config_file.read_text())
        # keras-hub tells the folder kinds apart by config.json alone:
        # `registered_name` is a saved keras-hub preset, `model_type` picks a
        # Hugging Face converter. A config.json with neither would fall
        # through to keras-hub's preset loader, whose error speaks of presets,
        # not of the key this file lacks.
        if "model_type" not in config and "registered_name" not in config:
            raise ValueError(
                f"text_encoder_preset {path}: config.json has no \"model_type\"; keras-hub reads a Hugging Face "
                f"folder through it, so a BERT folder needs \"model_type\": \"bert\" in {config_file} "
                "(older BERT checkpoints omit it; add the line)"
            )
        if "model_type" in config:  # Hugging Face transformers layout
            if config["model_type"] != "bert":
                raise ValueError(
                    f"text_encoder_preset {config_file}: model_type {config['model_type']!r}, expected 'bert'"
                )
            vocab_path = path / "vocab.txt"
            if not vocab_path.is_file():
                raise FileNotFoundError(f"text_encoder_preset {path}: no vocab.txt")
            if not any(
                (path / name).is_file()
                for name in ("model.safetensors", "model.safetensors.index.json")
            ):
                present = [name for name in HF_OTHER_WEIGHTS if (path / name).is_file()]
                has = f"it has {', '.join(present)}" if present else "it has no weights file"
                # dmis-lab/biobert-v1.1, the usual BioBERT on the hub, ships only pytorch_model.bin.
                raise FileNotFoundError(
                    f"text_encoder_preset {path}: no model.safetensors ({has}); keras-hub converts Hugging Face "
                    "weights from safetensors only. Either download a BioBERT that ships model.safetensors, "
                    "dmis-lab/biobert-base-cased-v1.2, or convert this checkpoint in place with transformers: "
                    f"python -c \"from transformers import AutoModel; AutoModel.from_pretrained('{path}')"
                    f".save_pretrained('{path}', safe_serialization=True)\""
                )
            vocabulary = vocab_path.read_text(encoding="utf-8").splitlines()
            lower, lower_source = _hf_lowercase(path, vocabulary, lowercase)
            _write_vocabulary(vocabulary, vocabulary_file)
            return TextEncoderSpec(
                kind="transformers",
                preset=str(path.resolve()),
                vocabulary_file=str(vocabulary_file),
                lowercase=lower,
                max_sequence_length=int(config.get("max_position_embeddings", 512)),
                info={
                    "text_encoder": f"BertBackbone from Hugging Face folder {path.resolve()}",
                    "pretrained": True,
                    "source": str(path.resolve()),
                    "lowercase": f"{lower} ({lower_source})",
                    "vocabulary_size": len(vocabulary),
                },
            )
    elif "/" in preset or preset.startswith("."):
        raise FileNotFoundError(f"text_encoder_preset {path}: no such directory")

    import keras_hub  # a keras-hub preset name or a saved keras-hub preset folder

    try:
        tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(preset)
        backbone_config = keras_hub.models.BertBackbone.from_preset(
            preset, load_weights=False
        ).get_config()
    except Exception as err:  # noqa: BLE001  (network, unknown preset)
        raise FileNotFoundError(
            f"cannot load keras-hub preset {preset!r} ({type(err).__name__}: {err}); pass a local Hugging Face "
            "BERT folder, or text_encoder_preset=none for a random BERT"
        ) from err
    vocabulary = list(tokenizer.get_vocabulary())
    _write_vocabulary(vocabulary, vocabulary_file)
    return TextEncoderSpec(
        kind="keras_hub",
        preset=preset,
        vocabulary_file=str(vocabulary_file),
        lowercase=bool(getattr(tokenizer, "lowercase", False)),
        max_sequence_length=int(backbone_config["max_sequence_length"]),
        info={
            "text_encoder": f"keras-hub preset {preset}",
            "pretrained": True,
            "source": preset,
            "vocabulary_size": len(vocabulary),
        },
    )


def build_text_backbone(spec: TextEncoderSpec):
    """The BertBackbone the spec names (random or loaded with its weights)."""
    import keras_hub

    if spec.kind == "random":
        vocabulary_size = len(Path(spec.vocabulary_file).read_text(encoding="utf-8").splitlines())
        return keras_hub.models.BertBackbone(
            vocabulary_size=vocabulary_size, name="bert_backbone", **spec.bert
        )
    return keras_hub.models.BertBackbone.from_preset(spec.preset, name="bert_backbone")


def make_tokenizer(spec: TextEncoderSpec):
    import keras_hub

    return keras_hub.tokenizers.BertTokenizer(
        vocabulary=spec.vocabulary_file, lowercase=spec.lowercase
    )


def tokenize_reports(
    tokenizer, texts: Sequence[str], sequence_length: int, batch_size: int = 512
) -> dict[str, np.ndarray]:
    """`[CLS] text [SEP]` token ids and padding masks, (n, sequence_length) int32 each.

    Uses keras-hub's `BertTextClassifierPreprocessor` (tokenizer + packer);
    longer reports are truncated.
    """
    import keras_hub

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
    token_ids, masks = [], []
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        packed = preprocessor(texts[start : start + batch_size])
        token_ids.append(np.asarray(packed["token_ids"], np.int32))
        masks.append(np.asarray(packed["padding_mask"], np.int32))
    if not texts:
        return {
            "token_ids": np.zeros((0, sequence_length), np.int32),
            "padding_mask": np.zeros((0, sequence_length), np.int32),
        }
    return {"token_ids": np.concatenate(token_ids), "padding_mask": np.concatenate(masks)}
