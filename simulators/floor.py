"""A store floor: where the Pi listens, where beacons hang, who walks where, and what the
radio makes of it (log-distance path loss, shadowing noise, lost packets).

`StoreFloor.adverts(t0, t1)` yields what the Pi would hear, in time order, as capture
`Advert`s; `truth()` says what really happened (who was in the store when), so a test can
measure how well presence detection follows it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from drivers.ble.capture import Advert
from drivers.ble.models import Beacon, EddystoneTLM, IBeacon
from simulators.ble_frames import encode

# a phone's "nearby" frame: Apple manufacturer data that is not a beacon
_NOT_A_BEACON: tuple[dict[int, bytes], dict[str, bytes]] = (
    {76: b"\x10\x05\x03\x1c\x0b\x1e\x0f"}, {})


@dataclass
class FixedBeacon:
    name: str
    address: str
    frame: Beacon
    x: float
    y: float
    interval_s: float = 1.0
    tx_power_1m: int = -59
    # Eddystone beacons interleave telemetry: every `tlm_every`-th frame is a TLM frame
    # reporting `battery_mv(t)` (0: no telemetry)
    tlm_every: int = 0
    battery_mv: Callable[[float], int] | None = None

    def frame_at(self, t: float, n: int) -> Beacon:
        if self.tlm_every and n % self.tlm_every == self.tlm_every - 1:
            mv = self.battery_mv(t) if self.battery_mv is not None else 3000
            return EddystoneTLM(mv, 21.5, n, max(0.0, t))
        return self.frame


@dataclass
class Walker:
    """Someone walking through the store along waypoints (t, x, y); outside them, gone.

    `app` set: the opted-in app advertising that iBeacon. Otherwise an anonymous phone whose
    address rotates every `rotate_s` (as phones do) and which advertises no beacon frame."""

    name: str
    path: list[tuple[float, float, float]]
    app: IBeacon | None = None
    interval_s: float = 1.0
    tx_power_1m: int = -59
    rotate_s: float = 900.0
    seed: int = 0
    _addresses: dict[int, str] = field(default_factory=dict)

    @property
    def enters(self) -> float:
        return self.path[0][0]

    @property
    def leaves(self) -> float:
        return self.path[-1][0]

    def position(self, t: float) -> tuple[float, float] | None:
        if not self.path or t < self.enters or t > self.leaves:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(self.path, self.path[1:], strict=False):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return self.path[-1][1], self.path[-1][2]

    def address(self, t: float) -> str:
        # the app's identity is its advertised iBeacon; a phone's address rotates
        slot = 0 if self.app is not None else int(t // self.rotate_s)
        if slot not in self._addresses:
            rng = random.Random(f"{self.name}:{self.seed}:{slot}")  # noqa: S311 - simulation
            octets = [rng.randrange(256) for _ in range(6)]
            octets[0] = (octets[0] & 0x3F) | 0x40  # resolvable private address
            self._addresses[slot] = ":".join(f"{o:02X}" for o in octets)
        return self._addresses[slot]


@dataclass
class StoreFloor:
    receiver: tuple[float, float] = (0.0, 0.0)
    path_loss_exponent: float = 2.2
    noise_db: float = 3.0
    drop_rate: float = 0.1
    min_rssi: int = -100
    beacons: list[FixedBeacon] = field(default_factory=list)
    walkers: list[Walker] = field(default_factory=list)
    seed: int = 1

    def rssi(self, rng: random.Random, tx_1m: int, x: float, y: float) -> int | None:
        d = max(0.1, math.dist((x, y), self.receiver))
        value = tx_1m - 10 * self.path_loss_exponent * math.log10(d) + rng.gauss(0, self.noise_db)
        if value < self.min_rssi or rng.random() < self.drop_rate:
            return None  # too weak, or the packet was lost
        return round(max(-127, min(20, value)))

    def adverts(self, t0: float, t1: float) -> Iterator[Advert]:
        """Everything the receiver hears between t0 and t1, in time order."""
        rng = random.Random(self.seed)  # noqa: S311 - simulation, reproducible by seed
        heap: list[tuple[float, int]] = []
        sources: list[FixedBeacon | Walker] = [*self.beacons, *self.walkers]
        sent = [0] * len(sources)
        for i, src in enumerate(sources):
            start = max(t0, src.enters) if isinstance(src, Walker) else t0
            heapq.heappush(heap, (start + rng.uniform(0, src.interval_s), i))
        while heap:
            t, i = heapq.heappop(heap)
            if t > t1:
                break
            src = sources[i]
            jitter = rng.uniform(0, 0.01)  # BLE adds up to 10 ms to every interval
            if isinstance(src, FixedBeacon):
                heapq.heappush(heap, (t + src.interval_s + jitter, i))
                rssi = self.rssi(rng, src.tx_power_1m, src.x, src.y)
                sent[i] += 1
                if rssi is not None:
                    m, s = encode(src.frame_at(t, sent[i]))
                    yield Advert(t, src.address, rssi, None, None, m, s, list(s))
                continue
            if t > src.leaves:
                continue  # gone for good
            heapq.heappush(heap, (t + src.interval_s + jitter, i))
            pos = src.position(t)
            if pos is None:
                continue
            rssi = self.rssi(rng, src.tx_power_1m, *pos)
            if rssi is None:
                continue
            m, s = encode(src.app) if src.app is not None else _NOT_A_BEACON
            yield Advert(t, src.address(t), rssi, None, None, m, s, list(s))

    def distance(self, walker: Walker, t: float) -> float | None:
        """How far `walker` really is from the receiver at `t` (None: not in the store)."""
        pos = walker.position(t)
        return None if pos is None else math.dist(pos, self.receiver)

    def truth(self) -> dict[str, tuple[float, float]]:
        """App users' true (enter, leave) times, keyed as the agent keys them."""
        return {f"app:{w.app.uuid}:{w.app.major}:{w.app.minor}": (w.enters, w.leaves)
                for w in self.walkers if w.app is not None}
