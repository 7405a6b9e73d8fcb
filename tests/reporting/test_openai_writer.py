"""The `openai` writer against a chat-completions server on 127.0.0.1, through the real `openai` client:
prompts (instruction, ICIL, CoT), parsing, retries, errors, timeouts, concurrency, the cache and a kill-and-rerun."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from chat_server import Reply, completion, echo

from medcap.reporting.description import describe
from medcap.reporting.llm_writers import LLMError, OpenAIWriter
from medcap.reporting.prompts import (
    MARKER,
    ExampleIndex,
    PromptSettings,
    build_messages,
    parse_reply,
    render_prompt,
)

NAMES = ("Cardiomegaly", "Edema", "Pneumothorax")
FAST = {"retry-after-ms": "5"}


def studies(n: int, seed: int = 0, prefix: str = "s"):
    rng = np.random.default_rng(seed)
    return [describe(f"{prefix}{i}", {name: float(rng.uniform()) for name in NAMES}, {name: 0.5 for name in NAMES}) for i in range(n)]


def train_index() -> ExampleIndex:
    train = studies(12, seed=9, prefix="t")
    return ExampleIndex(train, [f"reference report of {d.study_id}." for d in train])


def writer(server, tmp_path, **kwargs) -> OpenAIWriter:
    settings = kwargs.pop("settings", PromptSettings(icil=True, k=2, cot=True))
    args = {"timeout": 5.0, "max_retries": 2, "concurrency": 2, "progress": False}
    args.update(kwargs)
    return OpenAIWriter(base_url=server.base_url, model="test-model", settings=settings, cache_dir=str(tmp_path / "cache"), examples=train_index(), **args)


def test_prompts_carry_instruction_nearest_train_examples_and_the_marker(chat_server, tmp_path):
    descriptions = studies(4)
    written = writer(chat_server, tmp_path).write(descriptions)
    assert len(chat_server.requests) == 4
    body = chat_server.requests[0]["body"]
    assert chat_server.requests[0]["path"] == "/v1/chat/completions"
    assert body["model"] == "test-model" and body["temperature"] == 0.0 and body["max_tokens"] == 512
    sent = {tuple(m["content"] for m in r["body"]["messages"]) for r in chat_server.requests}
    for description, report in zip(descriptions, written):
        messages = report.extras["prompt"]
        assert tuple(m["content"] for m in messages) in sent
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
        assert MARKER in messages[0]["content"] and messages[-1]["content"] == description.to_text()
        assert messages[2]["content"].startswith(f"{MARKER} reference report of t")
        first = next(f for f in sorted(description.findings, key=lambda f: ("present uncertain absent".split().index(f.state), -f.probability)))
        assert report.report == f"There is {first.name.lower()}."
        assert report.extras["reasoning"] == f"Reasoning: {first.name} is the most probable finding."
    # The examples are the train studies nearest by state vector, then by probabilities.
    index = train_index()
    query = descriptions[0]
    chosen = index.nearest(query, 2)
    distances = [np.abs(index.states[i] - np.array([{"present": 1, "uncertain": 0.5, "absent": 0}[query.states()[n]] for n in NAMES])).sum() for i in range(12)]
    assert sorted(distances)[:2] == [distances[i] for i in chosen]


def test_icil_and_cot_switch_off():
    description = studies(1)[0]
    plain = build_messages(description, PromptSettings(icil=False, cot=False))
    assert [m["role"] for m in plain] == ["system", "user"] and MARKER not in plain[0]["content"]
    text = render_prompt(plain)
    assert text.startswith("Instruction:\n") and text.endswith("Report:\n")
    assert parse_reply("Lungs clear.\n**Report:** Heart normal.", cot=True) == ("Heart normal.", "Lungs clear.", False)
    assert parse_reply("Heart normal.", cot=True) == ("Heart normal.", "", True)
    assert parse_reply("thinking\nREPORT: a\nREPORT: b", cot=True)[0] == "b"
    with pytest.raises(ValueError, match="icil is on but no train examples"):
        build_messages(description, PromptSettings(icil=True))


def test_429_is_retried_after_the_servers_wait(chat_server, tmp_path):
    chat_server.script = lambda n, body: Reply(429, {"error": {"message": "slow down"}}, FAST) if n == 0 else echo(n, body)
    (report,) = writer(chat_server, tmp_path, concurrency=1).write(studies(1))
    assert len(chat_server.requests) == 2 and report.report.startswith("There is")


def test_5xx_exhausts_the_retries_with_an_error_naming_endpoint_and_status(chat_server, tmp_path):
    chat_server.script = lambda n, body: Reply(500, {"error": {"message": "boom"}}, FAST)
    with pytest.raises(LLMError, match=r"127\.0\.0\.1:\d+/v1 \(model test-model\): HTTP 500 from chat/completions: boom"):
        writer(chat_server, tmp_path, concurrency=1).write(studies(1))
    assert len(chat_server.requests) == 3  # the first try and max_retries=2


def test_4xx_fails_at_once(chat_server, tmp_path):
    chat_server.script = lambda n, body: Reply(401, {"error": {"message": "bad key"}})
    with pytest.raises(LLMError, match=r"HTTP 401 .*bad key; is \$OPENAI_API_KEY set\?"):
        writer(chat_server, tmp_path, concurrency=1).write(studies(1))
    assert len(chat_server.requests) == 1


def test_a_timeout_is_retried_and_a_persistent_one_reported(chat_server, tmp_path):
    chat_server.script = lambda n, body: Reply(body=completion("REPORT: late"), delay=1.5) if n == 0 else echo(n, body)
    (report,) = writer(chat_server, tmp_path, concurrency=1, timeout=0.4).write(studies(1))
    assert len(chat_server.requests) == 2 and report.report.startswith("There is")
    chat_server.script = lambda n, body: Reply(body=completion("REPORT: late"), delay=1.5)
    with pytest.raises(LLMError, match=r"no reply within 0.4 s, 1 retries"):
        writer(chat_server, tmp_path / "other", concurrency=1, timeout=0.4, max_retries=1).write(studies(1, seed=5))


@pytest.mark.parametrize(
    "body, message",
    [("this is not json", "malformed reply"), ({"choices": []}, "without choices"), (completion(None), "content is NoneType")],
)
def test_malformed_replies_are_errors(chat_server, tmp_path, body, message):
    chat_server.script = lambda n, request: Reply(200, body)
    with pytest.raises(LLMError, match=message):
        writer(chat_server, tmp_path, concurrency=1, max_retries=0).write(studies(1))


def test_concurrency_is_capped(chat_server, tmp_path):
    def slow(number, body):
        reply = echo(number, body)
        reply.delay = 0.3
        return reply

    chat_server.script = slow
    written = writer(chat_server, tmp_path, concurrency=3).write(studies(9))
    assert len(written) == 9 and chat_server.max_in_flight == 3


def test_a_killed_run_resumes_from_the_cache_and_sends_each_prompt_once(chat_server, tmp_path):
    descriptions = studies(6)
    reference = writer(chat_server, tmp_path / "reference", concurrency=1).write(descriptions)
    chat_server.requests.clear()

    # The first run dies on its fourth request (a 400), after three replies arrived.
    lock = threading.Lock()
    chat_server.script = lambda n, body: Reply(400, {"error": {"message": "stop"}}) if n == 3 else echo(n, body)
    first = writer(chat_server, tmp_path, concurrency=1)
    with pytest.raises(LLMError, match="HTTP 400"):
        first.write(descriptions)
    # Every reply that arrived is cached, the one in flight when the error came included.
    answered = [tuple(m["content"] for m in r["body"]["messages"]) for i, r in enumerate(chat_server.requests) if i != 3]
    assert len(first.cache) == len(answered) >= 3

    with lock:
        chat_server.requests.clear()
        chat_server.script = echo
    rerun = writer(chat_server, tmp_path, concurrency=1)
    written = rerun.write(descriptions)
    resent = [tuple(m["content"] for m in r["body"]["messages"]) for r in chat_server.requests]
    assert len(resent) == 6 - len(answered) and not set(resent) & set(answered)
    assert sum(w.extras["cached"] for w in written) == len(answered) and rerun.info()["sent"] == len(resent)
    assert [w.report for w in written] == [w.report for w in reference]
    # A third run sends nothing at all.
    chat_server.requests.clear()
    again = writer(chat_server, tmp_path, concurrency=1).write(descriptions)
    assert chat_server.requests == [] and all(w.extras["cached"] for w in again)
