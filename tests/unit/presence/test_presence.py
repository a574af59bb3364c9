from __future__ import annotations

import json
import random
import statistics

import pytest

from agent.presence.anonymous import DailySalt, FootfallCounter
from agent.presence.rssi import OneEuroFilter, RssiSmoother, distance_m, distance_with_uncertainty
from agent.presence.tracker import PresenceConfig, PresenceTracker
from agent.presence.zones import FAR, IMMEDIATE, NEAR, ZoneClassifier


def test_one_euro_smooths_noise_and_follows_a_step() -> None:
    rng = random.Random(3)
    f = OneEuroFilter()  # defaults tuned for RSSI in dB at ~10 Hz
    raw = [-70 + rng.gauss(0, 4) for _ in range(100)] + [-55 + rng.gauss(0, 4) for _ in range(100)]
    out = [f(i * 0.1, x) for i, x in enumerate(raw)]
    # noise on the flat part shrinks a lot
    assert statistics.pstdev(out[50:100]) < statistics.pstdev(raw[50:100]) / 2
    # and the filter reaches the new level within a few seconds of the step
    assert abs(statistics.mean(out[170:200]) - (-55)) < 2.5


def test_outliers_are_rejected_but_a_lasting_change_is_accepted() -> None:
    s = RssiSmoother()
    for i in range(10):
        s.update(i * 0.1, -70)
    spike = s.update(1.0, -30)
    assert spike.rejected and abs(spike.rssi + 70) < 0.5
    for i in range(11, 30):
        last = s.update(i * 0.1, -50)
    assert not last.rejected and last.rssi > -60


def test_log_distance_model() -> None:
    assert distance_m(-59, -59, 2.0) == pytest.approx(1.0)
    assert distance_m(-79, -59, 2.0) == pytest.approx(10.0)
    assert distance_m(-89, -59, 3.0) == pytest.approx(10.0)
    d, low, high = distance_with_uncertainty(-69, 3.0, -59, 2.0)
    assert low < d < high and d == pytest.approx(10 ** 0.5)


def test_zone_hysteresis_does_not_flap_on_a_boundary() -> None:
    z = ZoneClassifier(immediate_m=0.5, near_m=3.0, margin=0.2, hold_s=0)
    assert z.update(2.0) == NEAR
    # wobbling around 3 m stays near until it is clearly beyond
    assert [z.update(d) for d in (2.9, 3.1, 2.95, 3.3, 3.7)] == [NEAR] * 4 + [FAR]
    assert [z.update(d) for d in (2.9, 2.6, 2.3)] == [FAR, FAR, NEAR]
    assert z.update(0.3) == IMMEDIATE
    assert z.update(0.55) == IMMEDIATE
    assert z.update(5.0) == FAR
    with pytest.raises(ValueError):
        ZoneClassifier(immediate_m=3, near_m=1)


def test_a_new_zone_must_hold_before_it_is_taken() -> None:
    z = ZoneClassifier(immediate_m=0.5, near_m=3.0, margin=0.2, hold_s=3.0)
    assert z.update(2.0, 0.0) == NEAR
    # beyond the margin, but not for long enough: a spike of noise
    assert [z.update(d, t) for d, t in ((4.0, 1.0), (4.0, 2.0), (2.0, 3.0))] == [NEAR] * 3
    # the count starts again after the dip and the zone changes once it has held 3 s
    assert [z.update(4.0, t) for t in (4.0, 5.0, 6.0, 7.0)] == [NEAR, NEAR, NEAR, FAR]
    assert z.update(3.4, 8.0) == FAR  # inside the margin: staying


def test_enter_zone_exit_with_dwell_and_learned_interval() -> None:
    tr = PresenceTracker(PresenceConfig(min_exit_s=3.0, interval_factor=5.0))
    events = []
    t = 0.0
    while t < 20.0:  # a beacon advertising every 0.5 s, 2 m away (tx -59 @1m)
        events += tr.sighting(t, "beacon-1", -65, -59)
        events += tr.tick(t)
        t += 0.5
    assert [e.kind for e in events] == ["enter"]
    assert tr.exit_after("beacon-1") == pytest.approx(3.0)  # 5 x 0.5 s < min 3 s
    assert events[0].data["zone"] == NEAR
    assert tr.tick(19.5 + 2.9) == []
    (gone,) = tr.tick(19.5 + 3.1)
    assert gone.kind == "exit" and gone.data["dwell_s"] == 19.5 and gone.time == 19.5
    assert len(tr) == 0


def test_slow_beacon_gets_a_longer_exit_time() -> None:
    tr = PresenceTracker(PresenceConfig(min_exit_s=3.0, interval_factor=5.0))
    for i in range(20):
        tr.sighting(i * 2.0, "slow", -70, -59)
    assert tr.exit_after("slow") > 8.0  # learned ~2 s interval x 5
    assert tr.tick(38.0 + 5.0) == []


def test_walking_closer_reports_zone_changes() -> None:
    tr = PresenceTracker()
    events = []
    for i in range(70):  # from ~10 m to ~0.3 m, then standing there for 5 s
        rssi = -79 + min(i, 59) * 0.5
        events += tr.sighting(i * 0.5, "app-7", round(rssi), -59)
    kinds = [(e.kind, e.data["zone"]) for e in events]
    assert kinds[0] == ("enter", FAR)
    assert ("zone", NEAR) in kinds and kinds[-1] == ("zone", IMMEDIATE)


def test_pseudonyms_stable_within_a_day_and_unlinkable_across_days() -> None:
    now = [1_795_000_000.0]
    salt = DailySalt(clock=lambda: now[0])
    a = salt.pseudonym("AA:BB:CC:DD:EE:FF")
    assert a == salt.pseudonym("aa:bb:cc:dd:ee:ff")
    assert a != salt.pseudonym("AA:BB:CC:DD:EE:00")
    now[0] += 86400
    assert salt.pseudonym("AA:BB:CC:DD:EE:FF") != a
    assert len(a) == 16 and int(a, 16) >= 0  # 64-bit hex, no trace of the address
    assert "aabbccddeeff" not in a


def test_footfall_counts_devices_per_minute_without_addresses() -> None:
    salt = DailySalt(clock=lambda: 1_795_000_000.0)
    ff = FootfallCounter(salt, leave_after_s=60)
    macs = [f"AA:BB:CC:00:00:{i:02X}" for i in range(5)]
    summary = None
    for s in range(0, 60, 5):
        for m in macs:
            assert ff.sighting(1_795_000_020.0 + s, m) is None or s == 0
    for m in macs[:2]:
        summary = ff.sighting(1_795_000_020.0 + 60, m) or summary
    assert summary is not None and summary["devices"] == 5
    assert "AA:BB" not in json.dumps(summary)
    assert ff.close_visits(1_795_000_020.0 + 200) == 5
    assert sum(ff.dwell_histogram.values()) == 5


def test_fast_advertisers_are_heard_every_time_but_sampled_four_times_a_second() -> None:
    tr = PresenceTracker(PresenceConfig(min_exit_s=0.5, interval_factor=5.0))
    for i in range(30):  # 10 Hz for 3 s
        tr.sighting(i * 0.1, "beacon", -60, -59)
    track = tr._tracks["beacon"]
    assert track.interval == pytest.approx(0.1, abs=0.02)  # learned from every advert
    assert track.last_sample == pytest.approx(2.7)  # every third advert: 0, 0.3, ... 2.7 s
    (gone,) = tr.tick(3.5)
    assert gone.kind == "exit" and gone.data["sightings"] == 30
