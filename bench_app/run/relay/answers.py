"""What a chat completion says, as the relay reads it: the answer and the reasoning apart, a streamed answer
assembled from its events, and an answer emptied (cut inside its thinking)."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Tuple

from bench_app.records.answers import RequestLine, split_reasoning, text_sha256


class StreamedAnswer:
    """A streamed chat completion assembled from its server-sent events, as they pass."""

    def __init__(self, started: float):
        self.started = started
        self.content: List[str] = []
        self.reasoning: List[str] = []
        self.finish_reason: Optional[str] = None
        self.usage: Optional[Dict[str, Any]] = None
        self.first_token_s: Optional[float] = None
        self.error: Optional[str] = None
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            text = line.decode(errors="replace").strip()
            if not text.startswith("data:") or text == "data: [DONE]":
                continue
            try:
                event = json.loads(text[5:])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            self.usage = event.get("usage") or self.usage
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                if self.first_token_s is None and (delta.get("content") or delta.get("reasoning_content")):
                    self.first_token_s = round(time.monotonic() - self.started, 3)
                self.content.append(delta.get("content") or "")
                self.reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
                self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def answer(self) -> Dict[str, Any]:
        assembled = {"content": "".join(self.content), "reasoning_content": "".join(self.reasoning)}
        answer: Dict[str, Any] = {
            "choices": [{"message": assembled, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }
        if self.error:
            answer["error"] = self.error
        return answer


def empty_answer(response: Dict[str, Any]) -> Dict[str, Any]:
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        message["content"] = ""
        for key in ("reasoning_content", "reasoning"):
            if key in message:
                message[key] = None
    return response


def server_error(answer: Dict[str, Any]) -> str:
    """The message of a server's error answer (vLLM: {"error": {"message": ...}} or {"message": ...})."""
    error = answer.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    text = " ".join(str(message or answer.get("message") or "no message").split())
    return text[:200] + ("..." if len(text) > 200 else "")


# Request keys that are not sampling settings (recorded apart or not at all).
_NOT_SETTINGS = {"messages", "model", "stream", "stream_options"}


def record_line(
    body: Dict[str, Any],
    status: int,
    response: Dict[str, Any],
    started: float,
    cached: bool = False,
    first_token_s: Optional[float] = None,
    key: Optional[str] = None,
    replica: Optional[int] = None,
    repeat: Optional[int] = None,
    reasoning_in_cache: bool = False,
) -> Tuple[str, bool]:
    """One chat completion's line of requests.jsonl, and whether it was cut in its thinking. key: the
    answer is in the request cache under it; reasoning_in_cache: that cache is the run's own and holds
    the reasoning's text (each answer stored once in the run folder); the line keeps its length and hash."""
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content = message.get("content") or ""
    answer, reasoning, ended = split_reasoning(
        content, message.get("reasoning_content") or message.get("reasoning") or ""
    )
    finish_reason = choice.get("finish_reason")
    cut = finish_reason == "length" and bool(reasoning) and not ended
    seconds = time.monotonic() - started
    stored = key is not None and reasoning_in_cache and bool(reasoning)
    optional = {"reasoning_sha256": text_sha256(reasoning), "cache_key": key} if stored else {}
    optional.update({"replica": replica} if replica is not None else {})
    optional.update({"repeat": repeat} if repeat is not None else {})
    line = RequestLine(
        messages=body.get("messages"),
        settings={k: v for k, v in body.items() if k not in _NOT_SETTINGS},
        status=status,
        finish_reason=finish_reason,
        answer=answer,
        reasoning=None if stored else reasoning,
        reasoning_chars=len(reasoning),
        cut_in_thinking=cut,
        usage=response.get("usage"),
        error=None if status == 200 else (response.get("error") or response.get("message")),
        # when it arrived (epoch s) and how long it took: throughput and concurrency per load level
        started_at=round(time.time() - seconds, 3),
        seconds=round(seconds, 3),
        first_token_s=first_token_s,
        cached=cached,
        **optional,
    )
    return json.dumps(line.to_dict(), ensure_ascii=False) + "\n", cut
