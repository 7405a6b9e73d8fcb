"""LLM report writers: the prompt of `medcap.reporting.prompts`, a reply cache, one model call per study.

`LLMWriter` does what every LLM writer shares: it builds each study's
messages (instruction, ICIL examples, CoT), looks the prompt up in the
`ResponseCache`, sends only the prompts without a cached reply (each reply
cached the moment it arrives), shows a done/total progress bar, and parses
the replies (`parse_reply`). Subclasses implement `_generate(pending)`.

* `openai` (`OpenAIWriter`): any OpenAI-compatible chat-completions
  endpoint through the `openai` client with `base_url` (GPT-4-class
  services, as the proposal plans; local vLLM, Ollama or llama.cpp
  servers), the model name, and the API key read from the environment
  variable `api_key_env` (default OPENAI_API_KEY; local servers need none).
  Timeouts and retries are the client's: it retries timeouts, connection
  errors, 408/409/429 and 5xx with exponential back-off and jitter,
  honouring the server's Retry-After, up to `max_retries` times. Any other
  status (400, 401, 404, ...) fails at once; every failure raises
  `LLMError` naming the endpoint, the model and the status. At most
  `concurrency` requests are in flight at once (a thread pool).
* `keras_hub` (`KerasHubWriter`): a keras-hub `CausalLM` loaded with
  `CausalLM.from_preset` from a local folder (a keras-hub preset as
  `save_to_preset` writes it or Kaggle ships it, or a Hugging Face
  transformers checkpoint keras-hub converts: Gemma, Llama, Mistral,
  Phi-3, GPT-2, ...), prompts rendered as plain text (`render_prompt`),
  generated `batch_size` at a time with the configured sampler (greedy,
  top-k, top-p, beam), the prompts sorted by length into batches, each
  batch generating to its longest prompt plus `max_tokens` tokens (keras-hub
  bounds a batch's total length); the prompt is stripped from the output. Its cache key names the folder with a digest of
  its config and weight files (and of the LoRA factors, when
  `lora_weights` names a `.lora.h5` file of `medcap.reporting.fine_tune`),
  so other weights never reuse a reply.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from medcap.reporting.cache import ResponseCache, cache_key
from medcap.reporting.description import StudyDescription
from medcap.reporting.prompts import (
    ExampleIndex,
    PromptSettings,
    build_messages,
    parse_reply,
    render_prompt,
)
from medcap.reporting.writers import WRITERS, ReportWriter, WrittenReport


class LLMError(RuntimeError):
    """An LLM call failed for good; the message names the endpoint or model and why."""


class LLMWriter(ReportWriter):
    """Shared prompt / cache / parse logic (module docstring)."""

    name = ""

    def __init__(
        self,
        *,
        model: str,
        settings: PromptSettings,
        cache_dir: str,
        examples: ExampleIndex | None = None,
        generation: dict[str, Any] | None = None,
        progress: bool = True,
    ):
        if settings.icil and examples is None:
            raise ValueError("icil is on: the writer needs the train studies' descriptions and reports")
        self.model = str(model)
        self.settings = settings
        self.examples = examples
        self.cache = ResponseCache(cache_dir)
        self.generation = dict(generation or {})
        self.progress = progress
        self.counts = {"sent": 0, "cached": 0, "marker_missing": 0}

    # -- subclasses ------------------------------------------------------------
    def _generate(self, pending: list[tuple[str, list[dict[str, str]]]], done) -> None:
        """Generates a reply for each (key, messages) and calls done(key, reply) as each arrives."""
        raise NotImplementedError(f"{type(self).__name__}._generate")

    # -- shared ----------------------------------------------------------------
    def prompt_of(self, description: StudyDescription) -> list[dict[str, str]]:
        return build_messages(description, self.settings, self.examples)

    def write(self, descriptions: Sequence[StudyDescription]) -> list[WrittenReport]:
        messages = [self.prompt_of(d) for d in descriptions]
        keys = [cache_key(self.name, self.model, m, self.generation) for m in messages]
        replies: dict[str, str] = {}
        pending: dict[str, list[dict[str, str]]] = {}
        for key, m in zip(keys, messages):
            cached = self.cache.get(key)
            if cached is not None:
                replies[key] = cached
            else:
                pending.setdefault(key, m)
        cached_count = len(set(keys) & set(replies))
        bar = _progress(total=len(set(keys)), initial=cached_count, desc=f"{self.name} writer", enabled=self.progress)

        def done(key: str, reply: str) -> None:
            self.cache.put(key, reply, writer=self.name, model=self.model)
            replies[key] = reply
            self.counts["sent"] += 1
            bar.update(1)

        try:
            if pending:
                self._generate(list(pending.items()), done)
        finally:
            bar.close()
        out = []
        for description, key, m in zip(descriptions, keys, messages):
            report, reasoning, missing = parse_reply(replies[key], cot=self.settings.cot)
            self.counts["marker_missing"] += int(missing)
            extras = {"reasoning": reasoning, "marker_missing": missing, "cache_key": key, "cached": key not in pending, "reply": replies[key], "prompt": m}
            out.append(WrittenReport(description.study_id, report, extras))
        self.counts["cached"] += sum(1 for k in keys if k not in pending)
        return out

    def info(self) -> dict[str, Any]:
        return {
            "writer": self.name,
            "model": self.model,
            "icil": self.settings.icil,
            "icil_k": self.settings.k if self.settings.icil else 0,
            "cot": self.settings.cot,
            "generation": self.generation,
            "cache": str(self.cache.directory),
            **self.counts,
        }


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(*, total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="report", file=sys.stderr, dynamic_ncols=True)


class OpenAIWriter(LLMWriter):
    """A chat-completions endpoint through the `openai` client (module docstring)."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        settings: PromptSettings,
        cache_dir: str,
        examples: ExampleIndex | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        concurrency: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 512,
        progress: bool = True,
    ):
        import openai

        if not base_url:
            raise ValueError("the openai writer needs a base_url (e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1)")
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency}: need at least 1")
        super().__init__(
            model=model,
            settings=settings,
            cache_dir=cache_dir,
            examples=examples,
            generation={"temperature": float(temperature), "max_tokens": int(max_tokens)},
            progress=progress,
        )
        self.base_url = str(base_url)
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        # Local servers ignore the key; a hosted one answers 401 without it, reported as such.
        key = os.environ.get(api_key_env) or "no-key-set"
        self.api_key_env = api_key_env
        self.client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=self.max_retries)

    def _one(self, messages: list[dict[str, str]]) -> str:
        import openai

        where = f"{self.base_url} (model {self.model})"
        try:
            response = self.client.chat.completions.create(model=self.model, messages=messages, **self.generation)
        except openai.APITimeoutError:
            raise LLMError(f"{where}: no reply within {self.timeout:g} s, {self.max_retries} retries") from None
        except openai.APIConnectionError as err:
            raise LLMError(f"{where}: cannot connect after {self.max_retries} retries ({err.__cause__ or err})") from None
        except openai.APIStatusError as err:
            hint = f"; is ${self.api_key_env} set?" if err.status_code in (401, 403) else ""
            detail = _short(re.sub(r"^Error code: \d+ - ", "", str(err.message)))
            raise LLMError(f"{where}: HTTP {err.status_code} from chat/completions: {detail}{hint}") from None
        except (openai.APIResponseValidationError, ValueError) as err:
            raise LLMError(f"{where}: a malformed reply ({_short(str(err))})") from None
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError) as err:
            raise LLMError(f"{where}: a reply without choices[0].message.content ({err})") from None
        if not isinstance(content, str):
            raise LLMError(f"{where}: a reply whose message content is {type(content).__name__}, not text")
        return content

    def _generate(self, pending, done) -> None:
        # On the first failure nothing new is sent, but replies already on their
        # way are still cached: a rerun then sends only what never came back.
        error: Exception | None = None
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._one, m): key for key, m in pending}
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    reply = future.result()
                except Exception as err:  # noqa: BLE001  (re-raised below, after the others land)
                    if error is None:
                        error = err
                        for other in futures:
                            other.cancel()
                    continue
                done(futures[future], reply)
        if error is not None:
            raise error

    def info(self) -> dict[str, Any]:
        return {**super().info(), "base_url": self.base_url, "concurrency": self.concurrency, "timeout_s": self.timeout, "max_retries": self.max_retries}


SAMPLERS = ("greedy", "top_k", "top_p", "beam")


class KerasHubWriter(LLMWriter):
    """A keras-hub `CausalLM` loaded from a local preset folder (module docstring)."""

    name = "keras_hub"

    def __init__(
        self,
        *,
        preset_dir: str,
        settings: PromptSettings,
        cache_dir: str,
        examples: ExampleIndex | None = None,
        sampler: str = "greedy",
        max_tokens: int = 256,
        batch_size: int = 4,
        temperature: float = 1.0,
        top_k: int = 10,
        top_p: float = 0.9,
        num_beams: int = 4,
        seed: int = 0,
        lora_weights: str = "",
        progress: bool = True,
    ):
        import keras_hub

        path = Path(preset_dir).expanduser()
        if not (path / "config.json").is_file():
            raise LLMError(
                f"{path}: not a keras-hub preset folder (no config.json). Give a folder written by "
                "CausalLM.save_to_preset, a downloaded Kaggle/Hugging Face keras-hub preset, or a Hugging Face "
                "transformers checkpoint keras-hub converts (Gemma, Llama, Mistral, Phi-3, GPT-2, ...)"
            )
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler={sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if batch_size < 1 or max_tokens < 1:
            raise ValueError(f"batch_size={batch_size}, max_tokens={max_tokens}: both must be at least 1")
        try:
            self.lm = keras_hub.models.CausalLM.from_preset(str(path))
        except Exception as err:  # noqa: BLE001  (keras-hub raises many types for a bad folder)
            raise LLMError(f"cannot load a keras-hub CausalLM from {path}: {type(err).__name__}: {err}") from None
        if lora_weights:
            if not Path(lora_weights).is_file():
                raise LLMError(f"LoRA weights {lora_weights} do not exist (fine-tune first: medcap.reporting.fine_tune)")
            from medcap.reporting.fine_tune import load_lora

            load_lora(self.lm.backbone, lora_weights)
        samplers = {
            "greedy": lambda: keras_hub.samplers.GreedySampler(temperature=temperature),
            "top_k": lambda: keras_hub.samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature),
            "top_p": lambda: keras_hub.samplers.TopPSampler(p=top_p, seed=seed, temperature=temperature),
            "beam": lambda: keras_hub.samplers.BeamSampler(num_beams=num_beams, temperature=temperature),
        }
        self.lm.compile(sampler=samplers[sampler]())
        generation = {"sampler": sampler, "max_new_tokens": int(max_tokens), "temperature": float(temperature)}
        generation.update({"top_k": {"top_k": top_k, "seed": seed}, "top_p": {"top_p": top_p, "seed": seed}, "beam": {"num_beams": num_beams}}.get(sampler, {}))
        identity = _preset_identity(path) + (f"+lora@{_file_digest(Path(lora_weights))}" if lora_weights else "")
        super().__init__(model=identity, settings=settings, cache_dir=cache_dir, examples=examples, generation=generation, progress=progress)
        self.preset_dir = str(path)
        self.lora_weights = str(lora_weights)
        self.batch_size = int(batch_size)
        self.max_tokens = int(max_tokens)
        self.generate_calls: list[int] = []

    def _prompt_tokens(self, text: str) -> int:
        import numpy as np

        return int(np.asarray(self.lm.preprocessor.tokenizer(text)).shape[-1]) + 2  # start and end tokens

    def _generate(self, pending, done) -> None:
        limit = getattr(self.lm.backbone, "max_sequence_length", None)
        # keras-hub bounds a batch's total length, so a short prompt beside a long one gets
        # more new tokens: batches of similar lengths keep that small.
        texts = {key: render_prompt(m) for key, m in pending}
        lengths = {key: self._prompt_tokens(text) for key, text in texts.items()}
        ordered = sorted(texts, key=lambda key: lengths[key])
        for start in range(0, len(ordered), self.batch_size):
            chunk = ordered[start : start + self.batch_size]
            prompts = [texts[key] for key in chunk]
            longest = max(lengths[key] for key in chunk)
            max_length = longest + self.max_tokens
            if limit is not None and longest >= int(limit):
                raise LLMError(f"{self.preset_dir}: a prompt of {longest} tokens does not fit the model's {limit}; lower icil_k or turn icil off")
            if limit is not None:
                max_length = min(max_length, int(limit))
            self.generate_calls.append({"prompts": len(prompts), "max_length": max_length, "longest_prompt": longest})
            replies = self.lm.generate(prompts, max_length=max_length, strip_prompt=True)
            for key, reply in zip(chunk, replies):
                done(key, str(reply))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "preset_dir": self.preset_dir, "lora_weights": self.lora_weights, "batch_size": self.batch_size}


def _preset_identity(path: Path) -> str:
    """The preset's name plus a digest of its config and weight files (names and sizes), for cache keys."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.h5")) + sorted(path.glob("*.safetensors")) + sorted(path.glob("*.weights.json")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"{path.name}@{digest.hexdigest()[:16]}"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


WRITERS.register("openai", OpenAIWriter)
WRITERS.register("keras_hub", KerasHubWriter)
