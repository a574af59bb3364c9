"""Renewal before expiry, by the agent, over the connection it already has.

Once the certificate in use ([mqtt] cert_file) is within [mqtt] renew_before_days of its
expiry, the agent makes a new key (KEY.new beside key_file) and publishes a signing request
for it (PEM, CN "STORE/DEVICE") on o2o/v1/STORE/DEVICE/csr — a topic the broker ACL lets only
this device's certificate write, so the platform's CA knows who asks. The CA answers with the
signed certificate (PEM) on o2o/v1/STORE/DEVICE/cert, retained so that a device offline at the
time finds it. The agent checks it (its pending key, its name, the CA in ca_file, valid now),
then tries it: the uplink reconnects presenting it. Only once the broker has accepted it does
it become cert_file and key_file (the pair before kept as .old); a certificate the broker
refuses is dropped and the old pair put back, and the request is asked again later. The
session and the outbox are the same throughout: nothing is lost, at most re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Protocol

from agent.config import Config
from agent.contracts.status import CertificateStatus
from agent.enroll import files
from agent.enroll.certs import (
    check_certificate,
    new_request,
    renews_on,
    request_for,
    same_key,
)

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes, str, bytes], Awaitable[object]]

CHECK_S: Final = 3600.0  # how often the expiry is looked at: certificates live months
WAIT_S: Final = 2.0  # due but not connected yet: look again this soon
ASK_AGAIN_S: Final = 6 * 3600.0  # no certificate for a request this long: send it again
TRIAL_S: Final = 60.0  # the broker must take the renewed certificate within this
TRIAL_ATTEMPTS: Final = 3  # or within this many connection attempts (a network blip is one)
MAX_ANSWER_BYTES: Final = 64 * 1024  # a certificate with its chain: a few KB


class LinkLike(Protocol):
    state: str
    connects: int
    connected_cert: str
    attempts: int

    def use_client_certificate(self, cert_file: str, key_file: str) -> None: ...


class UplinkLike(Protocol):
    @property
    def link(self) -> Any: ...  # LinkLike | None: the connection of the drain's current life

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None: ...


def renewal_topics(cfg: Config) -> tuple[str, str]:
    """(where the request goes, where the certificate comes back)."""
    return f"{cfg.topic_base}/csr", f"{cfg.topic_base}/cert"


def renewal_on(cfg: Config) -> bool:
    m = cfg.mqtt
    return bool(m.url.startswith("mqtts://") and m.cert_file and m.key_file
                and m.renew_before_days > 0 and m.cert_file != m.key_file)


class Renewal:
    def __init__(self, cfg: Config, uplink: UplinkLike) -> None:
        m = cfg.mqtt
        self.cn = f"{cfg.device.store}/{cfg.device.id}"
        self.cert_file, self.key_file = Path(m.cert_file), Path(m.key_file)
        self.ca_file = m.ca_file
        self.before_days = m.renew_before_days
        self.uplink = uplink
        self.csr_topic, self.cert_topic = renewal_topics(cfg)
        self.asked_at = 0.0  # monotonic time of the last request sent; 0: none this life
        self.trying = False
        self.renewals = 0
        self.last_problem = ""
        self.expires: float | None = None  # the certificate in use, as last read
        self._wake = asyncio.Event()
        try:
            if files.settle(self.cert_file, self.key_file):  # before the uplink loads the pair
                log.warning("certificate: finished installing %s, cut short last time",
                            self.cert_file)
        except OSError as exc:  # the uplink says more when it cannot load the pair
            self._problem(f"cannot finish the renewal cut short last time ({exc})")

    # --- when -------------------------------------------------------------------------

    def _due(self) -> float:
        """Seconds until the renewal is due (<= 0: now); reads the certificate in use."""
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        self.expires = cert.not_valid_after_utc.timestamp()
        when = renews_on(cert.not_valid_after_utc, self.before_days)
        assert when is not None  # renewal_on() made sure before_days > 0
        return (when - dt.datetime.now(dt.UTC)).total_seconds()

    async def run(self) -> None:
        """Look at the expiry now and then; ask when due and connected (on the loop)."""
        while True:
            try:
                left = await asyncio.to_thread(self._due)
            except (OSError, ValueError) as exc:
                self._problem(f"cannot read {self.cert_file} ({exc})")
                left = CHECK_S
            if left <= 0 and not self.trying:
                link = self.uplink.link
                if link is None or link.state != "connected":
                    left = WAIT_S
                elif not self.asked_at or time.monotonic() - self.asked_at >= ASK_AGAIN_S:
                    await self._ask()
                    left = ASK_AGAIN_S
                else:
                    left = ASK_AGAIN_S - (time.monotonic() - self.asked_at)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(1.0, min(left, CHECK_S)))

    async def _ask(self) -> None:
        try:
            csr = await asyncio.to_thread(self._request)
        except OSError as exc:
            self._problem(
                f"cannot write the new key beside {self.key_file} ({exc.strerror or exc}): the "
                "agent renews its certificate only where it may write; keep the pair in the "
                "agent's state directory (enrol with --dir /var/lib/o2o-edge/tls)")
            self.asked_at = time.monotonic()  # not again before ASK_AGAIN_S
            return
        self.uplink.publish_reply(self.csr_topic, b"", csr)
        self.asked_at = time.monotonic()
        log.info("certificate: renewal requested on %s (expires within %g days)",
                 self.csr_topic, self.before_days)

    def _request(self) -> bytes:
        """The pending key's request (a key asked for before and not yet answered is asked
        for again: a late answer still fits it), or a new key's."""
        from cryptography.hazmat.primitives import serialization

        key_new = files.pending(self.key_file)
        try:
            key = serialization.load_pem_private_key(key_new.read_bytes(), password=None)
        except (OSError, ValueError, TypeError):
            key_pem, csr = new_request(self.cn)
            files.write_atomic(key_new, key_pem, 0o640, self.key_file)
            return csr
        return request_for(key, self.cn)

    # --- the answer -------------------------------------------------------------------

    def route(self, others: Handler | None) -> Handler:
        """The uplink's downstream handler: the cert topic here, the rest to `others` (the
        store link, when it is on)."""
        async def handle(topic: str, raw: bytes, response: str, correlation: bytes) -> None:
            if topic == self.cert_topic:
                await self.handle(topic, raw, response, correlation)
            elif others is not None:
                await others(topic, raw, response, correlation)

        return handle

    async def handle(self, topic: str, raw: bytes, response: str, correlation: bytes) -> None:
        """A certificate on the cert topic (on the loop, from the uplink's inbox)."""
        if self.trying:
            return  # one at a time; a retained copy comes again at the next subscribe
        try:
            ready = await asyncio.to_thread(self._accept, raw)
        except (OSError, ValueError) as exc:
            self._problem(f"the certificate on {topic} was not installed: {exc}")
            return
        if ready:
            self.trying = True
            try:
                await self._try()
            finally:
                self.trying = False
                self._wake.set()

    def _accept(self, raw: bytes) -> bool:
        """Checked and written to CERT.new; False for one that is not an answer to a request
        (the retained certificate of the last renewal, met again at each subscribe). A CA
        may answer with its chain: the certificate for the pending key is the one taken."""
        from cryptography import x509
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization

        if len(raw) > MAX_ANSWER_BYTES:
            raise ValueError(f"not a PEM certificate ({len(raw)} bytes; a certificate and its "
                             f"chain take a few KB, at most {MAX_ANSWER_BYTES})")
        try:
            certs = x509.load_pem_x509_certificates(raw)
        except ValueError:
            raise ValueError("not a PEM certificate") from None
        key_new = files.pending(self.key_file)
        try:
            key = serialization.load_pem_private_key(key_new.read_bytes(), password=None)
        except FileNotFoundError:
            return False  # nothing asked for: the one in use, or an old answer
        cert, unreadable = None, False
        for candidate in certs:
            try:
                if same_key(candidate, key):
                    cert = candidate
                    break
            except (UnsupportedAlgorithm, ValueError):
                unreadable = True
        if cert is None:
            if unreadable:
                raise ValueError("not a PEM certificate this agent can read (its key is of an "
                                 "unknown kind)")
            # an answer to an earlier request (retained, met again at a subscribe): not news
            log.info("certificate: the one on %s is for an earlier request's key; waiting for "
                     "the answer to the current one", self.cert_topic)
            return False
        leaf = cert.public_bytes(serialization.Encoding.PEM)
        if self.cert_file.exists() and self.cert_file.read_bytes().strip() == leaf.strip():
            return False
        check_certificate(cert, key, self.cn, self.ca_file, dt.datetime.now(dt.UTC))
        files.write_atomic(files.pending(self.cert_file), leaf, 0o644, self.cert_file)
        return True

    async def _try(self) -> None:
        """Reconnect with the new pair; keep it once the broker took it, else go back."""
        new_cert, new_key = files.pending(self.cert_file), files.pending(self.key_file)
        link = self.uplink.link
        if link is None:
            return
        try:
            link.use_client_certificate(str(new_cert), str(new_key))
        except (OSError, ValueError) as exc:
            self._problem(f"the renewed certificate cannot be loaded ({exc})")
            return
        log.info("certificate: reconnecting with the renewed certificate to try it")
        deadline = time.monotonic() + TRIAL_S
        # the attempts after the one in use are the renewed certificate's
        last = link.attempts + TRIAL_ATTEMPTS
        while time.monotonic() < deadline:
            now = self.uplink.link
            if now is not link:
                break  # the drain restarted: its link loaded the files in use
            if link.state == "connected" and link.connected_cert == str(new_cert):
                try:
                    await asyncio.to_thread(files.promote, self.cert_file, self.key_file)
                except OSError as exc:
                    # the connection goes on with the pair loaded; a cut between the key and
                    # the certificate is finished at the next start (files.settle)
                    self._problem(f"the renewed certificate works but could not be put in "
                                  f"place of {self.cert_file} ({exc})")
                    return
                self.renewals += 1
                # not again before ASK_AGAIN_S even when the new one is due at once (a CA
                # whose own certificate ends within the window caps its certificates there)
                self.asked_at = time.monotonic()
                self.last_problem = ""
                log.warning("certificate: renewed; %s now expires on %s", self.cert_file,
                            await asyncio.to_thread(self._expiry))
                if await asyncio.to_thread(self._due) <= 0:
                    self._problem("the renewed certificate is due for renewal already (the "
                                  "CA's own certificate ends within renew_before_days?); "
                                  f"asking again in {ASK_AGAIN_S / 3600:g} hours")
                # the link loaded it from CERT.new: the same certificate under its own name
                link.client_cert = link.connected_cert = str(self.cert_file)
                return
            if link.attempts > last:
                break  # the last attempt allowed ended without the broker's yes
            await asyncio.sleep(0.2)
        why = getattr(link, "last_error", "") or "no connection"
        self._problem(f"the broker did not take the renewed certificate ({why}); went back "
                      "to the one in use, asking again later")
        new_cert.unlink(missing_ok=True)
        files.pending(self.key_file).unlink(missing_ok=True)  # a fresh key next time
        if self.uplink.link is link:
            try:
                link.use_client_certificate(str(self.cert_file), str(self.key_file))
            except (OSError, ValueError) as exc:
                self._problem(f"the certificate in use cannot be loaded again ({exc})")

    def _expiry(self) -> str:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        return f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"

    def _problem(self, text: str) -> None:
        """Said once while it stays the problem: a retained answer comes again at every
        reconnect, a refused renewal every ASK_AGAIN_S (the status keeps it)."""
        if text != self.last_problem:
            log.warning("certificate: %s", text)
        self.last_problem = text

    def status(self) -> CertificateStatus:
        """From memory (on the loop): the expiry as the last look at the file found it."""
        return {
            "file": str(self.cert_file),
            "expires": self.expires,
            "renews_from": (self.expires - self.before_days * 86400.0
                            if self.expires is not None else None),
            "renewals": self.renewals,
            "requested": files.pending(self.key_file).exists() and bool(self.asked_at),
            "last_problem": self.last_problem,
        }
