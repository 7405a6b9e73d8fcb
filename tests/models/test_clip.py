"""Paper 002's dual encoder: layers, loss, frozen BERT, HF folder loading, task, end to end."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from medcap.layers.projection import ResidualProjection
from medcap.layers.prompts import SoftPromptEmbedding
from medcap.layers.vision import (
    AdaptivePooling,
    MultiScaleDepthwiseBlock,
    SpatialAttention,
    SqueezeExcitation,
)
from medcap.models import clip_dual_encoder as clip
from medcap.models import clip_text_source as text_source
from medcap.testing import run_layer_test, run_model_saving_test

REPORTS = [
    "the heart is normal in size . no pleural effusion .",
    "there is a small left pleural effusion . heart size is normal .",
    "the lungs are clear . no pneumothorax .",
    "cardiomegaly . mild pulmonary edema .",
    "right lower lobe consolidation . no effusion .",
    "no acute cardiopulmonary abnormality .",
] * 4


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# ---------------------------------------------------------------------------
# Vision layers (section 3.3)


def test_multiscale_block_layer():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 5)).astype("float32")
    out = run_layer_test(
        MultiScaleDepthwiseBlock,
        {"filters": 4, "kernel_sizes": (3, 5), "activation": "relu"},
        x,
        (2, 6, 6, 8),
        expected_num_trainable_weights=6,  # 2 depthwise kernels, 2 pointwise kernels + biases
    )
    assert np.all(_np(out) >= 0)


def test_multiscale_block_paths_are_the_stated_convolutions():
    """Output = [PW(DW3(x)); PW(DW5(x))]: checked against tf.nn convolutions with the layer's weights."""
    x = np.random.default_rng(1).normal(size=(1, 7, 7, 3)).astype("float32")
    layer = MultiScaleDepthwiseBlock(2, activation=None)
    out = _np(layer(x))
    expected = []
    for depthwise, pointwise in zip(layer.depthwise, layer.pointwise):
        assert depthwise.kernel.shape[:2] == (depthwise.kernel_size[0],) * 2
        y = tf.nn.depthwise_conv2d(x, _np(depthwise.kernel), strides=[1, 1, 1, 1], padding="SAME")
        y = tf.nn.conv2d(y, _np(pointwise.kernel), strides=1, padding="SAME") + _np(pointwise.bias)
        expected.append(y.numpy())
    np.testing.assert_allclose(out, np.concatenate(expected, axis=-1), atol=1e-5)
    assert [layer.depthwise[0].kernel.shape[0], layer.depthwise[1].kernel.shape[0]] == [3, 5]


def test_squeeze_excitation_layer_and_values():
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 8)).astype("float32")
    run_layer_test(
        SqueezeExcitation, {"reduction": 4}, x, (2, 4, 4, 8), expected_num_trainable_weights=4
    )
    layer = SqueezeExcitation(4, return_weights=True)
    out, weights = layer(x)
    pooled = x.mean(axis=(1, 2))
    hidden = np.maximum(pooled @ _np(layer.squeeze.kernel) + _np(layer.squeeze.bias), 0)
    expected = 1 / (1 + np.exp(-(hidden @ _np(layer.excite.kernel) + _np(layer.excite.bias))))
    np.testing.assert_allclose(_np(weights), expected, atol=1e-6)
    np.testing.assert_allclose(_np(out), x * expected[:, None, None, :], atol=1e-6)


def test_paper_widths_give_the_stated_se_matrices():
    """Eq. 10: W1 in R^(256x64), W2 in R^(64x256) with r = 4, from d = 128 (2d = 256)."""
    d = clip.PRESETS["paper"]["multiscale_filters"]
    features = MultiScaleDepthwiseBlock(d)(np.zeros((1, 3, 3, 16), "float32"))
    layer = SqueezeExcitation(clip.PRESETS["paper"]["se_reduction"])
    layer(features)
    assert tuple(layer.squeeze.kernel.shape) == (256, 64)
    assert tuple(layer.excite.kernel.shape) == (64, 256)


def test_spatial_attention_layer_and_values():
    x = np.random.default_rng(3).normal(size=(2, 5, 5, 6)).astype("float32")
    out = run_layer_test(
        SpatialAttention, {"kernel_size": 7}, x, (2, 5, 5, 1), expected_num_trainable_weights=2
    )
    assert np.all((_np(out) > 0) & (_np(out) < 1))
    layer = SpatialAttention(kernel_size=1)  # a 1x1 conv: sigmoid(w0 * mean + w1 * max + b)
    out = _np(layer(x))
    w = _np(layer.conv.kernel).reshape(2)
    b = _np(layer.conv.bias)[0]
    logits = w[0] * x.mean(axis=-1) + w[1] * x.max(axis=-1) + b
    np.testing.assert_allclose(out[..., 0], 1 / (1 + np.exp(-logits)), atol=1e-6)
    layer7 = SpatialAttention(7)
    out7 = _np(layer7(x))
    descriptors = np.stack([x.mean(-1), x.max(-1)], axis=-1)
    reference = tf.nn.conv2d(descriptors, _np(layer7.conv.kernel), strides=1, padding="SAME") + _np(
        layer7.conv.bias
    )
    np.testing.assert_allclose(out7, tf.sigmoid(reference).numpy(), atol=1e-6)


def test_adaptive_pooling_layer_and_values():
    x = np.random.default_rng(4).normal(size=(3, 4, 5, 6)).astype("float32")
    run_layer_test(
        AdaptivePooling, {"initial_logit": 0.5}, x, (3, 6), expected_num_trainable_weights=1
    )
    layer = AdaptivePooling(initial_logit=1.3)
    out = _np(layer(x))
    w = 1 / (1 + math.exp(-1.3))
    np.testing.assert_allclose(
        out, w * x.mean(axis=(1, 2)) + (1 - w) * x.max(axis=(1, 2)), atol=1e-6
    )
    fresh = AdaptivePooling()
    fresh(x)
    assert float(_np(fresh.average_weight)) == pytest.approx(0.5)


# ---------------------------------------------------------------------------
# Text layers (section 3.2)


def test_soft_prompt_layer():
    x = np.random.default_rng(5).normal(size=(2, 7, 16)).astype("float32")
    run_layer_test(
        SoftPromptEmbedding,
        {"num_prompts": 3, "attention_dim": 4, "initializer_stddev": 0.02},
        x,
        ((2, 10, 16), (2, 10)),
        expected_num_trainable_weights=5,
        loss_fn=lambda outputs: tf.reduce_sum(tf.square(outputs[0])),
    )


def test_soft_prompts_are_prepended_and_alpha_starts_at_one():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "int32")
    layer = SoftPromptEmbedding(num_prompts=4, attention_dim=3)
    embeddings, out_mask = layer(x, mask)
    prompts = _np(layer.prompts)
    np.testing.assert_array_equal(_np(layer.alpha(x, mask)), np.ones((2, 4), "float32"))
    np.testing.assert_allclose(_np(embeddings)[:, :4], np.broadcast_to(prompts, (2, 4, 8)), atol=0)
    np.testing.assert_array_equal(_np(embeddings)[:, 4:], x)
    np.testing.assert_array_equal(
        _np(out_mask), np.concatenate([np.ones((2, 4), "int32"), mask], axis=1)
    )
    # Truncated normal, std 0.02: every value within two standard deviations.
    big = SoftPromptEmbedding(num_prompts=64, initializer_stddev=0.02)
    big(np.zeros((1, 2, 128), "float32"))
    values = _np(big.prompts)
    assert np.abs(values).max() <= 0.04 + 1e-7
    assert 0.01 < values.std() < 0.02


def test_alpha_matches_its_formula_and_ignores_padding():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], "int32")
    layer = SoftPromptEmbedding(num_prompts=3, attention_dim=5)
    layer(x, mask)
    layer.value_kernel.assign(rng.normal(size=(8,)).astype("float32"))
    layer.alpha_bias.assign(np.array([0.1, -0.2, 0.3], "float32"))
    alpha = _np(layer.alpha(x, mask))
    q = _np(layer.prompts) @ _np(layer.query_kernel)
    expected = np.zeros((2, 3))
    for b in range(2):
        valid = mask[b].astype(bool)
        k = x[b, valid] @ _np(layer.key_kernel)
        scores = q @ k.T / math.sqrt(5)
        attention = np.exp(scores - scores.max(1, keepdims=True))
        attention /= attention.sum(1, keepdims=True)
        v = x[b, valid] @ _np(layer.value_kernel)
        expected[b] = 2 / (1 + np.exp(-(attention @ v + _np(layer.alpha_bias))))
    np.testing.assert_allclose(alpha, expected, atol=1e-5)
    changed = x.copy()
    changed[0, 4:] = 100.0  # padded positions must not matter
    np.testing.assert_allclose(_np(layer.alpha(changed, mask))[0], alpha[0], atol=1e-6)
    embeddings, _ = layer(x, mask)
    np.testing.assert_allclose(
        _np(embeddings)[:, :3], alpha[:, :, None] * _np(layer.prompts)[None], atol=1e-6
    )


def test_residual_projection_layer_and_values():
    x = np.random.default_rng(8).normal(size=(4, 12)).astype("float32")
    run_layer_test(
        ResidualProjection,
        {"dropout": 0.1, "layer_norm_epsilon": 1e-6, "seed": 3},
        x,
        (4, 12),
        expected_num_trainable_weights=4,
    )
    layer = ResidualProjection(dropout=0.1)
    out = _np(layer(x, training=False))
    z = x @ _np(layer.dense.kernel) + _np(layer.dense.bias)
    h = 0.5 * z * (1 + erf(z / math.sqrt(2))) + x  # exact GELU + residual
    normed = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(
        out, normed * _np(layer.layer_norm.gamma) + _np(layer.layer_norm.beta), atol=1e-5
    )
    # Dropout acts on GELU(Wx+b)+x before the LayerNorm: in training some units are zeroed there.
    train_out = _np(layer(np.repeat(x, 50, 0), training=True))
    assert not np.allclose(train_out, np.repeat(out, 50, 0), atol=1e-4)


# ---------------------------------------------------------------------------
# Contrastive loss (eqs. 13-15)


def _numpy_contrastive(images, texts, temperature):
    a = images / np.linalg.norm(images, axis=1, keepdims=True)
    b = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    s = a @ b.T / temperature

    def log_softmax(m, axis):
        m = m - m.max(axis=axis, keepdims=True)
        return m - np.log(np.exp(m).sum(axis=axis, keepdims=True))

    n = len(s)
    return -(np.trace(log_softmax(s, 1)) + np.trace(log_softmax(s, 0))) / (2 * n), s


def test_contrastive_loss_matches_numpy_reference():
    rng = np.random.default_rng(9)
    images = rng.normal(size=(6, 5)).astype("float32")
    texts = (images + 0.7 * rng.normal(size=(6, 5))).astype("float32")
    logits_layer = clip.ContrastiveLogits(temperature=0.07)
    logits = logits_layer(images, texts)
    expected_loss, expected_logits = _numpy_contrastive(
        images.astype("float64"), texts.astype("float64"), 0.07
    )
    np.testing.assert_allclose(_np(logits), expected_logits, rtol=1e-5, atol=1e-4)
    loss = clip.ContrastiveLoss()(np.zeros(6), logits)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
    # Asymmetric logits: the two directions differ and both count.
    skew = np.arange(16, dtype="float32").reshape(4, 4) ** 1.5 / 10
    per_pair = _np(clip.symmetric_contrastive_loss(skew))
    row = skew - np.log(np.exp(skew).sum(1, keepdims=True))
    col = skew - np.log(np.exp(skew).sum(0, keepdims=True))
    np.testing.assert_allclose(per_pair, -(np.diag(row) + np.diag(col)) / 2, rtol=1e-5)
    accuracy = _np(clip.contrastive_accuracy(None, np.eye(4, dtype="float32") * 5))
    np.testing.assert_array_equal(accuracy, np.ones(4))


def test_temperature_is_learned_or_fixed():
    learned = clip.ContrastiveLogits(temperature=0.07, learn_temperature=True)
    fixed = clip.ContrastiveLogits(temperature=0.2, learn_temperature=False)
    x = np.eye(3, dtype="float32")
    learned(x, x)
    fixed(x, x)
    assert len(learned.trainable_weights) == 1 and not fixed.trainable_weights
    assert float(_np(learned.scale())) == pytest.approx(1 / 0.07, rel=1e-6)
    np.testing.assert_allclose(_np(fixed(x, x)), np.eye(3) / 0.2, rtol=1e-6)
    learned.logit_scale.assign(10.0)  # clipped at log(100), as CLIP
    assert float(_np(learned.scale())) == pytest.approx(100.0, rel=1e-5)


# ---------------------------------------------------------------------------
# Text encoder and the dual encoder


@pytest.fixture(scope="module")
def text_spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("text")
    return text_source.resolve_text_encoder(
        "none",
        train_reports=REPORTS,
        fallback_bert=clip.PRESETS["tiny"]["fallback_bert"],
        out_dir=out,
    )


@pytest.fixture(scope="module")
def tiny_model(text_spec):
    keras.utils.set_random_seed(0)
    model, info = clip.build_dual_encoder(
        "tiny",
        text_backbone=text_source.build_text_backbone(text_spec),
        image_size=(32, 32),
        encoder_weights="none",
    )
    return model, info


def _batch(text_spec, n=6, length=20):
    tokens = text_source.tokenize_reports(text_source.make_tokenizer(text_spec), REPORTS[:n], length)
    images = np.random.default_rng(10).normal(size=(n, 32, 32, 3)).astype("float32")
    return {"images": images, **tokens}


def test_random_text_encoder_spec_and_vocabulary(text_spec):
    assert text_spec.kind == "random" and text_spec.info["pretrained"] is False
    vocabulary = open(text_spec.vocabulary_file, encoding="utf-8").read().splitlines()
    assert vocabulary[:5] == list(text_source.BERT_SPECIAL_TOKENS)
    assert {"no", "effusion", "."} <= set(vocabulary)  # the train reports' most frequent words
    tokenizer = text_source.make_tokenizer(text_spec)
    tokens = text_source.tokenize_reports(tokenizer, ["the heart is normal .", "no effusion ."], 16)
    ids, mask = tokens["token_ids"], tokens["padding_mask"]
    assert ids.shape == (2, 16) and ids.dtype == np.int32
    assert (
        vocabulary.index("[UNK]") not in ids
    )  # every train word is spelled by the WordPiece vocabulary
    assert [vocabulary[i] for i in ids[1, :5]] == ["[CLS]", "no", "effusion", ".", "[SEP]"]
    np.testing.assert_array_equal(mask[1], [1] * 5 + [0] * 11)
    length = int(mask[0].sum())
    assert ids[0, 0] == vocabulary.index("[CLS]") and ids[0, length - 1] == vocabulary.index(
        "[SEP]"
    )
    assert tokenizer.detokenize(ids[0, 1 : length - 1]) == "the heart is normal ."


def test_bert_stages_called_separately_equal_the_backbone(text_spec):
    """Our graph calls BertBackbone's layers one by one: without prompts it must equal the backbone itself."""
    backbone = text_source.build_text_backbone(text_spec)
    encoder = clip.ClipTextEncoder(
        backbone, num_prompts=2, prompt_attention_dim=4, num_projection_layers=1, embedding_dim=8
    )
    tokens = text_source.tokenize_reports(text_source.make_tokenizer(text_spec), REPORTS[:3], 16)
    reference = backbone(
        {**tokens, "segment_ids": np.zeros_like(tokens["token_ids"])}, training=False
    )["sequence_output"]
    ours = encoder.bert_encode(
        backbone.token_embedding(tokens["token_ids"]), tokens["padding_mask"]
    )
    valid = tokens["padding_mask"].astype(bool)
    np.testing.assert_allclose(_np(ours)[valid], _np(reference)[valid], atol=1e-5)


def test_text_encoder_trains_only_prompts_alpha_and_projections(tiny_model):
    model, _ = tiny_model
    text = model.text_encoder
    trainable = {w.path.split("/")[0] for w in text.trainable_weights}
    assert trainable == {"soft_prompts", "residual_projection_0", "text_projection"}
    assert not text.backbone.trainable and not text.backbone.trainable_weights
    assert {w.path.split("/")[-1] for w in text.get_layer("soft_prompts").trainable_weights} == {
        "prompts",
        "query_kernel",
        "key_kernel",
        "value_kernel",
        "alpha_bias",
    }


def test_fit_step_changes_prompts_and_never_bert(tiny_model, text_spec):
    model, _ = tiny_model
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=clip.ContrastiveLoss(),
        metrics=[clip.contrastive_accuracy],
    )
    bert_before = [np.array(_np(w)) for w in model.text_encoder.backbone.weights]
    prompts_before = np.array(_np(model.text_encoder.soft_prompts.prompts))
    projection_before = np.array(_np(model.text_encoder.text_projection.kernel))
    vision_before = np.array(_np(model.vision_encoder.image_projection.kernel))
    batch = _batch(text_spec)
    history = model.fit(batch, np.zeros(6, "float32"), batch_size=6, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for before, weight in zip(bert_before, model.text_encoder.backbone.weights):
        np.testing.assert_array_equal(
            _np(weight), before, err_msg=f"frozen BERT weight {weight.path} changed"
        )
    assert not np.array_equal(_np(model.text_encoder.soft_prompts.prompts), prompts_before)
    assert not np.array_equal(_np(model.text_encoder.text_projection.kernel), projection_before)
    assert not np.array_equal(_np(model.vision_encoder.image_projection.kernel), vision_before)


def test_dual_encoder_saving_round_trip(tiny_model, text_spec, tmp_path):
    model, info = tiny_model
    assert info["output_layer"] == "pool2_relu" and info["pretrained"] is False
    restored = run_model_saving_test(model, _batch(text_spec, n=4), tmp_path, atol=1e-5)
    assert isinstance(restored.text_encoder, clip.ClipTextEncoder)
    assert not restored.text_encoder.backbone.trainable
    config = model.get_config()
    assert config["temperature"] == 0.07 and config["learn_temperature"] is True
    assert config["text_encoder"]["config"]["num_prompts"] == clip.PRESETS["tiny"]["num_prompts"]


def test_baseline_variant_is_densenet_plus_gap(text_spec):
    backbone, _ = clip.build_vision_backbone(
        "densenet121", "none", image_size=(32, 32), output_layer="pool2_relu"
    )
    encoder = clip.ClipVisionEncoder(backbone, variant="baseline", embedding_dim=8)
    names = {layer.name for layer in encoder.layers}
    assert "global_average_pooling" in names
    assert not names & {"multiscale", "channel_attention", "spatial_attention", "adaptive_pooling"}
    x = np.random.default_rng(11).normal(size=(2, 32, 32, 3)).astype("float32")
    pooled = _np(backbone(x, training=False)).mean(axis=(1, 2))
    expected = pooled @ _np(encoder.image_projection.kernel) + _np(encoder.image_projection.bias)
    np.testing.assert_allclose(_np(encoder(x, training=False)), expected, atol=1e-4)
    with pytest.raises(ValueError, match="variant"):
        clip.ClipVisionEncoder(backbone, variant="other")


def test_preset_overrides_are_checked():
    assert clip.preset_config("tiny", num_prompts=7)["num_prompts"] == 7
    assert (
        clip.preset_config("paper", fallback_bert={"num_layers": 1})["fallback_bert"]["hidden_dim"]
        == 256
    )
    with pytest.raises(ValueError, match="unknown option 'prompts'"):
        clip.preset_config("tiny", prompts=3)
    with pytest.raises(ValueError, match="unknown preset"):
        clip.preset_config("huge")


# ---------------------------------------------------------------------------
# A Hugging Face BERT folder through the text-encoder path


def _write_hf_bert(
    folder, *, vocabulary, hidden=8, layers=1, heads=2, intermediate=16, positions=40, seed=0
):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": len(vocabulary),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": positions,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")

    def w(*shape):
        return rng.normal(scale=0.1, size=shape).astype("float32")

    tensors = {
        "bert.embeddings.word_embeddings.weight": w(len(vocabulary), hidden),
        "bert.embeddings.position_embeddings.weight": w(positions, hidden),
        "bert.embeddings.token_type_embeddings.weight": w(2, hidden),
        "bert.embeddings.LayerNorm.weight": 1 + w(hidden),
        "bert.embeddings.LayerNorm.bias": w(hidden),
        "bert.pooler.dense.weight": w(hidden, hidden),
        "bert.pooler.dense.bias": w(hidden),
    }
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            tensors[p + f"attention.self.{name}.weight"] = w(hidden, hidden)
            tensors[p + f"attention.self.{name}.bias"] = w(hidden)
        tensors[p + "attention.output.dense.weight"] = w(hidden, hidden)
        tensors[p + "attention.output.dense.bias"] = w(hidden)
        tensors[p + "attention.output.LayerNorm.weight"] = 1 + w(hidden)
        tensors[p + "attention.output.LayerNorm.bias"] = w(hidden)
        tensors[p + "intermediate.dense.weight"] = w(intermediate, hidden)
        tensors[p + "intermediate.dense.bias"] = w(intermediate)
        tensors[p + "output.dense.weight"] = w(hidden, intermediate)
        tensors[p + "output.dense.bias"] = w(hidden)
        tensors[p + "output.LayerNorm.weight"] = 1 + w(hidden)
        tensors[p + "output.LayerNorm.bias"] = w(hidden)
    save_file(tensors, str(folder / "model.safetensors"))
    return tensors


def test_hugging_face_bert_folder_loads_through_the_text_encoder_path(tmp_path):
    vocabulary = [
        *text_source.BERT_SPECIAL_TOKENS,
        "the",
        "heart",
        "is",
        "normal",
        "no",
        "effusion",
        ".",
        "Heart",
        "##s",
    ]
    folder = tmp_path / "biobert"
    tensors = _write_hf_bert(folder, vocabulary=vocabulary)
    spec = text_source.resolve_text_encoder(
        str(folder), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path / "run"
    )
    assert spec.kind == "transformers" and spec.info["pretrained"] is True
    assert spec.max_sequence_length == 40
    assert spec.lowercase is False  # no tokenizer_config.json; the vocabulary has capitals -> cased
    backbone = text_source.build_text_backbone(spec)
    np.testing.assert_array_equal(
        _np(backbone.token_embedding.embeddings), tensors["bert.embeddings.word_embeddings.weight"]
    )
    np.testing.assert_array_equal(
        _np(backbone.position_embedding.position_embeddings),
        tensors["bert.embeddings.position_embeddings.weight"],
    )
    query = backbone.transformer_layers[0]._self_attention_layer.query_dense.kernel
    np.testing.assert_allclose(
        _np(query).reshape(8, 8),
        tensors["bert.encoder.layer.0.attention.self.query.weight"].T,
        atol=0,
    )
    tokenizer = text_source.make_tokenizer(spec)
    tokens = text_source.tokenize_reports(tokenizer, ["the heart is normal .", "no effusion ."], 12)
    assert [vocabulary[i] for i in tokens["token_ids"][0, :7]] == [
        "[CLS]",
        "the",
        "heart",
        "is",
        "normal",
        ".",
        "[SEP]",
    ]
    encoder = clip.ClipTextEncoder(
        backbone, num_prompts=3, prompt_attention_dim=4, num_projection_layers=2, embedding_dim=6
    )
    out = _np(encoder(tokens))
    assert out.shape == (2, 6) and np.isfinite(out).all()
    assert not backbone.trainable_weights

    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    lowered = text_source.resolve_text_encoder(
        str(folder), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path / "run2"
    )
    assert lowered.lowercase is True


def test_text_encoder_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        text_source.resolve_text_encoder(
            str(tmp_path / "missing"), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path
        )
    folder = tmp_path / "not_bert"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        text_source.resolve_text_encoder(
            str(folder), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path
        )
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "vocab.txt").write_text("[PAD]\n")
    convert = (
        "Either download a BioBERT that ships model.safetensors, dmis-lab/biobert-base-cased-v1.2, or convert "
        "this checkpoint in place with transformers: python -c \"from transformers import AutoModel; "
        f"AutoModel.from_pretrained('{folder}').save_pretrained('{folder}', safe_serialization=True)\""
    )
    with pytest.raises(FileNotFoundError) as info:
        text_source.resolve_text_encoder(
            str(folder), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path
        )
    assert str(info.value) == (
        f"text_encoder_preset {folder}: no model.safetensors (it has no weights file); keras-hub converts "
        f"Hugging Face weights from safetensors only. {convert}"
    )

    # dmis-lab/biobert-v1.1 as downloaded from the hub: config, vocabulary, pytorch_model.bin.
    biobert = tmp_path / "biobert-v1.1"
    _write_hf_bert(biobert, vocabulary=[*text_source.BERT_SPECIAL_TOKENS, "the"])
    (biobert / "model.safetensors").rename(biobert / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError) as info:
        text_source.resolve_text_encoder(
            str(biobert), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path
        )
    assert str(info.value) == (
        f"text_encoder_preset {biobert}: no model.safetensors (it has pytorch_model.bin); keras-hub converts "
        f"Hugging Face weights from safetensors only. {convert.replace(str(folder), str(biobert))}"
    )

    # A config.json without model_type is named as such, not as an unknown keras-hub preset.
    config = json.loads((biobert / "config.json").read_text())
    del config["model_type"]
    (biobert / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as info:
        text_source.resolve_text_encoder(
            str(biobert), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path
        )
    assert str(info.value) == (
        f'text_encoder_preset {biobert}: config.json has no "model_type"; keras-hub reads a Hugging Face folder '
        f'through it, so a BERT folder needs "model_type": "bert" in {biobert / "config.json"} '
        "(older BERT checkpoints omit it; add the line)"
    )

    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="expected 'bert'"):
        text_source.resolve_text_encoder(
            str(folder), train_reports=REPORTS, fallback_bert={}, out_dir=tmp_path
        )


# ---------------------------------------------------------------------------
# Task helpers, experiments, the combined report


def test_top1_retrieval_is_the_argmax_of_cosine_similarity():
    from medcap.models.clip_task import top1_retrieval

    rng = np.random.default_rng(12)
    queries, bank = (
        rng.normal(size=(7, 4)),
        rng.normal(size=(11, 4)) * rng.uniform(0.1, 5, size=(11, 1)),
    )
    index, similarity = top1_retrieval(queries, bank, block=3)
    for q in range(7):
        cosines = [queries[q] @ b / np.linalg.norm(queries[q]) / np.linalg.norm(b) for b in bank]
        assert index[q] == int(np.argmax(cosines))
        assert similarity[q] == pytest.approx(max(cosines), abs=1e-5)


def test_experiment_configs():
    from medcap.config import load_experiment

    proposed = load_experiment("clip_densenet")
    baseline = load_experiment("clip_densenet_baseline")
    assert proposed.model.name == baseline.model.name == "clip_dual_encoder"
    assert (
        proposed.model.options["variant"] == "proposed"
        and baseline.model.options["variant"] == "baseline"
    )
    assert proposed.paper_results == {
        "Bleu_1": 0.48,
        "Bleu_2": 0.31,
        "Bleu_3": 0.22,
        "Bleu_4": 0.18,
        "ROUGE_L": 0.37,
        "METEOR": 0.22,
    }
    assert baseline.paper_results["Bleu_1"] == 0.39 and baseline.paper_results["METEOR"] == 0.15
    assert proposed.data.variant == "random_721" and proposed.data.normalization == "imagenet_torch"
    # synthetic_overrides apply when no IU X-ray is configured:
    assert tuple(proposed.data.image_size) == (64, 64)
    assert proposed.model.options["backbone_bn_momentum"] == 0.9
    real = load_experiment("clip_densenet", overrides=["data.source_dir=/data/iu"])
    assert tuple(real.data.image_size) == (312, 312) and real.train.epochs == 50
    assert real.model.encoder_weights == "imagenet" and proposed.model.encoder_weights == "auto"
    assert "backbone_bn_momentum" not in real.model.options
    smoke = load_experiment("clip_densenet_baseline", smoke=True)
    assert (
        smoke.smoke
        and smoke.model.preset == "tiny"
        and smoke.model.options["text_encoder_preset"] == "none"
    )
    assert "nearest_train" in proposed.eval.baselines and proposed.choices


def test_task_rejects_bad_options():
    from medcap.config import ConfigError, load_experiment
    from medcap.registry import TASKS

    task_cls = TASKS.get("clip_dual_encoder")
    with pytest.raises(ConfigError, match="variant"):
        task_cls(
            load_experiment("clip_densenet", smoke=True, overrides=["model.options.variant=big"])
        )
    with pytest.raises(ConfigError, match="unknown option"):
        task_cls(
            load_experiment("clip_densenet", smoke=True, overrides=["model.options.num_prompt=3"])
        )


def test_combined_report_puts_ours_beside_tables_1_and_3(tmp_path):
    from medcap.models import clip_report

    def run(bleu1, synthetic=True):
        values = {k: bleu1 / (i + 1) for i, k in enumerate(clip_report.METRIC_KEYS)}
        values.update(
            {
                "retrieval/i2t/R@5": 0.5,
                "retrieval/chance/R@5": 0.1,
                "meta/synthetic_data": synthetic,
            }
        )
        values.update(
            {
                "baselines/random_train/Bleu_1": 0.2,
                "meta/weights": json.dumps({"vision": {"pretrained": True}}),
            }
        )
        return values

    for name, bleu1 in (("clip_densenet", 0.5), ("clip_densenet_baseline", 0.4)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(run(bleu1)))
    assert clip_report.main([str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "| paper: Show-Tell [20] | 0.24 | 0.13 | 0.10 | 0.07 | 0.30 | 0.15 |" in text
    assert "| paper: Wang et al. [24] | 0.45 | 0.30 | 0.21 | 0.15 | 0.38 | n/a |" in text  # "_" in the paper
    assert "| paper: Proposed method | 0.48 | 0.31 | 0.22 | 0.18 | 0.37 | 0.22 |" in text
    assert "| paper: DenseNet | 0.39 | 0.13 | 0.10 | 0.07 | 0.30 | 0.15 |" in text
    assert "| **ours: proposed (clip_densenet)** | 0.5000 | 0.2500 |" in text
    assert "| **ours: DenseNet (clip_densenet_baseline)** | 0.4000 |" in text
    assert "| ours: proposed − DenseNet | 0.1000 |" in text
    assert "Synthetic data" in text
    assert clip_report.main([str(tmp_path / "empty")]) == 2


# ---------------------------------------------------------------------------
# End to end on synthetic IU X-ray


@pytest.mark.slow
def test_end_to_end_on_synthetic_iu_xray(tmp_path):
    """The dual encoder trained on synthetic IU X-ray (`learning_runs.clip`)
    retrieves reports that state the drawn findings, and finds each test
    image's own report well above chance.

    Spread measured 2026-12-03 (2-core machine) with `python tests/measure_learning_spread.py --runs clip`
    over 20 runs: train seeds 42/1/2/3/4 x data seeds 0/1 x TF_ENABLE_ONEDNN_OPTS 1/0, reading the
    synthetic OpenI release (600 studies, 60 test) and feeding the encoder the original reports.
    Metric minus baseline, as mean [min, max], largest deviation from the mean:

    * truth/ce/micro_f1 - constant (a normal report, F1 0): 0.480 [0.363, 0.598], 0.118
      -> asserted >= 0.12 (mean - 0.12 = 3.1 deviations).
    * truth F1 - blind (mean of 100 random_train draws, about 0.20): 0.279 [0.155, 0.403], 0.124
      (2.2 deviations); - one random_train draw: 0.276 [0.069, 0.388], 0.207 (1.3).
    * i2t R@5 - chance (K / distinct test reports): 0.150 [0.033, 0.267], 0.117 (1.3); R@10 -
      chance: 0.256 [0.150, 0.383], 0.127 (2.0); BLEU-2 - random_train: 0.013 [-0.136, 0.071],
      0.149 (0.1). Below 3 deviations on 60 test pairs: shown in report.md, not asserted.
    """
    from compare_checks import assert_leaderboard_matches
    from learning_runs import clip

    from medcap.training import caption_images, fit

    workdir = tmp_path / "run"
    metrics = fit(clip(tmp_path), workdir)["metrics"]
    assert_leaderboard_matches(workdir, json.loads((workdir / "metrics.json").read_text()))
    n = metrics["meta/num_examples"]
    distinct = metrics["retrieval/num_distinct_reports"]
    assert 0 < distinct <= n and metrics["retrieval/chance/R@5"] == pytest.approx(5 / distinct)
    truth_f1 = metrics["truth/ce/micro_f1"]
    assert truth_f1 - metrics["baselines/constant/truth/ce/micro_f1"] >= 0.12, metrics
    report = (workdir / "report.md").read_text()
    assert f"| `truth/ce/micro_f1` | - | {truth_f1:.4f} |" in report
    assert "Data source: OpenI XML release (ecgen-radiology/, NLMCXR_png/): 600 studies, 1200 images" in report
    for name in (
        "report.md",
        "samples.md",
        "predictions_test.json",
        "retrieval_bank.npz",
        "text_vocab.txt",
    ):
        assert (workdir / name).is_file(), name
    predictions = json.loads((workdir / "predictions_test.json").read_text())
    bank = json.loads((workdir / "retrieval_bank.json").read_text())
    assert set(predictions[next(iter(predictions))]) <= set(bank["reports"])
    image = next((tmp_path / "data").rglob("0.png"))
    [output] = caption_images(workdir, [str(image)])
    assert output["text"] in bank["reports"] and -1.0 <= output["similarity"] <= 1.0


def test_sequence_length_covers_real_iu_xray_reports(tmp_path):
    """The paper preset's 128 word pieces (ours) hold at least 98% of real IU X-ray train reports whole."""
    from medcap.registry import DATASETS
    from medcap.testing import shared_path

    annotation = shared_path("data/iu_xray/annotation.json")
    splits = (
        DATASETS.get("iu_xray")
        .read(
            annotation.parent, variant="random_721", split_seed=0, options={"check_images": "none"}
        )
        .splits
    )
    reports = [e["report_clean"] for e in splits["train"]]
    spec = text_source.resolve_text_encoder(
        "none",
        train_reports=reports,
        fallback_bert=clip.PRESETS["paper"]["fallback_bert"],
        out_dir=tmp_path,
    )
    tokens = text_source.tokenize_reports(text_source.make_tokenizer(spec), reports, 512)
    lengths = tokens["padding_mask"].sum(axis=1)
    assert np.mean(lengths <= clip.PRESETS["paper"]["sequence_length"]) >= 0.98
    vocabulary = open(spec.vocabulary_file, encoding="utf-8").read().splitlines()
    assert vocabulary.index("[UNK]") not in tokens["token_ids"]


def test_embeddings_and_logits_are_float32_under_mixed_precision(text_spec):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        # keras-hub's contract: from_preset returns the model alone.
        model = clip.ClipDualEncoder.from_preset(
            "tiny",
            text_backbone=text_source.build_text_backbone(text_spec),
            image_size=(32, 32),
            encoder_weights="none",
        )
        assert isinstance(model, clip.ClipDualEncoder)
        batch = _batch(text_spec, n=4)
        assert model.text_encoder.backbone.compute_dtype == "bfloat16"
        image = model.vision_encoder(batch["images"])
        text = model.text_encoder({k: batch[k] for k in ("token_ids", "padding_mask")})
        logits = model(batch)
        assert image.dtype == text.dtype == logits.dtype == "float32"
        loss = clip.ContrastiveLoss()(np.zeros(4), logits)
        assert np.isfinite(float(loss))
    finally:
        keras.config.set_dtype_policy(previous)


def test_task_embeds_in_batches_with_a_progress_bar_and_captions_by_retrieval(tmp_path, capsys):
    from PIL import Image

    from medcap.config import load_experiment
    from medcap.registry import TASKS

    config = load_experiment(
        "clip_densenet",
        smoke=True,
        overrides=["model.options.embed_batch_size=4", "train.verbose=1"],
    )
    task = TASKS.get("clip_dual_encoder")(config)
    images = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((40, 40), 60 * i, np.uint8), mode="L").save(path)
        images.append(str(path))
    texts = [f"{REPORTS[i % 6]} study {i} ." for i in range(10)]  # distinct: no ties in retrieval
    train = [
        {"id": f"s{i}", "image": images[i % 3], "report": t, "report_clean": t}
        for i, t in enumerate(texts)
    ]
    task.prepare({"train": train}, tmp_path)
    model = task.build_model()
    capsys.readouterr()
    embeddings = task.embed_reports(model, [e["report_clean"] for e in train])
    assert "3/3" in capsys.readouterr().out  # 10 reports in batches of 4, with Keras' progress bar
    whole = model.text_encoder(task.tokenize([e["report_clean"] for e in train]), training=False)
    np.testing.assert_allclose(embeddings, _np(whole), atol=1e-5)

    task.save_bank(tmp_path, train, embeddings)
    outputs = task.caption(model, images[:2])
    image_embeddings = task.embed_images(model, images[:2])
    cosine = clip_normalised(image_embeddings) @ clip_normalised(embeddings).T
    for output, row in zip(outputs, cosine):
        best = int(np.argmax(row))
        assert (
            output["text"] == train[best]["report_clean"]
            and output["train_id"] == train[best]["id"]
        )
        assert output["similarity"] == pytest.approx(float(row[best]), abs=1e-5)


def clip_normalised(matrix):
    matrix = np.asarray(matrix, dtype=np.float64)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_the_text_encoder_reads_the_original_report_not_the_cleaned_one(tmp_path):
    """A cased BioBERT sees the report as written (whitespace-normalised):
    capitals and attached punctuation kept, not R2Gen's lower-cased "word ."."""
    from PIL import Image

    from medcap.config import load_experiment
    from medcap.models.clip_task import encoder_text
    from medcap.registry import TASKS

    vocabulary = [*text_source.BERT_SPECIAL_TOKENS, "Heart", "heart", "size", "is", "normal", "No", "no", "effusion", "."]
    folder = tmp_path / "biobert"
    _write_hf_bert(folder, vocabulary=vocabulary, positions=96)
    config = load_experiment(
        "clip_densenet", smoke=True, overrides=[f"model.options.text_encoder_preset={folder}"]
    )
    task = TASKS.get("clip_dual_encoder")(config)
    assert "report" in task.input_keys and "report_clean" in task.input_keys
    image = tmp_path / "0.png"
    Image.fromarray(np.zeros((40, 40), np.uint8), mode="L").save(image)
    study = {
        "id": "s0",
        "image": str(image),
        "report": "Heart size is normal.\n  No   effusion.",
        "report_clean": "heart size is normal . no effusion .",
    }
    assert encoder_text(study) == "Heart size is normal. No effusion."
    task.prepare({"train": [study]}, tmp_path / "run")
    assert task.text_spec.lowercase is False
    [row] = list(task._pair_table([study]).as_numpy_iterator())
    words = [vocabulary[i] for i, keep in zip(row["token_ids"], row["padding_mask"]) if keep]
    assert words == ["[CLS]", "Heart", "size", "is", "normal", ".", "No", "effusion", ".", "[SEP]"]


def test_the_paper_run_requires_imagenet_densenet_weights(tmp_path, monkeypatch):
    """Only the synthetic default may fall back to a random DenseNet121; the paper
    run stops with an error naming the file and where to put it."""
    from medcap.config import load_experiment
    from medcap.registry import TASKS
    from medcap.weights import WeightsError, cached_weights_path

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    config = load_experiment(
        "clip_densenet",
        overrides=["data.source_dir=/data/iu", "model.options.text_encoder_preset=none"],
    )
    task = TASKS.get("clip_dual_encoder")(config)
    task.prepare({"train": [{"id": "s0", "report": t, "report_clean": t} for t in REPORTS]}, tmp_path)
    with pytest.raises(WeightsError) as err:
        task.build_model()
    target = cached_weights_path("densenet121", include_top=False)
    assert f"put {target.name} into {target.parent}" in str(err.value)
