"""The staff view's own settings: off unless enabled, where it listens, the PIN and token
tables; a mistake is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.errors import KioskError
from kiosk.pin import hash_pin
from kiosk.staffview.guard import Buckets, is_loopback
from kiosk.staffview.settings import DEFAULT_LISTEN, load_staff_view, parse


def test_without_a_file_the_view_is_off_on_loopback(tmp_path: Path) -> None:
    s = load_staff_view(env={})
    assert (s.enabled, s.listen, s.staff, s.devices) == (False, (DEFAULT_LISTEN,), {}, {})


def test_a_file_with_staff_and_listen(tmp_path: Path) -> None:
    f = tmp_path / "staff-view.toml"
    f.write_text(f'[staff_view]\nenabled = true\nlisten = ["127.0.0.2:9000"]\n'
                 f'[staff_view.staff]\nAnna = "{hash_pin("1234")}"\n', encoding="utf-8")
    s = load_staff_view(str(f))
    assert s.enabled and s.listen == ("127.0.0.2:9000",) and list(s.staff) == ["Anna"]


@pytest.mark.parametrize(("doc", "says"), [
    ({"listen": ["nowhere"]}, "listen"),
    ({"tls_cert": "/c.pem"}, "tls_cert and tls_key"),
    ({"session_min": 0}, "session_min"),
    ({"staff": {"Anna": "1234"}}, "staff.Anna"),
    ({"devices": {"a b": "sha256$x"}}, "devices"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"bus_token": 12}, "bus_token"),
    ({"bus_token": "short"}, "bus_token"),
    ({"bus_token": "a token with spaces and more than sixteen"}, "bus_token"),
])
def test_a_mistake_is_one_line_naming_the_key(doc: dict[str, object], says: str) -> None:
    with pytest.raises(KioskError) as info:
        parse({"staff_view": doc}, "f.toml")
    assert says in str(info.value) and "\n" not in str(info.value)


def test_only_the_usual_loopback_addresses_count_as_this_device() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("127.0.0.2") and not is_loopback("192.168.1.5")
    assert not is_loopback(None) and not is_loopback("garbage")


def test_a_bucket_lets_a_burst_through_then_paces() -> None:
    now = [0.0]
    b = Buckets(rate=2.0, burst=3.0, clock=lambda: now[0])
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a") == pytest.approx(0.5)
    assert b.take("b") == 0.0  # another client has its own
    now[0] += 0.5
    assert b.take("a") == 0.0
