"""Doctor's look at the device's certificate for the broker ([mqtt] cert_file): how long it
has left, when the agent renews it, and whether it names this device as the broker ACL
expects (CN "STORE/DEVICE")."""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Final

from agent.config import Config
from agent.doctor import Finding, fail, ok, skip, warn
from agent.enroll.files import pending
from agent.enroll.renewal import renewal_on, renewal_topics

AGENT_USER: Final = "o2o-edge"  # the agent's unit runs as this user (systemd/o2o-edge.service)
RENEW_BEFORE: Final = dt.timedelta(days=30)  # renewed by hand: a store may be visited monthly
RENEW = "renew it: 'o2o-edge enroll request', the CA signs it, 'o2o-edge enroll install CERT'"


def _unwritable(directory: Path, agent_user: str = AGENT_USER) -> Path | None:
    """`directory` when the agent could not make files in it: as root (doctor under sudo),
    judged for the agent's user by the directory's owner and mode (install.sh makes
    /etc/o2o-edge root's, group o2o-edge, 0750: not the agent's to write); otherwise for this
    user, who is then the one that runs the agent."""
    try:
        st = directory.stat()
    except OSError:
        return directory
    if os.geteuid() != 0:
        return None if os.access(directory, os.W_OK | os.X_OK) else directory
    try:
        user = pwd.getpwnam(agent_user)
    except KeyError:
        return None  # no such user here: not the installed layout, nothing to judge
    groups = {g.gr_gid for g in grp.getgrall() if agent_user in g.gr_mem} | {user.pw_gid}
    writable = ((st.st_uid == user.pw_uid and st.st_mode & stat.S_IWUSR)
                or (st.st_gid in groups and st.st_mode & stat.S_IWGRP)
                or st.st_mode & stat.S_IWOTH)
    return None if writable else directory


def check_certificate(cfg: Config, now: dt.datetime | None = None) -> list[Finding]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    path = cfg.mqtt.cert_file
    if not path:
        return [
            skip(
                "certificate",
                "no [mqtt] cert_file: the broker knows this device by username, if at all",
            )
        ]
    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        return [
            fail(
                "certificate",
                f"{path} cannot be read as a PEM certificate ({exc})",
                "check [mqtt] cert_file, or enrol: 'o2o-edge enroll request'",
            )
        ]
    now = now or dt.datetime.now(dt.UTC)
    ends = cert.not_valid_after_utc
    left = ends - now
    when = f"{ends:%Y-%m-%d}"
    if left <= dt.timedelta(0):
        return [fail("certificate", f"{path} expired on {when}: the broker refuses it", RENEW)]
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    cn = f"{cfg.device.store}/{cfg.device.id}"
    found: list[Finding] = []
    if names != [cn]:
        found.append(
            warn(
                "certificate",
                f"{path} names {names!r}, this device is {cn!r}: "
                "under the broker ACL template it reaches another "
                "device's topics, or none",
                "enrol again with the right [device] store and id",
            )
        )
    auto = renewal_on(cfg)
    window = dt.timedelta(days=cfg.mqtt.renew_before_days) if auto else RENEW_BEFORE
    renews = ends - window
    if left < window:
        if auto:
            csr, back = renewal_topics(cfg)
            asked = pending(cfg.mqtt.key_file)
            since = (f"asked on {dt.datetime.fromtimestamp(asked.stat().st_mtime, dt.UTC):%Y-%m-%d}"
                     if asked.exists() else "not asked yet: is the agent connected?")
            found.append(warn(
                "certificate", f"{path} expires on {when}, in {left.days} days; the agent "
                f"renews it since {renews:%Y-%m-%d} ({since})",
                f"the fleet's CA must answer the request on {csr} with the certificate on "
                f"{back}; 'journalctl -u o2o-edge | grep certificate' says what happened; "
                f"or {RENEW}"))
        else:
            found.append(warn("certificate", f"{path} expires on {when}, in {left.days} days",
                              RENEW))
    if auto and (stuck := _unwritable(Path(cfg.mqtt.key_file).parent)):
        found.append(warn(
            "certificate", f"the agent renews it from {renews:%Y-%m-%d} but cannot write "
            f"{stuck}, where the key and certificate are: it will not renew",
            "enrol into /var/lib/o2o-edge/tls (install.sh makes it the agent's): 'o2o-edge "
            "enroll request --dir /var/lib/o2o-edge/tls', then set [mqtt] cert_file and "
            "key_file there"))
    plan = (f"the agent renews it on {renews:%Y-%m-%d}" if auto else
            "renewed by hand ([mqtt] renew_before_days = 0 or no mqtts://)")
    return found or [ok("certificate", f"{path} for {cn}, expires on {when} (in {left.days} "
                                       f"days); {plan}")]
