"""The emulator's Type A card: it answers only REQA/WUPA until selected, starts selection
again on any REQA, and takes the first command after selection as its activation."""

from __future__ import annotations

import pytest

from simulators.nfc_type_a import HLTA, REQA, WUPA, TypeACard, cascade_levels

UID7 = bytes.fromhex("04a1b2c3d4e5f6")


def select(card: TypeACard) -> list[bytes | None]:
    """A reader's full anticollision for a 7-byte UID; the card's answers in order."""
    out = [card.step(REQA)[0]]
    for cmd, level in zip((0x93, 0x95), card.levels, strict=True):
        out.append(card.step(bytes([cmd, 0x20]))[0])
        out.append(card.step(bytes([cmd, 0x70]) + level)[0])
    return out


def test_cascade_levels_carry_the_cascade_tag_and_check_byte() -> None:
    one, two = cascade_levels(UID7)
    assert one == bytes.fromhex("8804a1b2") + bytes([0x88 ^ 0x04 ^ 0xA1 ^ 0xB2])
    assert two == bytes.fromhex("c3d4e5f6") + bytes([0xC3 ^ 0xD4 ^ 0xE5 ^ 0xF6])
    assert len(cascade_levels(bytes(4))) == 1 and len(cascade_levels(bytes(10))) == 3
    with pytest.raises(ValueError, match="4, 7 or 10"):
        cascade_levels(bytes(5))


def test_selection_then_the_first_command_activates() -> None:
    card = TypeACard(b"\x44\x00", UID7, 0x00)
    answers = select(card)
    assert answers[0] == b"\x44\x00"
    assert answers[2] == b"\x04" and answers[4] == b"\x00"  # UID not complete, then complete
    assert card.step(b"\x30\x00") == (None, True)


def test_a_command_before_selection_is_not_an_activation() -> None:
    card = TypeACard(b"\x44\x00", UID7, 0x00)
    assert card.step(b"\x30\x04") == (None, False)  # left over from an earlier session
    assert card.step(b"\x93\x20") == (None, False)  # no SDD before REQA either
    assert card.step(REQA) == (b"\x44\x00", False)
    assert card.step(b"\x30\x04") == (None, False)  # in READY: back to IDLE, silent
    assert card.step(b"\x93\x20") == (None, False)


def test_reqa_in_the_middle_starts_selection_over() -> None:
    card = TypeACard(b"\x44\x00", UID7, 0x20)
    card.step(REQA)
    card.step(b"\x93\x20")
    assert select(card)[-1] == b"\x20"  # a Type 4 SAK once the UID is complete
    assert card.step(b"\xe0\x80")[1] is True


def test_a_halted_card_wakes_only_on_wupa_or_field_off() -> None:
    card = TypeACard(b"\x44\x00", UID7, 0x00)
    select(card)
    assert card.step(HLTA) == (None, False)
    assert card.step(REQA) == (None, False)
    assert card.step(WUPA) == (b"\x44\x00", False)
    select(card)
    card.step(HLTA)
    card.field_off()
    assert card.step(REQA) == (b"\x44\x00", False)
