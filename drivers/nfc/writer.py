"""Writing an NDEF message to a tag for staff: checked before, read back after.

Nothing is written to a tag that cannot take the whole message (too small, read-only, no NDEF
data area) or, with `lock`, cannot be locked afterwards; each refusal says what to do. After
writing, the tag is read again and must hold exactly the message, decodable by our own
decoder; locking is checked the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from drivers.errors import DriverError, DriverReason
from drivers.nfc.ndef import NdefError, decode_message
from drivers.nfc.reader import DEFAULT_TARGETS, TagRead, open_reader, read_tag

# tag types nfcpy can make read-only with lock bits
LOCKABLE = ("Type1Tag", "Type2Tag")


@dataclass(frozen=True)
class Written:
    uid: bytes
    product: str
    message_bytes: int
    capacity: int
    locked: bool


def _fail(reason: DriverReason, text: str) -> DriverError:
    return DriverError(reason, text)


def check_writable(read: TagRead, message: bytes, lock: bool) -> None:
    """Refuse, before anything is written, a tag that cannot take the message."""
    if read.error:
        raise _fail(DriverReason.WRITE_FAILED, "the tag moved away while it was read: hold it "
                    "still on the reader and try again")
    if read.ndef is None:
        raise _fail(DriverReason.TAG_NOT_NDEF, f"this {read.product} has no NDEF data area "
                    "(a bank or transit card, or a blank tag that needs formatting): use an "
                    "NFC Forum tag such as an NTAG213/215/216")
    if not read.writeable:
        raise _fail(DriverReason.TAG_READ_ONLY, f"this {read.product} is read-only (locked): "
                    "nothing was written; use a new tag")
    if len(message) > read.capacity:
        raise _fail(DriverReason.TAG_TOO_SMALL, f"the message needs {len(message)} bytes but "
                    f"this {read.product} holds {read.capacity}: nothing was written; shorten "
                    "the link or title, or use a bigger tag (NTAG215: 496, NTAG216: 868)")
    if lock and read.tag_type not in LOCKABLE:
        raise _fail(DriverReason.CANNOT_LOCK, f"this {read.product} ({read.tag_type}) cannot "
                    "be locked by o2o-edge: nothing was written; leave out --lock or use an "
                    "NTAG/Ultralight tag")


def write_to_tag(tag: Any, read: TagRead, message: bytes, lock: bool) -> Written:
    import nfc.clf
    import nfc.tag

    check_writable(read, message, lock)
    try:
        ndef = tag.ndef
        ndef.octets = message
        # has_changed reads the tag again and compares with what was just written
        if ndef.has_changed or bytes(ndef.octets) != message:
            raise _fail(DriverReason.WRITE_FAILED, "the tag does not read back what was "
                        "written: write it again, or use another tag")
        decode_message(bytes(ndef.octets))
        locked = False
        if lock:
            if tag.protect() is not True:
                raise _fail(DriverReason.CANNOT_LOCK, "the message was written and verified, "
                            "but locking failed: the tag stays writable; try again")
            after = tag.ndef
            locked = after is not None and not after.is_writeable
            if not locked:
                raise _fail(DriverReason.CANNOT_LOCK, "the tag still reports itself writable "
                            "after locking: treat it as unlocked")
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
        raise _fail(DriverReason.WRITE_FAILED, f"the tag stopped answering during the write "
                    f"({exc}): hold it still and write it again") from None
    except NdefError as exc:
        raise _fail(DriverReason.WRITE_FAILED, f"what the tag holds now does not decode: {exc}") \
            from None
    return Written(read.uid, read.product, len(message), read.capacity, locked)


def wait_for_tag(clf: Any, targets: tuple[str, ...], wait_s: float) -> tuple[Any, TagRead]:
    import nfc.clf

    remote = [nfc.clf.RemoteTarget(t) for t in targets]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        target = clf.sense(*remote, iterations=1)
        if target is not None:
            found = read_tag(clf, target)
            if found is not None:
                return found
        time.sleep(0.05)
    raise _fail(DriverReason.NO_TAG, f"no tag on the reader within {wait_s:g} s: put one on it "
                "and run the command again")


def write_message(path: str, message: bytes, lock: bool = False, wait_s: float = 10.0,
                  targets: tuple[str, ...] = DEFAULT_TARGETS) -> Written:
    clf = open_reader(path)
    try:
        tag, read = wait_for_tag(clf, targets, wait_s)
        return write_to_tag(tag, read, message, lock)
    finally:
        clf.close()
