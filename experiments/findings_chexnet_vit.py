"""Paper 004 on NIH ChestX-ray14 with a Vision Transformer: CheXNet's recipe, keras-hub's ViT-B/16.

Tahami and Puranik, "ImageMedix: Using CNN Insights to Improve Medical
Imaging", propose a transfer-learning CNN; paper 003's findings classifier,
built on this one, is "CNN or Vision Transformer". This file is
`findings_chexnet.py` with the image encoder swapped for keras-hub's
ImageNet-1k ViT-B/16 at 224 px (`medcap.models.vit_backbone`: its blocks
called one by one, so fine-tuning goes block by block and Grad-CAM reads
the patch-token map). Table: CheXNet's Table 1, as the reference column,
since neither proposal reports numbers.

Ours, beside `CHOICES`: two epochs training the head (Adam 1e-3), then the
last four transformer blocks (9-12) and the final layer norm fine-tuned at
3e-5, the learning-rate range ViT fine-tuning uses, ten times lower than
the CNN's, since a transformer's pretrained features drift faster; pixels
scaled to [-1, 1] as the ViT checkpoint expects. The paper preset needs the
keras-hub `vit_base_patch16_224_imagenet` preset directory on disk
(`medcap.models.vit_backbone.imagenet_preset_dir()`); without it the run
stops and says where to put it. The synthetic default trains the two-block
`tiny_vit` at 32 px, random, whose numbers say only that the pipeline runs.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

VIT_CHOICES = (
    "Model: keras-hub's ViT-B/16 (ImageNet-1k, 224 px, patch 16, 12 blocks, hidden 768), called block by "
    "block in one flat graph; the head averages the 196 patch tokens (ViT's 'gap' classifier) so Grad-CAM "
    "maps the 14 x 14 patch grid; the class token takes part in attention but not in the head.",
    "Transfer learning: head 2 epochs at 1e-3 with the ViT frozen, then transformer blocks 9-12 and the "
    "final layer norm at 3e-5; no batch normalisation to freeze (ViT uses layer norm).",
)


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper004")
    config = shared.paper_config(
        name="findings_chexnet_vit",
        dataset="chestxray14",
        variant="official",
        paper_results=shared.CHEXNET_AUROC,
        table="CheXNet Table 1 (reference; the proposals report no numbers)",
    )
    config.choices = tuple(config.choices) + VIT_CHOICES
    config.model.preset = "vit_b16"
    config.train.fine_tune_from = "transformer_block_9"
    config.train.fine_tune_learning_rate = 3e-5
    config.synthetic_overrides = tuple(
        "model.preset=tiny_vit" if o == "model.preset=tiny" else "data.image_size=[32,32]" if o.startswith("data.image_size") else o
        for o in config.synthetic_overrides
    ) + ("train.fine_tune_from=",)
    if smoke:
        config = shared.smoke_config(config)
        config.model.preset = "tiny_vit"
        config.train.fine_tune_from = "transformer_block_2"
    return config
