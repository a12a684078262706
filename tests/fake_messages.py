"""A fake Anthropic Messages API on loopback, for the real Claude Code to talk to.

Claude Code (``ANTHROPIC_BASE_URL`` pointed here, ``CLAUDE_CODE_OAUTH_TOKEN`` set)
sends ``POST /v1/messages?beta=true`` with ``stream: true``; the fake answers a short
``text/event-stream`` turn and, like the real server for a subscriber, the
``anthropic-ratelimit-unified-*`` headers Claude Code turns into its statusLine's
``rate_limits`` (FIELD-NOTES "Claude Code itself, in tests"). The account's numbers
climb by ``step`` per answered request, a window starts again at its reset, and until
``reject_until`` it answers 429 with the real error body (as at the wall). Every request
is recorded, with the time it arrived, so a test can count what reached the "server"
while agents were held.

A prompt containing :data:`WORK` makes the answer a tool call (``Read`` of a file in the
session's directory, allowed without a permission prompt) until the conversation holds
``tool_turns`` tool results: an agent that keeps working, with a hook boundary (PreToolUse,
PostToolUse) before every further request.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.upstream import FakeUpstream, Reply, Seen

MESSAGES = "/v1/messages"
_CWD = re.compile(r"Primary working directory: ([^\\\s\"]+)")
#: A prompt containing this keeps the agent busy with tool calls (see the module doc).
WORK = "keep working"
READ_ME = "notes.txt"


@dataclass
class Window:
    """One rate-limit window as the server counts it: a 0-1 fraction and its reset."""

    fraction: float
    resets_at: float  # epoch seconds


@dataclass
class Account:
    """The one account every agent shares: its windows and how each answer moves them."""

    five_hour: Window
    seven_day: Window
    step: float = 0.0  # added to the 5-hour fraction after each answered request
    reject_until: float = 0.0  # answer 429 rate_limit_error until this epoch second
    #: refused requests wait until this many have arrived (30 s at most), so every agent
    #: meets the wall before any client learns of it from a 429's headers (its statusLine
    #: would store 100 %, and the gate would then hold the agents still typing)
    reject_together: int = 0
    tool_turns: int = 0  # tool calls a WORK prompt gets before its final answer
    #: input tokens each answer reports, by the session's directory name (default 12):
    #: agents that cost different amounts
    input_tokens: dict[str, int] = field(default_factory=dict)

    @classmethod
    def near(cls, five_hour: float = 0.42, seven_day: float = 0.2, **kw: Any) -> Account:
        """An account whose windows reset in 3 hours and 5 days from now."""
        now = time.time()
        return cls(Window(five_hour, now + 3 * 3600), Window(seven_day, now + 5 * 86400), **kw)

    def roll(self, now: float) -> None:
        """A window whose reset has come starts again from zero, as the server's does."""
        for window, length in ((self.five_hour, 5 * 3600), (self.seven_day, 7 * 86400)):
            if now >= window.resets_at:
                window.fraction, window.resets_at = 0.0, now + length

    def headers(self, status: str) -> dict[str, str]:
        return {
            "anthropic-ratelimit-unified-status": status,
            "anthropic-ratelimit-unified-5h-utilization": f"{self.five_hour.fraction:.4f}",
            "anthropic-ratelimit-unified-5h-reset": str(int(self.five_hour.resets_at)),
            "anthropic-ratelimit-unified-7d-utilization": f"{self.seven_day.fraction:.4f}",
            "anthropic-ratelimit-unified-7d-reset": str(int(self.seven_day.resets_at)),
        }


def _event(name: str, body: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(body)}\n\n"


def stream(model: str, block: dict[str, Any], stop_reason: str, input_tokens: int = 12) -> bytes:
    """One assistant turn as the server streams it: a text block or a tool call."""
    start = {
        "type": "message_start",
        "message": {
            "id": f"msg_fake{time.monotonic_ns()}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        },
    }
    if block["type"] == "text":
        opening: dict[str, Any] = {"type": "text", "text": ""}
        delta: dict[str, Any] = {"type": "text_delta", "text": block["text"]}
    else:
        opening = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    events = [
        _event("message_start", start),
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": opening},
        ),
        _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return "".join(events).encode()


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
    return []


def _tool_results(messages: list[Any]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    )


@dataclass
class Turn:
    """A recorded ``/v1/messages`` request: when it arrived and what it asked."""

    at: float  # time.time()
    prompt: str  # the last user text in the conversation
    tool_results: int
    status: int


@dataclass
class FakeMessages:
    """The fake server and its account; ``turns`` lists every Messages request."""

    account: Account = field(default_factory=Account.near)
    turns: list[Turn] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.upstream = FakeUpstream()
        self.upstream.routes[MESSAGES] = self._answer
        self._lock = threading.Lock()
        self._gathered = threading.Condition()
        self._arrived = 0  # refused requests that reached the gathering

    @property
    def url(self) -> str:
        return self.upstream.url

    def start(self) -> FakeMessages:
        self.upstream.start()
        return self

    def stop(self) -> None:
        self.upstream.stop()

    def other_requests(self) -> list[Seen]:
        """Everything that was not a Messages request (usage, profile, telemetry...)."""
        return [r for r in self.upstream.requests if r.path.split("?")[0] != MESSAGES]

    def turns_with(self, text: str) -> list[Turn]:
        with self._lock:
            return [t for t in self.turns if text in t.prompt]

    def since(self, moment: float) -> list[Turn]:
        with self._lock:
            return [t for t in self.turns if t.at >= moment]

    def _answer(self, seen: Seen) -> Reply:
        try:
            body = json.loads(seen.body or b"{}")
        except ValueError:
            body = {}
        messages = body.get("messages") if isinstance(body, dict) else None
        messages = messages if isinstance(messages, list) else []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        prompt = next(
            (
                t
                for m in reversed(users)
                for t in reversed(_texts(m.get("content")))
                if t and not t.startswith("<")
            ),
            "",
        )
        results = _tool_results(messages)
        if time.time() < self.account.reject_until and self.account.reject_together:
            self._gather(self.account.reject_together)
        with self._lock:
            account = self.account
            account.roll(time.time())
            if time.time() < account.reject_until:
                reply = Reply(
                    429,
                    {
                        "type": "error",
                        "error": {"type": "rate_limit_error", "message": "Rate limited"},
                    },
                    {**account.headers("rejected"), "retry-after": "0"},
                )
            else:
                reply = self._turn(body, prompt, results)
                reply.headers.update(account.headers("allowed"))
                account.five_hour.fraction += account.step
            self.turns.append(Turn(time.time(), prompt, results, reply.status))
        return reply

    def _gather(self, count: int) -> None:
        """Hold this request until ``count`` refused ones have arrived (30 s at most)."""
        with self._gathered:
            self._arrived += 1
            self._gathered.notify_all()
            self._gathered.wait_for(lambda: self._arrived >= count, timeout=30)

    def _turn(self, body: dict[str, Any], prompt: str, results: int) -> Reply:
        model = str(body.get("model") or "claude-sonnet-4-5")
        cwd = self._cwd(body)
        tokens = self.account.input_tokens.get(cwd.rstrip("/").rsplit("/", 1)[-1], 12)
        if WORK in prompt and results < self.account.tool_turns:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": f"toolu_fake{time.monotonic_ns()}",
                "name": "Read",
                "input": {"file_path": f"{cwd}/{READ_ME}"},
            }
            data = stream(model, block, "tool_use", tokens)
        else:
            text = {"type": "text", "text": f"done: {prompt[:40]}"}
            data = stream(model, text, "end_turn", tokens)
        return Reply(200, data, {"cache-control": "no-cache"}, content_type="text/event-stream")

    @staticmethod
    def _cwd(body: dict[str, Any]) -> str:
        """The session's working directory, from the environment block Claude Code sends."""
        found = _CWD.search(json.dumps(body))
        return found.group(1) if found else "/nonexistent"
