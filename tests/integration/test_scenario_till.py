"""A scenario with the till: the scenario runner posts its [[sale]] receipts into the agent's
tills endpoint through the till simulator while an app shopper who scanned a campaign's
offer code at the kiosk is in the store; the collector on a private Mosquitto must hold each
sale once (the resent receipt too) linked to that shopper's visit with the offer's campaign,
the offer redeemed once and its second use refused."""

from __future__ import annotations

from pathlib import Path

from simulators.scenario.model import load
from simulators.scenario.runner import Runner
from tests.conftest import need

SCENARIO = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "till_sale.toml"


def test_sales_at_the_till_reach_the_collector_once_with_their_visit(tmp_path: Path) -> None:
    need("dbus-daemon", "dbus")
    need("mosquitto", "mosquitto")
    log: list[str] = []
    out = Runner(load(SCENARIO), tmp_path / "store", "mosquitto", progress=log.append).run()
    assert not out.problems, "\n".join([*out.problems, "--- what happened:", *log])
    # the runner's check covered these; what a store manager reads off the collector
    sales = {d["receipt"]: d for d in out.received.of("o2o.pos.sale")}
    assert sorted(sales) == ["R-1001", "R-1002"]
    visit = next(d["visit"] for d in out.received.of("o2o.ble.presence")
                 if d["id"].endswith(":1:7") and d.get("visit"))
    assert (sales["R-1001"]["visit"], sales["R-1001"]["campaign"]) == (visit, "spring-coffee")
    assert "campaign" not in sales["R-1002"]  # its offer was refused: used
    assert [d["receipt"] for d in out.received.of("o2o.offer.redeemed")] == ["R-1001"]
    assert [d["reason"] for d in out.received.of("o2o.offer.refused")] == ["offer-used"]
    assert any("sends it again: 200" in line for line in log), log
    assert any("C-1001 refused (offer-used)" in line for line in log), log
