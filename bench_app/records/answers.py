"""An answer as the run folder keeps it: <dataset>/requests.jsonl's lines (RequestLine), and the reasoning and
the answer told apart in a chat completion (the request cache's rows are the server's own completions)."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Union

from bench_app.records.base import Record

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def text_sha256(text: str) -> str:
    """What a record keeps of a text stored elsewhere, to find it or check it again."""
    return hashlib.sha256(text.encode()).hexdigest()


def reasoning_of(response: Dict[str, Any]) -> str:
    """The reasoning of a stored chat completion, as the relay recorded it."""
    message = ((response.get("choices") or [{}])[0]).get("message") or {}
    content = message.get("content") or ""
    return split_reasoning(content, message.get("reasoning_content") or message.get("reasoning") or "")[1]


def split_reasoning(content: str, reasoning: str) -> Tuple[str, str, bool]:
    """(answer, reasoning, reasoning_ended): from a parser's separate field, or from <think> tags
    left in the answer. A reasoning that never closed is all reasoning and no answer."""
    if reasoning:
        return content, reasoning, bool(content) or THINK_CLOSE in content
    if THINK_CLOSE in content:
        before, _, after = content.rpartition(THINK_CLOSE)
        return after.strip(), before.replace(THINK_OPEN, "", 1).strip(), True
    if THINK_OPEN in content:
        before, _, after = content.partition(THINK_OPEN)
        return before.strip(), after.strip(), False
    return content, "", True


class TokenUsage(Record):
    """requests.jsonl usage: the server's token counts of one answer (OpenAI's `usage` object)."""

    # a server's own details (vLLM's prompt_tokens_details, another's cached tokens) are kept
    OPEN: ClassVar[bool] = True
    # numbers as the server sent them: a server's odd count is recorded, never lost with its answer
    prompt_tokens: Optional[Union[int, float]] = None
    completion_tokens: Optional[Union[int, float]] = None  # reasoning included
    total_tokens: Optional[Union[int, float]] = None
    completion_tokens_details: Optional[Dict[str, Any]] = None  # reasoning_tokens, where the server counts it


class RequestLine(Record):
    """One line of <dataset>/requests.jsonl: a request the relay passed and the answer it got."""

    messages: Optional[List[Dict[str, Any]]] = None  # the chat messages sent
    settings: Dict[str, Any] = {}  # the request's sampling settings (seed, max_tokens, temperature, ...)
    status: Optional[int] = None  # the server's HTTP status
    finish_reason: Optional[str] = None
    answer: Optional[str] = None  # the answer without its thinking
    # the thinking's text; null when the run's own request cache holds it (cache_key), the line its hash
    reasoning: Optional[str] = None
    reasoning_chars: Optional[int] = None
    reasoning_sha256: Optional[str] = None
    cache_key: Optional[str] = None
    cut_in_thinking: Optional[bool] = None  # the length limit came before the thinking ended
    usage: Optional[TokenUsage] = None  # the server's token counts
    error: Any = None  # the server's error (its message, or its error object)
    started_at: Optional[float] = None  # when it arrived (epoch s)
    seconds: Optional[float] = None  # how long it took
    first_token_s: Optional[float] = None  # streamed answers: time to the first token
    cached: Optional[bool] = None  # answered from the request cache, not by the server
    replica: Optional[int] = None  # which replica answered (execution.replicas > 1)
    repeat: Optional[int] = None  # which repeat of the question (benchmark.repeats > 1; its seed in settings)
