"""Doctor's verdict on the running agent's uplink, from its status: whether events leave.

A connected uplink is not a working one: a broker that refuses every batch (an ACL without
the events topic) or never acknowledges keeps everything in the outbox while the link looks
fine. Pure over the status dictionary, so each rule is tested without an agent.
"""

from __future__ import annotations

from typing import Final

from agent.contracts.status import Status
from agent.doctor import Finding, fail, ok, warn

# events waiting this long with no acknowledgement for as long, on a connection this old:
# the broker takes nothing (a healthy uplink drains within seconds; ack_timeout_s is 60 s)
STALL_S: Final = 300.0


def _ago(now: float, t: float | None) -> str:
    return "never" if t is None else f"{max(0.0, now - t):,.0f} s ago"


def uplink_finding(st: Status, now: float) -> Finding:
    """The agent check's finding from `o2o-edge status --json`'s dictionary at time `now`."""
    up = st.get("uplink", {})
    depth = int(st.get("outbox", {}).get("depth") or 0)
    oldest = st.get("outbox", {}).get("oldest_age_s")
    state = up.get("state", "stopped")
    pid = st.get("agent", {}).get("pid")
    head = f"running (pid {pid}), uplink {state}"
    last_ack, refused_at = up.get("last_ack"), up.get("last_refusal_at")
    why = up.get("last_refusal") or up.get("last_error") or ""
    # refused since the last ack, connected or not (a broker may also close the connection
    # after refusing: mosquitto does with max_queued_messages 0)
    if depth and refused_at is not None and (last_ack is None or refused_at > last_ack):
        return fail("agent", f"{head} but the broker refuses our events: {depth} waiting, "
                    f"last acknowledged {_ago(now, last_ack)} ({why or up.get('refusals')})",
                    "see the broker's reason: for not_authorized let this device publish to "
                    "o2o/v1/STORE/DEVICE/events in the broker's ACL; `o2o-edge status` shows "
                    "the refusals")
    if depth and state == "connected":
        since = up.get("connected_since")
        stalled = (oldest is not None and oldest > STALL_S and since is not None
                   and now - since > STALL_S
                   and (last_ack is None or now - last_ack > STALL_S))
        if stalled:
            return fail("agent", f"{head} but nothing was acknowledged for {STALL_S:.0f} s: "
                        f"{depth} events waiting, the oldest {oldest:,.0f} s old",
                        "check the broker's log and that it accepts this device's events "
                        "topic; `o2o-edge status` shows the uplink's last error")
    if depth and state not in ("connected", "stopped", "disabled"):
        return warn("agent", f"{head} with {depth} events waiting"
                    + (f" ({up.get('last_error')})" if up.get("last_error") else ""),
                    "check the broker and the network; events are kept and sent on reconnect")
    return ok("agent", head)
