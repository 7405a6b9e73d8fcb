"""Paper 003 as proposed: findings -> structured description -> a report written by an LLM with ICIL and CoT.

He, "Multi-modal Radiology Report Generation Using Image Classification and
LLMs" (Research Plan 2): the structured descriptions "serve as inputs for
GPT-4", guided by in-context instruction learning and chain of thought.
`findings_report_template`'s classifier and data, with an LLM writer
(`medcap.reporting.llm_writers`) named by the environment:

    LLM_PRESET_DIR a keras-hub causal LM preset folder (Gemma, Llama, Mistral,
                   Phi-3, GPT-2, ...): the keras_hub writer, batched, greedy
    LLM_BASE_URL   otherwise, any OpenAI-compatible chat-completions endpoint:
                   https://api.openai.com/v1, or a local vLLM / Ollama /
                   llama.cpp server (http://127.0.0.1:8000/v1): the openai writer
    LLM_MODEL      the model name the endpoint serves (default gpt-4)
    OPENAI_API_KEY the key, when the endpoint needs one

Without either the run stops before training and says what to set.
Prompts (`prompts_test.jsonl`), the ICIL examples' source
(`descriptions_train.jsonl`) and every reply (`llm_cache/`) are written to
the workdir; a rerun sends only what is not cached. Table: none to
reproduce (the proposal reports no numbers); report.md scores it like the
template run, faithfulness included.
"""

from __future__ import annotations

from medcap.config import ExperimentConfig, load_sibling

LLM_CHOICES = (
    "Writer: with LLM_PRESET_DIR, keras-hub's CausalLM from that folder, greedy, 4 prompts a batch, 512 new "
    "tokens past the batch's longest prompt; else the openai chat-completions client, temperature 0, at most "
    "512 new tokens, 4 requests in flight, 60 s timeout, 4 retries with the client's back-off on 429/5xx/timeouts.",
    "Prompt: a radiologist instruction (state present findings, hedge uncertain ones, add nothing); ICIL = "
    "the 3 train studies nearest by findings-state vector (L1; ties by probability distance), each as its "
    "structured description and its report (our reading: the proposal does not define ICIL); CoT = reason "
    "per finding, then the report after a line starting 'REPORT:', the reasoning kept beside the report.",
    "Scoring: the LLM's prose is cleaned with the dataset's own cleaner (R2Gen's for IU X-ray) before it is "
    "compared with report_clean.",
)


def get_config(smoke: bool = False) -> ExperimentConfig:
    shared = load_sibling(__file__, "_paper003")
    config = shared.paper_config(
        name="findings_report_llm",
        table="findings -> report with an LLM writer, ICIL and CoT (no reference numbers: the proposal reports none)",
        writer_options={"writer": "llm", "icil": True, "icil_k": 3, "cot": True},
    )
    config.choices = tuple(config.choices) + LLM_CHOICES
    return shared.smoke_config(config) if smoke else config
