"""A short store hour with staff in it, on the real agent and kiosk and a private mosquitto:
one shopper's call answered by Anna (the kiosk says she is coming), another left with nobody
answering, which the agent escalates after the stage's short [staff] escalate_after_s, and a
shopper arriving for an appointment, checked in on the kiosk's keypad and greeted by Ben; the
collector check covers the alerts, the acks and the escalation upstream."""

from __future__ import annotations

from pathlib import Path

from simulators.scenario.model import Appointment, Call, load
from simulators.scenario.runner import Runner
from tests.conftest import need

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"


def test_a_call_answered_and_one_left_to_escalate_reach_the_collector(tmp_path: Path) -> None:
    need("dbus-daemon", "dbus")
    need("mosquitto", "mosquitto")
    sc = load(SCENARIOS / "short_visit.toml")
    sc.calls += [Call(10 * 60, "Anna", 40.0), Call(20 * 60)]
    # last at the counter: the kiosk is still hers when Ben answers
    sc.appointments += [Appointment(50 * 60, "Ben", 60.0, "P-7", "FTG123", "Eva", "fitting")]
    log: list[str] = []
    out = Runner(sc, tmp_path / "store", "mosquitto", progress=log.append).run()
    assert not out.problems, "\n".join([*out.problems, "--- what happened:", *log])
    assert (out.expected.calls, dict(out.expected.acks), out.expected.escalated) == \
        (2, {"Anna": 1}, 1)
    said = "\n".join(log)
    assert "Anna from our team answers the call after 40 s" in said
    assert "Eva arrives for their fitting appointment and checks in" in said
    assert "Ben from our team answers Eva's appointment after 60 s" in said
    assert "the kiosk did not say so" not in said, said
    acked = {a["kind"]: a["by"] for a in out.received.of("o2o.staff.alert.acknowledged")}
    assert acked == {"call-staff": "Anna", "appointment": "Ben"}
    [arrived] = [d for d in out.received.of("o2o.kiosk.checkin")
                 if d["kind"] == "appointment"]
    assert {k: arrived[k] for k in ("kind", "outcome", "via", "appointment")} == {
        "kind": "appointment", "outcome": "appointment.ok", "via": "code", "appointment": "P-7"}
    assert "Eva" not in str(out.received.events)  # the first name stays in the store
