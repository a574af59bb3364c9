"""Reader paths nfcpy cannot even parse are the operator's mistake: the driver's own error
(NO_READER) with what to set, never a ValueError from inside nfcpy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from drivers.errors import DriverError, DriverReason
from drivers.nfc.reader import NfcpyReader, open_reader


@pytest.mark.parametrize("path", ["udp:127.0.0.1:1", "udp:127.0.0.1:80", "udp:localhost:x",
                                  "udp:127.0.0.1:1.5", "udp:" + "a" * 300 + ":5000", ""])
def test_a_path_nfcpy_cannot_parse_is_a_driver_error_saying_what_to_set(path: str) -> None:
    with pytest.raises(DriverError) as caught:
        open_reader(path)
    assert caught.value.reason is DriverReason.NO_READER
    text = str(caught.value)
    assert "[nfc] reader" in text and "udp:HOST:PORT" in text and "\n" not in text
    assert len(text) < 600  # a 300-character host is shown by its start


def test_a_port_named_in_etc_services_is_explained() -> None:
    with pytest.raises(DriverError, match="/etc/services"):
        open_reader("udp:127.0.0.1:1")  # nfcpy turned 1 into "tcpmux"


def test_the_reader_thread_reports_it_and_goes_on() -> None:
    reader = NfcpyReader("udp:127.0.0.1:1", backoff_min_s=0.05, backoff_max_s=0.2)
    events: list[Any] = []

    async def until_reported() -> None:
        task = asyncio.create_task(reader.run(events.append))
        deadline = time.monotonic() + 10
        while reader.state != "no-reader" and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not task.done(), "the reader's task ended instead of reporting and retrying"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(until_reported())
    st = reader.status()
    assert st["opens"] == 0 and events == []
    assert "is not one nfcpy can use" in st["recent_errors"][-1]
