"""Paper 003's fine-tuning plan: the report-writing LLM fine-tuned on the train split with LoRA.

He, "Multi-modal Radiology Report Generation Using Image Classification and
LLMs" (Research Plan 4: "Fine-tuning will be conducted with domain-specific
datasets"). `findings_report_llm` with the keras_hub writer, whose model is
first fine-tuned on the train studies (their structured descriptions from
the trained classifier -> their reports) with LoRA
(`medcap.reporting.fine_tune`), then writes the test reports. The model is
the keras-hub causal LM preset folder named by LLM_PRESET_DIR (Gemma,
Llama, Mistral, Phi-3, GPT-2, ...); without it the run stops before
training and says so. Table: none to reproduce (the proposal reports no
numbers); report.md scores it like the other writers, and the ablation
(`make reproduce-findings-report-ablation`) gives it its own row.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

FINE_TUNE_CHOICES = (
    "Fine-tuning: LoRA rank 8 on keras-hub's default targets (attention query and value), biases frozen, "
    "1 epoch over the train pairs, Adam 1e-4, batch 4, sequences of 1,024 tokens; the loss is on the report "
    "tokens only. The fine-tuned model is prompted without ICIL examples and without CoT: it learned the "
    "mapping, and its train reports have no reasoning to imitate.",
)


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper003")
    config = shared.paper_config(
        name="findings_report_llm_finetuned",
        table="findings -> report with a LoRA-fine-tuned keras-hub LLM (no reference numbers: the proposal reports none)",
        writer_options={"writer": "keras_hub", "icil": False, "cot": False, "fine_tune_llm": True, "lora_rank": 8, "lora_epochs": 1},
    )
    config.choices = tuple(config.choices) + FINE_TUNE_CHOICES
    return shared.smoke_config(config) if smoke else config
