"""Paper 003's system as a task: paper 004's findings classifier, then a report writer.

He, "Multi-modal Radiology Report Generation Using Image Classification and
LLMs": a CNN or ViT classifies findings (stage 1), the findings become
structured descriptions (stage 2, `medcap.reporting.description`), and a
writer turns those into the report (stage 3, `medcap.reporting.writers`).

The trainer trains the classifier exactly as `findings_classifier` does
(its presets, phases and losses; this task is that task plus a writer), so
every option of that task applies. Added here (`model.options`):

* `writer`: `template` (default; `medcap.reporting.writers`), `openai` or
  `keras_hub` (`medcap.reporting.llm_writers`), or `llm`: `keras_hub` when
  $LLM_PRESET_DIR is set, else `openai` when $LLM_BASE_URL is, else an
  error saying what to set;
* `icil`, `icil_k`, `cot`: the LLM prompt (`medcap.reporting.prompts`);
  `llm_*`, `temperature`, `max_new_tokens`, `sampler`, `top_k`, `top_p`:
  the LLM writers' endpoint, model and generation;
* `certainty_edges` / `certainty_words`: the probability bands of the
  graded certainty (ChatCAD's by default);
* `uncertain_below`: a decided finding below this probability is stated as
  uncertain (default 0: every decided finding is stated as present, see
  `medcap.reporting.description`);
* `explain_method`: the saliency method whose peak gives each decided
  finding's location (default `gradcam`; `none` leaves locations out);
* `fine_tune_llm` (with the keras_hub writer), `lora_*`: LoRA fine-tuning
  of the writer's model on the train split first (`medcap.reporting.fine_tune`);
* `section_normals`, `min_count`: the template writer's section normal
  sentences and the least support of a bank sentence.

`prepare` also learns the sentence bank from the train split's
`report_clean`; `evaluate` is `medcap.models.findings_to_report.evaluate_run`;
`caption` (and `medcap report`) describes each image and writes its report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medcap.config import ConfigError
from medcap.models.findings_task import TASK_OPTIONS, FindingsTask
from medcap.registry import TASKS
from medcap.reporting import llm_writers  # noqa: F401  (registers the LLM writers)
from medcap.reporting.description import CHATCAD_EDGES, CHATCAD_WORDS, CertaintyBands
from medcap.reporting.prompts import ExampleIndex, PromptSettings
from medcap.reporting.sentence_bank import SentenceBank
from medcap.reporting.writers import WRITERS

REPORT_OPTIONS: dict[str, Any] = {
    "writer": "template",
    "certainty_edges": list(CHATCAD_EDGES),
    "certainty_words": list(CHATCAD_WORDS),
    "uncertain_below": 0.0,
    "explain_method": "gradcam",
    "section_normals": True,
    "min_count": 2,
    # LLM writers (medcap.reporting.llm_writers); empty base_url / model: $LLM_BASE_URL / $LLM_MODEL.
    "icil": True,
    "icil_k": 3,
    "cot": True,
    "llm_base_url": "",
    "llm_model": "",
    "api_key_env": "OPENAI_API_KEY",
    "llm_timeout": 60.0,
    "llm_max_retries": 4,
    "llm_concurrency": 4,
    "temperature": 0.0,
    "max_new_tokens": 512,
    "llm_cache": "",
    # The keras_hub writer; an empty preset dir: $LLM_PRESET_DIR.
    "llm_preset_dir": "",
    "sampler": "greedy",
    "top_k": 10,
    "top_p": 0.9,
    "llm_batch_size": 4,
    # Fine-tuning the keras_hub writer's model on the train split with LoRA (medcap.reporting.fine_tune).
    "fine_tune_llm": False,
    "lora_rank": 8,
    "lora_epochs": 1,
    "lora_learning_rate": 1e-4,
    "lora_batch_size": 4,
    "lora_sequence_length": 1024,
}
#: The model name the openai writer asks for when neither the option nor $LLM_MODEL names one.
DEFAULT_LLM_MODEL = "gpt-4"


class FindingsToReportTask(FindingsTask):
    """The findings classifier plus a report writer (module docstring)."""

    task_options = {**TASK_OPTIONS, **REPORT_OPTIONS}

    def __init__(self, config):
        super().__init__(config)
        from medcap.explanations.methods import METHODS

        writer = self.options["writer"]
        if writer == "llm":
            # The experiment leaves the choice to the environment: a local preset wins over an endpoint.
            writer = "keras_hub" if self.llm_preset_dir() else "openai" if self.llm_base_url() else ""
            if not writer:
                raise ConfigError(
                    "an LLM writer needs a model: set LLM_PRESET_DIR (a keras-hub causal LM preset folder: Gemma, "
                    "Llama, Mistral, Phi-3, GPT-2, ...) or LLM_BASE_URL (an OpenAI-compatible endpoint, e.g. "
                    "https://api.openai.com/v1 or a local vLLM / Ollama server's http://127.0.0.1:8000/v1) and LLM_MODEL"
                )
            self.options["writer"] = writer
        if writer not in WRITERS.names():
            raise ConfigError(f"model.options.writer={writer!r}: expected one of llm, {', '.join(WRITERS.names())}")
        try:
            CertaintyBands(tuple(self.options["certainty_edges"]), tuple(self.options["certainty_words"]))
        except ValueError as err:
            raise ConfigError(f"model.options: {err}") from None
        if not 0.0 <= float(self.options["uncertain_below"]) <= 1.0:
            raise ConfigError(f"model.options.uncertain_below={self.options['uncertain_below']!r}: expected a probability in [0, 1]")
        if self.options["explain_method"] not in (*METHODS, "none"):
            raise ConfigError(f"model.options.explain_method={self.options['explain_method']!r}: expected one of {', '.join(METHODS)}, none")
        if self.options["fine_tune_llm"] and writer != "keras_hub":
            raise ConfigError(f"model.options.fine_tune_llm needs the keras_hub writer (a local model to train), not {writer!r}")
        if writer == "keras_hub" and not self.llm_preset_dir():
            raise ConfigError("the keras_hub writer needs a preset folder: set LLM_PRESET_DIR or model.options.llm_preset_dir")
        if writer == "openai" and not self.llm_base_url():
            raise ConfigError(
                "the openai writer needs an endpoint: set LLM_BASE_URL (e.g. https://api.openai.com/v1, or a local "
                "vLLM / Ollama / llama.cpp server's http://127.0.0.1:8000/v1) and LLM_MODEL, or model.options.llm_base_url"
            )
        try:
            self.prompt_settings()
        except ValueError as err:
            raise ConfigError(f"model.options: {err}") from None
        self.bank: SentenceBank | None = None
        #: The train studies' descriptions and reports the ICIL examples come from (set by evaluate or restore).
        self.examples: ExampleIndex | None = None
        #: LoRA factors of the fine-tuned writer model (set by evaluate or restore).
        self.lora_weights = ""

    def prepare(self, splits, workdir: Path) -> None:
        from medcap.models.findings_to_report import BANK_FILE

        super().prepare(splits, workdir)
        missing = [e["id"] for e in splits["train"] if not str(e.get("report_clean", "")).strip()]
        if missing:
            raise ConfigError(f"{len(missing)} train studies have no report text (first: {missing[0]}); the sentence bank needs every train report")
        self.bank = SentenceBank.learn((e["report_clean"] for e in splits["train"]), self.label_names, min_count=int(self.options["min_count"]))
        self.bank.save(Path(workdir) / BANK_FILE)

    def restore(self, workdir: Path) -> None:
        from medcap.models.findings_to_report import BANK_FILE

        super().restore(workdir)
        path = Path(workdir) / BANK_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{workdir}: no {BANK_FILE} (was training started?)")
        self.bank = SentenceBank.load(path)
        from medcap.models.findings_to_report import load_examples

        self.examples = load_examples(Path(workdir))
        from medcap.models.findings_to_report import LORA_DIR
        from medcap.reporting.fine_tune import LORA_FILE

        lora = Path(workdir) / LORA_DIR / LORA_FILE
        self.lora_weights = str(lora) if self.options["fine_tune_llm"] and lora.is_file() else ""

    def llm_base_url(self) -> str:
        return str(self.options["llm_base_url"] or os.environ.get("LLM_BASE_URL", ""))

    def llm_preset_dir(self) -> str:
        return str(self.options["llm_preset_dir"] or os.environ.get("LLM_PRESET_DIR", ""))

    def llm_model(self) -> str:
        return str(self.options["llm_model"] or os.environ.get("LLM_MODEL", "") or DEFAULT_LLM_MODEL)

    def prompt_settings(self) -> PromptSettings:
        return PromptSettings(icil=bool(self.options["icil"]), k=int(self.options["icil_k"]), cot=bool(self.options["cot"]))

    @property
    def uses_examples(self) -> bool:
        """Whether the writer needs the train studies' descriptions: ICIL examples or fine-tuning pairs."""
        return self.options["writer"] != "template" and (bool(self.options["icil"]) or bool(self.options["fine_tune_llm"]))

    def writer(self, *, progress: bool = True):
        name = self.options["writer"]
        if name == "template":
            if self.bank is None:
                raise RuntimeError("the sentence bank is learned in prepare() or loaded in restore() first")
            return WRITERS.get(name)(self.bank, section_normals=bool(self.options["section_normals"]))
        if self.uses_examples and self.examples is None:
            raise RuntimeError("ICIL needs the train descriptions: evaluate the run first (they are saved in the workdir)")
        cache = self.options["llm_cache"] or str(Path(self.workdir or ".") / "llm_cache")
        o = self.options
        if name == "keras_hub":
            return WRITERS.get(name)(
                preset_dir=self.llm_preset_dir(),
                settings=self.prompt_settings(),
                cache_dir=cache,
                examples=self.examples if o["icil"] else None,
                sampler=str(o["sampler"]),
                max_tokens=int(o["max_new_tokens"]),
                batch_size=int(o["llm_batch_size"]),
                temperature=float(o["temperature"]) or 1.0,
                top_k=int(o["top_k"]),
                top_p=float(o["top_p"]),
                seed=self.config.train.seed,
                lora_weights=self.lora_weights,
                progress=progress,
            )
        return WRITERS.get(name)(
            base_url=self.llm_base_url(),
            model=self.llm_model(),
            settings=self.prompt_settings(),
            cache_dir=cache,
            examples=self.examples if o["icil"] else None,
            api_key_env=str(o["api_key_env"]),
            timeout=float(o["llm_timeout"]),
            max_retries=int(o["llm_max_retries"]),
            concurrency=int(o["llm_concurrency"]),
            temperature=float(o["temperature"]),
            max_tokens=int(o["max_new_tokens"]),
            progress=progress,
        )

    def evaluate(self, model, splits, split, workdir):
        from medcap.models.findings_to_report import evaluate_run

        return evaluate_run(self, model, splits, split, Path(workdir))

    def caption(self, model, image_paths: list[str]) -> list[dict[str, Any]]:
        """Per image: the structured description (JSON and text) and the written report."""
        import numpy as np

        from medcap.models.findings_report import load_thresholds
        from medcap.models.findings_to_report import describe_studies, load_images

        images = load_images(self, image_paths)
        probabilities = np.asarray(model.predict(images, verbose=0), dtype=np.float64)
        ids = [Path(p).stem for p in image_paths]
        descriptions = describe_studies(self, model, ids, list(image_paths), probabilities, load_thresholds(self), images=images)
        writer = self.writer(progress=False)
        written = writer.write(descriptions)
        return [
            {
                "text": w.report,
                "report": w.report,
                "description": d.to_dict(),
                "description_text": d.to_text(),
                "findings": [f.name for f in d.findings if f.decision],
                "writer": json.dumps(writer.info()),
            }
            for d, w in zip(descriptions, written)
        ]


TASKS.register("findings_to_report", FindingsToReportTask)
