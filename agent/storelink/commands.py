"""Commands from upstream over MQTT 5 request/response.

A command is a signed "cmd" document on `o2o/v1/{store}/{device|all}/cmd/{name}` whose body
names the same command — {"name": "status", "args": {...}} — so a signature cannot be moved to
another command's topic. The answer goes to the request's response topic with its
correlation data (MQTT 5 properties; on MQTT 3.1.1 the body may carry "response_topic" and
"correlation" instead): {"ok": true, "command": ..., "device": ..., "result": {...}} or
{"ok": false, "command": ..., "device": ..., "error": "..."}.

The response topic is not covered by the signature (it is a property of the message, or
comes from a request that may be forged), so the agent answers only inside its own reply
namespace: `o2o/v1/{store}/{device}/cmd-reply/<anything>` or
`o2o/v1/{store}/all/cmd-reply/<anything>`. A request naming any other topic (another store's
events, the device's own state topic) is not answered at all, only counted. A refused
document is answered with its refusal's reason and nothing else, at most a few per second
(the rest counted); an unknown command, or one that fails, is answered with an error.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent.contracts.events import LINK_REFUSED
from agent.errors import AgentError, Reason
from agent.storelink.docs import MAX_BYTES, Doc, DocRefused, unverified_fields
from agent.storelink.receiver import DocReceiver
from agent.storelink.reports import Throttled, clip

log = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")
REPLY_LEVEL: Final = "cmd-reply"
MAX_REPLY_TOPIC: Final = 512  # characters; a request id or two under the namespace
MAX_CORRELATION: Final = 1024  # bytes; correlation data is an id, echoed back as sent
# refusals are answered at this rate (a burst of REFUSAL_BURST first): a flood of forged
# requests must not turn into a flood of answers competing with the events for the uplink
REFUSAL_ANSWERS_PER_S: Final = 5.0
REFUSAL_BURST: Final = 20.0


class CommandError(AgentError):
    """A command's arguments refused: the request's fault, answered with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.BAD_COMMAND, message)


class Commands:
    def __init__(self, receiver: DocReceiver, reply: Callable[[str, bytes, bytes], None],
                 handlers: dict[str, Callable[[dict[str, Any]], Any]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`reply(topic, correlation, payload)` publishes an answer; `handlers` by name, each
        returning its result, or an awaitable of it (then answered when it is done)."""
        self.receiver = receiver
        self.reply = reply
        self.handlers = handlers
        self.clock = clock
        self.device = receiver.device
        self.namespaces = tuple(f"o2o/v1/{receiver.store}/{scope}/{REPLY_LEVEL}/"
                                for scope in (receiver.device, "all"))
        self._running: set[asyncio.Future[None]] = set()
        self._tokens = REFUSAL_BURST
        self._filled = clock()
        self._unanswerable = Throttled(LINK_REFUSED, "command not answered",
                                       receiver.emit, receiver.refusals.schedule)

    @property
    def answered(self) -> int:
        return self.receiver.commands["answered"]

    def handle(self, topic: str, raw: bytes, response_topic: str, correlation: bytes) -> None:
        name = clip(topic.rsplit("/", 1)[-1], 64)
        response_topic, correlation = self._fallback(raw, response_topic, correlation)
        doc = self.receiver.check(topic, raw)  # refusals are counted and recorded there
        where = self._reply_topic(topic, response_topic, correlation)
        if isinstance(doc, DocRefused):
            if where is not None and self._take_token():
                self._answer(where, correlation, {"ok": False, "command": name,
                                                  "error": doc.code})
            elif where is not None:
                self.receiver.commands["refusals-not-answered"] += 1
            return
        body = doc.body if isinstance(doc.body, dict) else {}
        if body.get("name") != name:
            self.receiver.refuse(topic, DocRefused("malformed", "the signed command names "
                                                   f"{clip(str(body.get('name')), 64)!r}, "
                                                   f"the topic {name!r}"))
            self._answer(where, correlation, {
                "ok": False, "command": name, "error": "the signed name is not the topic's"})
            return
        self.receiver.accept(topic, doc, raw)
        handler = self.handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            self._answer(where, correlation, {
                "ok": False, "command": name, "error": f"unknown command; known: {known}"})
            return
        raw_args = body.get("args")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        try:
            result = handler(args)
        except Exception as exc:  # answered, counted, one log line
            self._failed(topic, doc, name, where, correlation, exc)
            return
        if inspect.isawaitable(result):  # a long one runs off the loop: answered when done
            task = asyncio.ensure_future(self._finish(result, topic, doc, name, where,
                                                      correlation))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return
        self._answer(where, correlation, {"ok": True, "command": name, "result": result})

    async def _finish(self, result: Awaitable[dict[str, Any]], topic: str, doc: Doc,
                      name: str, where: str | None, correlation: bytes) -> None:
        try:
            done = await result
        except Exception as exc:  # answered, counted, one log line
            self._failed(topic, doc, name, where, correlation, exc)
            return
        self._answer(where, correlation, {"ok": True, "command": name, "result": done})

    def _failed(self, topic: str, doc: Doc, name: str, where: str | None, correlation: bytes,
                exc: Exception) -> None:
        if isinstance(exc, CommandError):  # the request's fault: said so, nothing to count
            self._answer(where, correlation, {"ok": False, "command": name,
                                              "error": str(exc)})
            return
        self.receiver.fail(topic, doc, exc)
        self._answer(where, correlation, {"ok": False, "command": name,
                                          "error": f"failed: {clip(str(exc), 200)}"})

    def _reply_topic(self, topic: str, where: str, correlation: bytes) -> str | None:
        """`where` if the agent may answer there, else None (counted and reported)."""
        if not where:
            self.receiver.commands["no-reply-topic"] += 1
            return None
        problem = ""
        if len(where) > MAX_REPLY_TOPIC or len(correlation) > MAX_CORRELATION:
            problem = "response topic or correlation data too long"
        elif not where.startswith(self.namespaces) or any(c in where for c in "+#\0") \
                or where.endswith("/"):
            problem = f"the response topic is outside {self.namespaces[0]}…"
        else:
            try:
                where.encode("utf-8")
            except UnicodeEncodeError:
                problem = "the response topic is not UTF-8"
        if not problem:
            return where
        self.receiver.commands["reply-topic-refused"] += 1
        self._unanswerable.report("reply-topic", {
            "topic": clip(topic, 120), "reason": "reply-topic", "detail": problem,
            "response_topic": clip(where, 120)})
        return None

    def _take_token(self) -> bool:
        now = self.clock()
        self._tokens = min(REFUSAL_BURST,
                           self._tokens + (now - self._filled) * REFUSAL_ANSWERS_PER_S)
        self._filled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    @staticmethod
    def _fallback(raw: bytes, topic: str, corr: bytes) -> tuple[str, bytes]:
        """MQTT 3.1.1 has no properties: the body may say where the answer goes."""
        if topic or len(raw) > MAX_BYTES:
            return topic, corr
        body = (unverified_fields(raw) or {}).get("body") or {}
        if not isinstance(body, dict):
            return "", b""
        where, again = body.get("response_topic"), body.get("correlation")
        try:
            return (where if isinstance(where, str) else "",
                    again.encode() if isinstance(again, str) else b"")
        except UnicodeEncodeError:  # a lone surrogate: nothing to answer to
            return "", b""

    def _answer(self, topic: str | None, correlation: bytes, doc: dict[str, Any]) -> None:
        if topic is None:
            return
        doc["device"] = self.device  # a command for "all" is answered by every device
        doc["time"] = round(time.time(), 3)
        try:
            self.reply(topic, correlation, json.dumps(doc, separators=(",", ":")).encode())
        except (ValueError, OSError, RuntimeError) as exc:  # the client refused to send it
            self.receiver.commands["answer-failed"] += 1
            log.warning("command %s: the answer could not be sent (%s)", doc["command"],
                        clip(str(exc), 200))
            return
        self.receiver.commands["answered"] += 1


def parse_level(args: dict[str, Any]) -> tuple[str, int]:
    """The log level a set-log-level command names: (its name, logging's number for it)."""
    level = str(args.get("level", "")).lower()
    if level not in LOG_LEVELS:
        raise CommandError(f"level must be one of {', '.join(LOG_LEVELS)}")
    return level, int(getattr(logging, level.upper()))
