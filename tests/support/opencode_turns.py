"""Follow a real OpenCode server's events, so a test can wait for a turn to be over in OpenCode.

"No further upstream call came" (no agent loop, no hidden retry, no title call) means
nothing while OpenCode may still be working on the turn, and no sleep makes it mean more.
OpenCode itself says when a turn is over: the session's prompt loop goes idle (an abort
ends it the same way) and every assistant message of the turn is completed. This follows
the server's ``GET /global/event`` stream (every instance, every directory) from a thread
and answers "is the turn of the prompt carrying this marker over?" from what it has seen.
Counting the fake upstream's requests after that is a real statement.

A turn is found by its prompt: the gateway's prompt part carries the whole conversation,
so a test's marker in any of its messages finds it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["OpenCodeTurns"]


@dataclass
class _Prompt:
    seq: int
    session_id: str
    message_id: str
    text: str  # the part, as JSON: what markers are looked for in


@dataclass
class _Answer:
    session_id: str
    parent_id: str
    completed: bool


class OpenCodeTurns:
    """What one OpenCode server said about its sessions, as it said it (a context manager)."""

    def __init__(self, url: str, password: str | None) -> None:
        self._url = url.rstrip("/")
        self._auth = ("opencode", password) if password else None
        self._lock = threading.Lock()
        self._seq = 0
        self._prompts: list[_Prompt] = []
        self._prompted: set[str] = set()
        self._answers: dict[str, _Answer] = {}
        self._status: dict[str, tuple[str, int]] = {}  # session -> (status type, seq)
        self._texts: dict[str, tuple[str, str]] = {}  # text part -> (message, text so far)
        self._deleted: set[str] = set()
        self._connected = threading.Event()
        self._stopping = False
        self._response: httpx.Response | None = None
        self._thread: threading.Thread | None = None
        #: How often the stream had to be opened again (events may be missing from then).
        self.reconnects = 0

    def start(self, timeout: float = 10.0) -> OpenCodeTurns:
        self._thread = threading.Thread(target=self._follow, name="opencode-turns", daemon=True)
        self._thread.start()
        if not self._connected.wait(timeout):
            self.stop()
            raise RuntimeError(f"OpenCode's event stream at {self._url} did not open")
        return self

    def stop(self) -> None:
        """Close the stream and end the thread; its connection is gone when this returns."""
        self._stopping = True
        deadline = time.monotonic() + 10
        while self._thread is not None and self._thread.is_alive():
            # Closing the response would not wake the thread blocked reading it; this does.
            # Again until the thread ends: it may have been (re)connecting, to a new response.
            response = self._response
            stream = response.extensions.get("network_stream") if response is not None else None
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._thread.join(0.2)
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenCode event follower did not stop")

    def __enter__(self) -> OpenCodeTurns:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- asking ----------------------------------------------------------------------------

    def over(self, marker: str) -> bool:
        """Whether OpenCode has seen a prompt carrying ``marker`` and is done with each one.

        Done: every assistant message answering it is completed, and its session's status
        went idle after the prompt arrived, or the session was deleted.
        """
        with self._lock:
            prompts = [p for p in self._prompts if marker in p.text]
            if not prompts:
                return False
            for session_id in {p.session_id for p in prompts}:
                mine = [p for p in prompts if p.session_id == session_id]
                asked = {p.message_id for p in mine}
                answers = [a for a in self._answers.values() if a.parent_id in asked]
                if not answers or not all(a.completed for a in answers):
                    return False
                status, status_seq = self._status.get(session_id, ("", -1))
                idle_since = status == "idle" and status_seq > max(p.seq for p in mine)
                if not (idle_since or session_id in self._deleted):
                    return False
            return True

    def answer_text(self, marker: str) -> str:
        """The text OpenCode has published so far of the answers to prompts carrying ``marker``
        (deltas included): what the gateway following the same events has been told."""
        with self._lock:
            asked = {p.message_id for p in self._prompts if marker in p.text}
            answers = {mid for mid, a in self._answers.items() if a.parent_id in asked}
            return "".join(text for mid, text in self._texts.values() if mid in answers)

    def wait_over(self, marker: str, timeout: float = 30.0) -> None:
        """Return once the turn(s) of ``marker`` are over in OpenCode; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.over(marker):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"OpenCode's turn for {marker!r} was not over within {timeout} s: "
                    f"{self.describe(marker)}"
                )
            time.sleep(0.01)

    def describe(self, marker: str) -> str:
        """What is known of the turns of ``marker`` (for failure messages)."""
        with self._lock:
            prompts = [p for p in self._prompts if marker in p.text]
            sessions = {p.session_id for p in prompts}
            return json.dumps(
                {
                    "prompts": [(p.session_id, p.message_id) for p in prompts],
                    "answers": [
                        (mid, a.completed)
                        for mid, a in self._answers.items()
                        if a.parent_id in {p.message_id for p in prompts}
                    ],
                    "status": {s: self._status.get(s) for s in sessions},
                    "deleted": sorted(sessions & self._deleted),
                    "reconnects": self.reconnects,
                }
            )

    # -- following ---------------------------------------------------------------------------

    def _follow(self) -> None:
        timeout = httpx.Timeout(5.0, read=None)
        while True:
            try:
                with (
                    httpx.Client(auth=self._auth, timeout=timeout) as client,
                    client.stream("GET", f"{self._url}/global/event") as response,
                ):
                    self._response = response
                    for line in response.iter_lines():
                        if line.startswith("data:"):
                            self._take(json.loads(line[5:]))
            except (httpx.HTTPError, ValueError):
                pass
            if self._stopping:
                return
            self.reconnects += 1
            time.sleep(0.2)  # the server is gone or restarting: try again shortly

    def _take(self, event: dict[str, Any]) -> None:
        payload = event.get("payload") or event
        kind = payload.get("type")
        props = payload.get("properties") or {}
        if kind == "server.connected":
            self._connected.set()
            return
        with self._lock:
            self._seq += 1
            seq = self._seq
            if kind == "message.part.updated":
                part = props.get("part") or {}
                if part.get("type") == "text" and part.get("messageID") in self._answers:
                    self._texts[part["id"]] = (part["messageID"], part.get("text") or "")
                new = part.get("messageID") not in self._prompted
                if part.get("type") == "text" and part.get("metadata") and new:
                    text = json.dumps(part, ensure_ascii=False)
                    self._prompts.append(_Prompt(seq, part["sessionID"], part["messageID"], text))
                    self._prompted.add(part["messageID"])
            elif kind == "message.part.delta" and props.get("partID") in self._texts:
                if props.get("field") == "text":
                    message_id, text = self._texts[props["partID"]]
                    self._texts[props["partID"]] = (message_id, text + str(props.get("delta")))
            elif kind == "message.updated":
                info = props.get("info") or {}
                if info.get("role") == "assistant":
                    self._answers[info["id"]] = _Answer(
                        info["sessionID"],
                        info.get("parentID", ""),
                        bool((info.get("time") or {}).get("completed")),
                    )
            elif kind == "session.status":
                status = props.get("status") or {}
                self._status[props.get("sessionID", "")] = (str(status.get("type")), seq)
            elif kind == "session.deleted":
                self._deleted.add(str(props.get("sessionID") or (props.get("info") or {})["id"]))
