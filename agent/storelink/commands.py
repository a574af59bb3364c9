"""Commands from upstream over MQTT 5 request/response.

A command is a signed "cmd" document on `o2o/v1/{store}/{device|all}/cmd/{name}` whose body
names the same command — {"name": "status", "args": {...}} — so a signature cannot be moved to
another command's topic. The answer goes to the request's response topic with its
correlation data (MQTT 5 properties; on MQTT 3.1.1 the body may carry "response_topic" and
"correlation" instead): {"ok": true, "command": ..., "result": {...}} or {"ok": false,
"command": ..., "error": "..."}. A refused document is answered too when it says where to,
with the refusal's reason; an unknown command is answered with an error, never ignored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.storelink.docs import DocRefused
from agent.storelink.receiver import DocReceiver

log = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")


class CommandError(Exception):
    pass


class Commands:
    def __init__(self, receiver: DocReceiver, reply: Callable[[str, bytes, bytes], None],
                 handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
        """`reply(topic, correlation, payload)` publishes an answer; `handlers` by name."""
        self.receiver = receiver
        self.reply = reply
        self.handlers = handlers
        self.answered = 0

    def handle(self, topic: str, raw: bytes, response_topic: str, correlation: bytes) -> None:
        name = topic.rsplit("/", 1)[-1]
        response_topic, correlation = self._fallback(raw, response_topic, correlation)
        doc = self.receiver.check(topic, raw)  # refusals are counted and recorded there
        if isinstance(doc, DocRefused):
            self._answer(response_topic, correlation, {"ok": False, "command": name,
                                                        "error": str(doc)})
            return
        body = doc.body if isinstance(doc.body, dict) else {}
        if body.get("name") != name:
            self.receiver.refuse(topic, DocRefused("malformed", "the signed command names "
                                                   f"{body.get('name')!r}, the topic {name!r}"))
            self._answer(response_topic, correlation, {
                "ok": False, "command": name, "error": "the signed name is not the topic's"})
            return
        self.receiver.accept(topic, doc, raw)
        handler = self.handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            self._answer(response_topic, correlation, {
                "ok": False, "command": name, "error": f"unknown command; known: {known}"})
            return
        raw_args = body.get("args")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        try:
            result = handler(args)
        except CommandError as exc:
            self._answer(response_topic, correlation, {"ok": False, "command": name,
                                                        "error": str(exc)})
            return
        self._answer(response_topic, correlation, {"ok": True, "command": name,
                                                    "result": result})

    @staticmethod
    def _fallback(raw: bytes, topic: str, corr: bytes) -> tuple[str, bytes]:
        """MQTT 3.1.1 has no properties: the body may say where the answer goes."""
        if topic:
            return topic, corr
        try:
            body = json.loads(raw).get("body") or {}
        except (ValueError, AttributeError):
            return "", b""
        if not isinstance(body, dict):
            return "", b""
        return str(body.get("response_topic") or ""), str(body.get("correlation") or "").encode()

    def _answer(self, topic: str, correlation: bytes, doc: dict[str, Any]) -> None:
        if not topic:
            log.info("command %s: no response topic, answer dropped", doc.get("command"))
            return
        doc["time"] = round(time.time(), 3)
        self.reply(topic, correlation, json.dumps(doc, separators=(",", ":")).encode())
        self.answered += 1


def parse_level(args: dict[str, Any]) -> int:
    level = str(args.get("level", "")).lower()
    if level not in LOG_LEVELS:
        raise CommandError(f"level must be one of {', '.join(LOG_LEVELS)}")
    return int(getattr(logging, level.upper()))
