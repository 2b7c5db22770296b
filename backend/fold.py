"""TurnFold: one session's OpenCode events, folded into the gateway's TurnEvents.

OpenCode 1.18.33 publishes a turn as `message.updated` (the message and, at the end, its
finish and tokens), `message.part.updated` (a part opened, changed or closed, with the part's
whole text so far) and `message.part.delta` (text increments). Under load these arrive in any
order: a part before its message says it is the assistant's, a delta before its part says
whether it is text or reasoning, a snapshot before the deltas it contains, a finish before the
last part. The fold therefore keeps parts whose message is not known yet, keeps deltas whose
part is not known yet, emits each part's text as the longest consistent prefix seen (never
twice, never out of order), and at the end of the turn is `reconcile`d with the session's
stored messages, which hold every part in its final state. Nothing the model produced is lost
to timing, and nothing is sent twice.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from opencode_openai.backend.plugin_contract import STRUCTURED_OUTPUT
from opencode_openai.core.errors import BackendError, GatewayError, UpstreamFailed
from opencode_openai.core.events import (
    FinishReason,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    Usage,
)

__all__ = ["TurnFold"]

log = logging.getLogger("opencode_openai.fold")

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content-filter": "content_filter",
}
_TEXT_KINDS = ("text", "reasoning")


def _usage(tokens: dict[str, Any] | None) -> Usage:
    tokens = tokens or {}
    cache = tokens.get("cache") or {}
    cached = int(cache.get("read") or 0)
    # OpenCode counts cached input apart from `input` and reasoning apart from `output`;
    # OpenAI's prompt_tokens and completion_tokens include them (seen on 1.18.33).
    written = int(cache.get("write") or 0)
    prompt = int(tokens.get("input") or 0) + cached + written
    reasoning = int(tokens.get("reasoning") or 0)
    completion = int(tokens.get("output") or 0) + reasoning
    return Usage(prompt, completion, cached, reasoning, written)


def _error_from(error: dict[str, Any]) -> GatewayError:
    """OpenCode's `session.error` / `info.error` as one of our errors."""
    data = error.get("data") or {}
    message = str(data.get("message") or error.get("name") or "the model call failed")
    if error.get("name") == "MessageAbortedError":
        return BackendError("the OpenCode turn was aborted")
    status = data.get("statusCode")
    return UpstreamFailed(message, upstream_status=int(status) if status else None)


def _retry_failure(status: dict[str, Any]) -> UpstreamFailed:
    """OpenCode is about to retry a failed call (429, 5xx, unreachable): fail now instead.

    Its retry event carries the provider's message and when it would retry, not the status.
    """
    failure = UpstreamFailed(str(status.get("message") or "the provider failed"))
    retry_at = status.get("next")
    if isinstance(retry_at, (int, float)):
        seconds = max(1, round(retry_at / 1000 - time.time()))
        failure.headers["Retry-After"] = str(seconds)
    return failure


@dataclass
class _PartText:
    """What a text or reasoning part has sent, and what it knows from deltas.

    Deltas are appended as they come; while they are exactly what was sent (the usual case)
    each one is sent at once. A snapshot, or deltas catching up with one, extends the text
    only when it starts with what was sent.
    """

    kind: str
    sent: list[str] = field(default_factory=list)
    sent_len: int = 0
    deltas: list[str] = field(default_factory=list)
    deltas_len: int = 0
    in_sync: bool = True
    signed: bool = False

    def delta(self, text: str) -> str:
        self.deltas.append(text)
        self.deltas_len += len(text)
        if self.in_sync:
            return self._send(text)
        if self.deltas_len <= self.sent_len:
            return ""  # still behind what a snapshot sent
        joined = "".join(self.deltas)
        self.deltas = [joined]
        return self.extend(joined)

    def extend(self, candidate: str) -> str:
        """Send what `candidate`, a longer version of the text, adds to what was sent."""
        if len(candidate) <= self.sent_len:
            return ""
        sent = "".join(self.sent)
        self.sent = [sent]
        if not candidate.startswith(sent):
            log.warning("a part's text changed under what was already sent; kept what was sent")
            return ""
        return self._send(candidate[self.sent_len :])

    def _send(self, text: str) -> str:
        self.sent.append(text)
        self.sent_len += len(text)
        self.in_sync = self.deltas_len == self.sent_len and (
            len(self.deltas) == len(self.sent) or "".join(self.deltas) == "".join(self.sent)
        )
        return text


@dataclass
class _Call:
    """A call of a client tool, as its part says so far (OpenCode parses its input whole)."""

    part_id: str
    name: str
    arguments: dict[str, Any] | None = None  # None while the input is still streaming


class TurnFold:
    """Folds one session's OpenCode events into TurnEvents (see the module docstring).

    `structured`: the turn asked for structured output (its JSON answer comes from OpenCode's
    StructuredOutput tool); `forced`: the turn forces a tool call (through the same path, with
    StructuredOutput off); `tool_names`: the client's tools, the only calls the client sees.
    """

    def __init__(
        self, *, structured: bool, tool_names: frozenset[str], forced: bool = False
    ) -> None:
        self.structured = structured and not forced
        self.forced = forced
        self.tool_names = tool_names
        #: After events were lost, deltas no longer line up with what was sent: only whole
        #: snapshots of a part (OpenCode sends one when the part ends) are used from then on.
        self.snapshots_only = False
        self._roles: dict[str, str] = {}  # messageID -> role
        self._early_parts: dict[str, dict[str, dict[str, Any]]] = {}  # messageID -> partID -> part
        self._early_deltas: dict[str, list[str]] = {}  # partID -> deltas, kind not known yet
        self._texts: dict[str, _PartText] = {}
        self._ignored: set[str] = set()  # parts of other messages (the user's), and non-text parts
        self._calls: dict[str, _Call] = {}
        self._finish: str | None = None
        self._tokens: dict[str, Any] | None = None
        self._output: Any = None
        self._idle = False  # OpenCode said the session is idle
        self._stored_complete = False  # the stored assistant message is completed
        self._completed_seen = False  # an event said the assistant message is completed
        #: How many times the events said the turn may be over (idle, a tool-calls finish, a
        #: structured answer): each is a reason to reconcile with the stored messages.
        self.end_signals = 0

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, event: dict[str, Any]) -> list[TurnEvent]:
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind == "message.part.delta":
            if props.get("field") == "text":
                return self._delta(str(props.get("partID", "")), props.get("delta") or "")
        elif kind == "message.part.updated":
            return self._part(props.get("part") or {})
        elif kind == "message.updated":
            info = props.get("info") or {}
            out = self._message(info)
            if (info.get("time") or {}).get("completed") and info.get("id") == self.assistant_id:
                self._completed_seen = True
            return out
        elif kind == "session.idle":
            self._idle = True
            self.end_signals += 1
        elif kind == "session.error":
            error = props.get("error") or {}
            if error.get("name") not in self._not_errors:
                raise _error_from(error)
        elif kind == "session.status":
            status = props.get("status") or {}
            if status.get("type") == "retry":
                raise _retry_failure(status)
        return []

    def reconcile(self, messages: list[dict[str, Any]]) -> list[TurnEvent]:
        """Catch up from the session's stored messages (`{info, parts}`, this turn's only,
        oldest first).

        Their parts are final snapshots: whatever the events missed is emitted now; what was
        already sent is not sent again. A completed assistant message ends the turn.
        """
        signals = self.end_signals
        out: list[TurnEvent] = []
        assistants = 0
        for message in messages:
            info = message.get("info") or {}
            if info.get("role") == "assistant":
                assistants += 1
                if assistants > 1:
                    # OpenCode trying a second step (after a tool call), which the plugin
                    # refused: not part of this turn's one model call.
                    continue
            out += self._message(info)
            for part in message.get("parts") or []:
                out += self._part(part)
            if info.get("role") == "assistant" and (info.get("time") or {}).get("completed"):
                self._stored_complete = True
        self.end_signals = signals  # what reconciling learns needs no second reconcile
        return out

    def _message(self, info: dict[str, Any]) -> list[TurnEvent]:
        message_id, role = str(info.get("id", "")), info.get("role")
        if not role or self._roles.get(message_id) == "other":
            return []
        if message_id not in self._roles:
            first = self.assistant_id
            if role != "assistant" or (first is not None and message_id > first):
                # The user's message; or a later step, which the plugin refuses (OpenCode's
                # ids ascend): neither is part of this turn's one model call.
                self._roles[message_id] = "other"
                for part_id in self._early_parts.pop(message_id, {}):
                    self._ignore(part_id)
                return []
            self._roles[message_id] = "assistant"
        error = info.get("error")
        if error and error.get("name") not in self._not_errors:
            raise _error_from(error)
        if info.get("finish"):
            self._set_finish(info["finish"], info.get("tokens"))
        if info.get("structured") is not None:
            if self._output is None:
                self.end_signals += 1
            self._output = info["structured"]
        out: list[TurnEvent] = []
        for part in self._early_parts.pop(message_id, {}).values():
            out += self._part(part)
        return out

    @property
    def _not_errors(self) -> tuple[str, ...]:
        # A content filter is a finish reason, not an error. A forced turn whose model answered
        # in text all the same is that answer: OpenCode then calls it a StructuredOutputError.
        return (
            ("ContentFilterError", "StructuredOutputError")
            if self.forced
            else ("ContentFilterError",)
        )

    def _ignore(self, part_id: str) -> None:
        self._ignored.add(part_id)
        self._early_deltas.pop(part_id, None)

    def _part(self, part: dict[str, Any]) -> list[TurnEvent]:
        part_id, message_id = str(part.get("id", "")), str(part.get("messageID", ""))
        role = self._roles.get(message_id)
        if role is None:  # its message is not known yet: keep the newest version of it
            self._early_parts.setdefault(message_id, {})[part_id] = part
            return []
        if role != "assistant":
            self._ignore(part_id)
            return []
        kind = part.get("type")
        if kind in _TEXT_KINDS:
            return self._text_part(part_id, str(kind), part)
        if kind == "step-finish":
            self._set_finish(part.get("reason"), part.get("tokens"))
        elif kind == "tool":
            return self._tool_call(part)
        self._ignore(part_id)
        return []

    def _text_part(self, part_id: str, kind: str, part: dict[str, Any]) -> list[TurnEvent]:
        text = self._texts.get(part_id)
        out: list[TurnEvent] = []
        if text is None:
            text = self._texts[part_id] = _PartText(kind)
            for early in self._early_deltas.pop(part_id, []):
                out += self._delta(part_id, early)
        out += self._emit(text, text.extend(part.get("text") or ""))
        # Anthropic signs its thinking (OpenCode keeps it in the part's provider metadata);
        # once the part holds its signature, the reasoning told so far is what was signed.
        signature = ((part.get("metadata") or {}).get("anthropic") or {}).get("signature")
        if kind == "reasoning" and isinstance(signature, str) and signature and not text.signed:
            text.signed = True
            out.append(ReasoningSignature(signature))
        return out

    def _delta(self, part_id: str, delta: str) -> list[TurnEvent]:
        if not delta or part_id in self._ignored or self.snapshots_only:
            return []
        text = self._texts.get(part_id)
        if text is None:  # its part (text or reasoning?) is not known yet
            self._early_deltas.setdefault(part_id, []).append(delta)
            return []
        return self._emit(text, text.delta(delta))

    def _set_finish(self, finish: str | None, tokens: dict[str, Any] | None) -> None:
        if finish == "tool-calls" and self._finish != "tool-calls":
            self.end_signals += 1
        self._finish = finish or self._finish
        self._tokens = tokens or self._tokens

    @staticmethod
    def _emit(text: _PartText, new: str) -> list[TurnEvent]:
        if not new:
            return []
        return [TextDelta(new) if text.kind == "text" else ReasoningDelta(new)]

    def _tool_call(self, part: dict[str, Any]) -> list[TurnEvent]:
        """Note a call of one of the client's tools; the calls go out when the turn ends.

        Not as they come: parts of one message may arrive in any order, and the calls must
        reach the client in the model's order (their parts' ids ascend in it). OpenCode gives a
        call's input whole, at the end of the step, which is also where the turn stops.
        """
        name, call_id = part.get("tool"), str(part.get("callID") or "")
        if name not in self.tool_names or name == STRUCTURED_OUTPUT:
            return []  # OpenCode's own tools and unknown names are never the client's business
        call = self._calls.setdefault(call_id, _Call(str(part.get("id", "")), str(name)))
        state = part.get("state") or {}
        if state.get("status") != "pending":
            call.arguments = state.get("input") or {}
        return []

    # -- the end -------------------------------------------------------------------------------

    @property
    def assistant_id(self) -> str | None:
        """The id of the turn's assistant message, once an event has named it."""
        return next((mid for mid, role in self._roles.items() if role == "assistant"), None)

    @property
    def stopped_at_tool_call(self) -> bool:
        """The upstream called one of the client's tools: the turn ends here (nothing runs)."""
        return self._finish == "tool-calls" and bool(self._calls)

    @property
    def told_whole(self) -> bool:
        """Whether the events alone hold the whole turn, so the stored messages add nothing:
        the session went idle after its assistant message completed, and no event was lost.

        OpenCode publishes every part's update before the message completes and the session
        goes idle, on one ordered stream; only a client tool call's arguments may still be
        settling at a tool-calls finish, which ends the turn before idle.
        """
        return self._idle and self._completed_seen and not self.snapshots_only

    @property
    def complete(self) -> bool:
        """Nothing more will come: idle, a client tool call, or the structured answer."""
        if self.structured:
            # Not the stored message's completion: a StructuredOutput call completes it before
            # OpenCode has run that tool and recorded the answer.
            return self._idle or self.stopped_at_tool_call or self._output is not None
        return self._idle or self._stored_complete or self._finish == "tool-calls"

    def finished(self) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        ordered = sorted(self._calls.items(), key=lambda item: item[1].part_id)
        for index, (call_id, call) in enumerate(ordered):
            events.append(ToolCallDelta(index, id=call_id, name=call.name))
            events.append(ToolCallDelta(index, arguments=json.dumps(call.arguments or {})))
        finish = _FINISH.get(self._finish or "stop", "stop")
        if self._calls:
            finish = "tool_calls"
        elif self.structured:
            if self._output is None:
                raise UpstreamFailed("the model did not return the requested JSON output")
            events.append(TextDelta(json.dumps(self._output, ensure_ascii=False)))
            finish = "stop"
        events.append(TurnFinished(finish, _usage(self._tokens)))
        return events
