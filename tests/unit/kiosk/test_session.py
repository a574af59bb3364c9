"""What a shopper's session asks the survey after: a staff call before browsing, browsing
only without a check-in (whose result asks itself), once, and afresh for the next shopper."""

from __future__ import annotations

import random

from kiosk.session import ShopperSession


def test_the_survey_is_due_after_a_call_or_browsing_once_a_session() -> None:
    s = ShopperSession(random.Random(1))
    assert s.survey_due() is None  # nothing done yet: nothing to ask about
    s.viewed = True
    assert s.survey_due() == "browse"
    s.called_staff = True
    assert s.survey_due() == "staff-call"
    s.surveyed = True
    assert s.survey_due() is None
    s.reset()
    assert s.survey_due() is None and not s.viewed and not s.called_staff
    s.viewed = s.checked_in = True  # the check-in's result offers the survey itself
    assert s.survey_due() is None
