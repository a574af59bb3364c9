"""The store link's downstream side: each message the uplink hands over (on the event loop, one
at a time per document kind) is verified and applied in a worker thread, never on paho's
network thread nor on the loop — a SQLite snapshot or a 32 MiB content file takes far longer
than the 100 ms the loop may be held. Commands run on the loop, where the agent's state lives;
a long one answers when it is done (commands.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.contracts.events import LINK_COMMAND, LinkCommand
from agent.storelink.blobs import BlobStore
from agent.storelink.cache import LinkCache
from agent.storelink.commands import Commands
from agent.storelink.content import install_bundle
from agent.storelink.docs import Doc, DocRefused
from agent.storelink.receiver import Applier, DocReceiver
from agent.storelink.reports import Schedule

log = logging.getLogger(__name__)

DOCUMENT_KINDS = ("config", "content", "orders", "appointments", "consent", "keys", "cmd/+",
                  "catalog", "offers")


def link_topics(store: str, device: str) -> tuple[str, ...]:
    """The topic filters the store link takes documents on: this device's and the store's."""
    return tuple(f"o2o/v1/{store}/{scope}/{kind}" for scope in (device, "all")
                 for kind in DOCUMENT_KINDS)


class StoreLink:
    def __init__(self, store: str, device: str, pinned: list[str], cache: LinkCache,
                 appliers: dict[str, Applier], content_root: Path,
                 capture: Callable[[str, Any], object],
                 reply: Callable[[str, bytes, bytes], None],
                 handlers: dict[str, Callable[[dict[str, Any]], Any]],
                 want_topics: Callable[[set[str]], None], schedule: Schedule) -> None:
        """`appliers` by document kind (content is this object's own); `reply` publishes a
        command's answer, `handlers` the commands by name; `want_topics(topics)` subscribes
        to these content files (and only these) while they are wanted; `schedule(delay, fn)`
        runs fn on the loop later, from any thread."""
        self.store = store
        self.device = device
        self.content_root = content_root
        self.blobs = BlobStore(content_root)
        self.capture = capture
        self.want_topics = want_topics
        self.schedule = schedule
        self.receiver = DocReceiver(store, device, pinned, cache,
                                    {**appliers, "content": self.apply_content}, capture,
                                    on_waiting=self.fetch_blobs, schedule=schedule)
        self.commands = Commands(self.receiver, reply, handlers)

    def topics(self) -> tuple[str, ...]:
        return link_topics(self.store, self.device)

    def blob_topic(self, sha: str) -> str:
        return f"o2o/v1/{self.store}/all/blob/{sha}"

    async def handle(self, topic: str, raw: bytes, response: str, correlation: bytes) -> None:
        """One downstream message (on the loop, called by the uplink's inbox)."""
        receiver, commands = self.receiver, self.commands
        kind, name = topic.rsplit("/", 2)[-2:]
        try:
            if kind == "cmd":
                # on the loop: commands read the agent's state; the long ones answer later
                commands.handle(topic, raw, response, correlation)
            elif kind == "blob":
                await asyncio.to_thread(self.blob_arrived, name, raw)
            else:
                await receiver.handle_off_loop(topic, raw)
        except Exception as exc:  # a fault of ours (a blob the disk refused): counted
            receiver.fail(topic, None, exc)

    def fetch_blobs(self) -> None:
        """Subscribe to the content files the waiting bundles still need, and only those
        (the receiver calls this whenever that changes, from the worker: done on the loop)."""
        self.schedule(0, lambda: self.want_topics(
            {self.blob_topic(sha) for sha in self.receiver.needed()}))

    def blob_arrived(self, sha: str, raw: bytes) -> None:
        """A content file by hash (worker thread): kept if it is one a waiting bundle needs
        and hashes right, then the bundle is tried again."""
        receiver = self.receiver
        if sha not in receiver.needed():
            return  # not asked for (or already here): a retained blob of another bundle
        try:
            self.blobs.put(sha, raw)
        except DocRefused as exc:
            receiver.refuse(self.blob_topic(sha), exc)
            return
        receiver.retry_deferred()

    def apply_content(self, doc: Doc) -> None:
        # DocDeferred: the receiver keeps the bundle waiting and calls fetch_blobs
        where = install_bundle(doc, self.content_root, self.blobs)
        log.info("content v%s installed in %s", doc.version, where)
        reload: LinkCommand = {"name": "reload-content"}
        self.capture(LINK_COMMAND, reload)  # the kiosk listens
