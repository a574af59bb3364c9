"""What a scenario puts in front of the agent's touchpoints: the store floor's radio (beacons
and shoppers' phones), the tags held on the reader and the codes shown to the camera."""

from __future__ import annotations

from typing import Any

from drivers.ble.models import EddystoneUID, IBeacon
from drivers.nfc.ndef_encode import smartposter_message, uri_message
from simulators.camera_files import blank
from simulators.floor import FixedBeacon, StoreFloor, Walker
from simulators.nfc_tags import EmulatedTag, felica, ntag213, type4a
from simulators.scenario.model import Scenario, Tag


def build_floor(sc: Scenario) -> StoreFloor:
    """Beacons and shoppers as radio. Intervals are in store time and chosen so the agent
    hears ~10 frames/s per beacon and ~20/s per phone in wall time."""
    beacons = []
    for i, b in enumerate(sc.beacons):
        lo, hi = b.battery_mv

        def curve(t: float, lo: int = lo, hi: int = hi, length: float = sc.length_s) -> int:
            return round(lo + (hi - lo) * min(1.0, max(0.0, t / length)))

        beacons.append(FixedBeacon(b.name, f"C3:00:00:00:00:{i + 1:02X}",
                                   EddystoneUID(b.namespace, b.instance, -20), b.x, b.y,
                                   interval_s=sc.speed / 10, tx_power_1m=-59, tlm_every=5,
                                   battery_mv=curve))
    where = {b.name: (b.x, b.y) for b in sc.beacons}
    walkers = []
    for n, s in enumerate(sc.shoppers):
        stops = len(s.walk)
        span = s.minutes * 60
        if stops > 1:  # from beacon to beacon, half a metre beside each
            path = [(s.at + span * k / (stops - 1), where[name][0] + 0.5, where[name][1])
                    for k, name in enumerate(s.walk)]
        else:
            path = [(s.at, *where[s.walk[0]]), (s.at + span, *where[s.walk[0]])]
        app = IBeacon(sc.app_uuid, 1, s.app, -59) if s.app else None
        walkers.append(Walker(f"shopper-{n}", path, app=app, interval_s=sc.speed / 20,
                              rotate_s=900, seed=n))
    return StoreFloor(receiver=(0.0, 0.0), beacons=beacons, walkers=walkers, drop_rate=0.05,
                      noise_db=2.0, seed=7)


def tag_for(tag: Tag) -> EmulatedTag:
    uid = bytes.fromhex(tag.uid)
    ndef = b""
    if tag.uri and tag.title:
        ndef = smartposter_message(tag.uri, {"en": tag.title})
    elif tag.uri:
        ndef = uri_message(tag.uri)
    if tag.type == "felica":
        return felica(uid, ndef)
    if tag.type == "type4a":
        return type4a(uid, ndef)
    return ntag213(uid, ndef)


def code_frame(text: str) -> Any:
    """A 640x480 camera frame with `text` as a QR code held in the middle."""
    import cv2
    import numpy as np
    import qrcode

    qr = qrcode.QRCode(border=4, box_size=6)
    qr.add_data(text)
    img = qr.make_image(fill_color="black", back_color="white").get_image().convert("L")
    side = 360
    code = cv2.resize(np.array(img, dtype=np.uint8), (side, side),
                      interpolation=cv2.INTER_NEAREST)
    frame = blank((640, 480))
    y, x = (480 - side) // 2, (640 - side) // 2
    frame[y:y + side, x:x + side] = cv2.cvtColor(code, cv2.COLOR_GRAY2BGR)
    return frame
