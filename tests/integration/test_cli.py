"""The o2o-edge command line against a real agent process (uplink disabled: no broker)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.cli.main import main
from tests.conftest import CLI, ROOT, AgentProcess, need, wait_for, write_config


def cli(*args: str, stdin: str | None = None, timeout: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.toml", url="")


@pytest.fixture
def agent(cfg: Path, agent_factory: list[AgentProcess]) -> AgentProcess:
    a = AgentProcess(cfg)
    agent_factory.append(a)
    a.start()
    return a


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    res = cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("o2o-edge ")
    res = cli("run", "--help")
    assert res.returncode == 0 and "usage: o2o-edge run" in res.stdout
    # the other commands' help through the same main(), in this process: one process each
    # took 11 s of the loaded suite (2.7 s idle; 0.7 s now)
    for cmd in (["emit"], ["status"], ["tail"], ["outbox", "stats"],
                ["outbox", "export"], ["config", "check"], ["config", "show"], ["demo"],
                ["scenario"], ["soak"]):
        with pytest.raises(SystemExit) as done:
            main([*cmd, "--help"])
        assert done.value.code == 0, cmd
        assert f"usage: o2o-edge {' '.join(cmd)}" in capsys.readouterr().out, cmd


def test_config_check_reports_file_key_and_allowed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[outbox]\nmax_byts = 5\n')
    res = cli("config", "check", "--config", str(bad))
    assert res.returncode == 2
    assert str(bad) in res.stderr and "max_byts" in res.stderr and "max_bytes" in res.stderr
    assert "Traceback" not in res.stderr


def test_config_check_ok_and_show_masks(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.toml", url="mqtt://127.0.0.1:1883",
                        extra='username = "dev"\npassword = "s3cret-pass"\n')
    assert cli("config", "check", "--config", str(good)).returncode == 0
    shown = cli("config", "show", "--config", str(good))
    assert shown.returncode == 0
    assert "s3cret-pass" not in shown.stdout and 'username = "dev"' in shown.stdout


def test_config_check_names_every_problem_at_once_and_warns_of_stray_variables(
        tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[outbox]\nmax_byts = 5\n[kiosk]\nlanguage = "fr"\nidle_s = 2\n'
                   '[mqtt]\nprotocol = "4"\n')
    env = {"O2O_EDGE_DEVICE_STORE": "a b", "O2O_EDGE_MQTT_URLL": "mqtt://x:1"}
    res = cli("config", "check", "--config", str(bad), env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert all(line.startswith("o2o-edge config check: ") for line in lines), lines
    for said in ("'max_byts'; allowed keys:", "language = 'fr' is not allowed; use one of the "
                 "kiosk's languages: de, en, es", "idle_s = 2.0 is not allowed",
                 "[mqtt] protocol = '4'", "environment O2O_EDGE_DEVICE_STORE: [device] store",
                 "warning: environment O2O_EDGE_MQTT_URLL is not a setting and is ignored; "
                 "did you mean O2O_EDGE_MQTT_URL?"):
        assert sum(said in line for line in lines) == 1, (said, lines)
    assert lines[-1] == "o2o-edge config check: 5 problems; fix them and check again"
    as_json = json.loads(cli("config", "check", "--config", str(bad), "--json", env=env).stdout)
    assert not as_json["ok"] and len(as_json["problems"]) == 5
    assert as_json["warnings"] == ["environment O2O_EDGE_MQTT_URLL is not a setting and is "
                                   "ignored; did you mean O2O_EDGE_MQTT_URL?"]
    # a good file with a stray variable: OK, and the warning said
    good = write_config(tmp_path / "good.toml", url="")
    ok = cli("config", "check", "--config", str(good), env={"O2O_EDGE_KIOSK_LANGAUGE": "de"})
    assert ok.returncode == 0 and ok.stdout.startswith("configuration OK") and \
        "1 warning" in ok.stdout
    assert "did you mean O2O_EDGE_KIOSK_LANGUAGE?" in ok.stderr


def test_doctor_is_quiet_of_library_noise_and_counts_its_verdict(tmp_path: Path) -> None:
    # a camera that is not there: OpenCV prints its own warnings while the check opens it
    conf = write_config(tmp_path / "c.toml", url="",
                        extra='[qr]\nenabled = true\ncamera = "/dev/video9"\n')
    res = cli("doctor", "--config", str(conf), timeout=90)
    assert res.returncode == 1
    out = res.stdout + res.stderr
    assert "VIDEOIO" not in out and "[ WARN" not in out and "cap_v4l" not in out, out
    assert "FAIL  camera" in res.stdout
    findings = json.loads(cli("doctor", "--config", str(conf), "--json", timeout=90).stdout)
    levels = [f["level"] for f in findings["findings"]]
    fails, warns = levels.count("fail"), levels.count("warn")
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith(f"{fails} failure") and (not warns or f"{warns} warning" in last)


def test_missing_files_are_named_as_missing(tmp_path: Path) -> None:
    res = cli("qr", "make", "--pickup", "A-1", "--key", str(tmp_path / "nokey.pem"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"o2o-edge: {tmp_path / 'nokey.pem'}: no such file; give the " \
        "key file that 'o2o-edge qr keygen' wrote"
    conf = write_config(tmp_path / "c.toml", url="")
    res = cli("orders", "import", str(tmp_path / "orders.csv"), "--config", str(conf))
    assert res.returncode == 1 and "no such file" in res.stderr.lower()
    assert "UTF-8" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_json_order_with_neither_code_nor_name_is_refused(tmp_path: Path) -> None:
    conf = write_config(tmp_path / "c.toml", url="")
    orders = tmp_path / "orders.json"
    orders.write_text('{"orders": [{"order_id": "A-1", "code": "K7Q2M9"}, {"order_id": "A-2"}]}')
    res = cli("orders", "import", str(orders), "--config", str(conf), "--json")
    assert res.returncode == 1 and res.stdout == ""
    assert "orders 2: an order needs a code or a first_name" in res.stderr
    orders.write_text('{"orders": [{"order_id": "A-1", "code": "K7Q2M9"}]}')
    res = cli("orders", "import", str(orders), "--config", str(conf), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["imported"] == {"orders": 1}


def test_emit_without_agent_says_so(cfg: Path) -> None:
    res = cli("emit", "--config", str(cfg), "--type", "o2o.nfc.tap", "--data", "{}")
    assert res.returncode != 0
    assert "the agent is not running" in res.stderr and "Traceback" not in res.stderr


def test_emit_status_tail_export(cfg: Path, agent: AgentProcess, tmp_path: Path) -> None:
    assert stat.S_IMODE(agent.socket.stat().st_mode) == 0o660
    tail = subprocess.Popen([*CLI, "tail", "--config", str(cfg), "-n", "3", "--json"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    words = subprocess.Popen([*CLI, "tail", "--config", str(cfg), "-n", "3"],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    got: list[str] = []
    read: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(tail.stdout or []))
    reader.start()
    word_reader = threading.Thread(target=lambda: read.extend(words.stdout or []))
    word_reader.start()
    # make sure the subscriptions are in place before emitting: poll the agent's client count
    wait_for(lambda: agent.status()["bus"]["subscribers"] >= 2, 20, what="tails subscribed")
    one = cli("emit", "--config", str(cfg), "--type", "o2o.kiosk.checkin",
              "--data", '{"order": "A-17"}')
    assert one.returncode == 0, one.stderr
    event_id = one.stdout.strip()
    lines = "\n".join([json.dumps({"type": "o2o.nfc.tap", "data": {"i": 1}}),
                       "not json",
                       json.dumps({"type": "BAD TYPE", "data": {}}),
                       json.dumps({"type": "o2o.qr.scan", "data": {"i": 2}})])
    many = cli("emit", "--config", str(cfg), stdin=lines)
    assert many.returncode == 1
    assert len(many.stdout.split()) == 2
    assert "line 2: not JSON" in many.stderr and "line 3:" in many.stderr
    tail.wait(20)
    reader.join(5)
    assert tail.stdout is not None
    tail.stdout.close()
    tailed = [json.loads(x) for x in got]
    assert [e["type"] for e in tailed] == ["o2o.kiosk.checkin", "o2o.nfc.tap", "o2o.qr.scan"]
    assert tailed[0]["id"] == event_id and tailed[0]["data"] == {"order": "A-17"}
    # without --json: one line per event a person reads — time, seq, type, key fields
    words.wait(20)
    word_reader.join(5)
    assert words.stdout is not None
    words.stdout.close()
    assert len(read) == 3 and not any(line.lstrip().startswith("{") for line in read), read
    first = read[0].split()
    assert re.fullmatch(r"\d\d:\d\d:\d\d", first[0]) and first[1] == f"#{tailed[0]['seq']}"
    assert first[2:] == ["o2o.kiosk.checkin", "order=A-17"]
    assert read[1].split()[2:] == ["o2o.nfc.tap", "i=1"]

    human = cli("status", "--config", str(cfg))
    assert human.returncode == 0 and "outbox     depth=" in human.stdout
    # run outside systemd: no watchdog, said in words that fit (not "finished")
    watchdog = next(line for line in human.stdout.splitlines() if "watchdog" in line)
    assert "off (systemd's watchdog is not watching" in watchdog and "finished" not in watchdog
    st = json.loads(cli("status", "--config", str(cfg), "--json").stdout)
    assert st["uplink"]["state"] == "disabled"
    assert st["outbox"]["depth"] == 4  # three emitted plus the agent's own start event
    assert agent.stop() == 0
    assert not agent.socket.exists()

    stats = json.loads(cli("outbox", "stats", "--config", str(cfg), "--json").stdout)
    assert stats["depth"] == 4
    table = cli("outbox", "stats", "--config", str(cfg))
    assert table.returncode == 0 and "{" not in table.stdout, table.stdout
    rows = table.stdout.splitlines()
    assert "waiting    4 events" in rows and "dropped    none" in rows
    assert any(re.fullmatch(r"\s+9\s+2\s+check-ins, staff calls, agent reports", r)
               for r in rows), rows
    out = tmp_path / "export.jsonl"
    res = cli("outbox", "export", "--config", str(cfg), "-o", str(out))
    assert res.returncode == 0 and "exported 4 events" in res.stderr
    exported = [json.loads(x) for x in out.read_text().splitlines()]
    assert exported[0]["type"] in ("o2o.kiosk.checkin", "o2o.agent.started")
    assert {e["id"] for e in exported} >= {event_id}


def test_corrupt_outbox_at_start_is_quarantined(cfg: Path, agent_factory: list[AgentProcess],
                                               tmp_path: Path) -> None:
    # damaged past SQLite's header (a file that is no database at all is refused instead)
    (tmp_path / "outbox.db").write_bytes(b"SQLite format 3\x00" + b"\x00garbage" * 1000)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    st = agent.status()
    assert st["outbox"]["quarantined"] and "outbox.db.corrupt-" in st["outbox"]["quarantined"][0]
    assert "moved to" in st["outbox"]["last_error"]
    res = cli("emit", "--config", str(cfg), "--type", "o2o.nfc.tap", "--data", "{}")
    assert res.returncode == 0
    assert agent.stop() == 0


def test_second_agent_on_same_socket_refuses(cfg: Path, agent: AgentProcess) -> None:
    res = cli("run", "--config", str(cfg), timeout=30)
    assert res.returncode != 0 and "already serving" in res.stderr


def test_demo_without_a_broker_keeps_every_event_in_the_outbox() -> None:

    need("dbus-daemon", "dbus")
    scenario = ROOT / "simulators" / "scenarios" / "short_visit.toml"
    res = cli("demo", "--broker", "none", "--scenario", str(scenario), "--speed", "720",
              timeout=180)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    out = res.stdout
    assert "no broker here" in out and "the agent keeps every event in its outbox" in out
    assert "Bo checks in with the code on the phone; the kiosk says “Thanks, Bo" in out
    # the live view shows the outbox holding everything, and the check finds it all there
    kept = [int(line.split("outbox: ")[1].split()[0]) for line in out.splitlines()
            if "outbox: " in line and "(no broker to send them to)" in line]
    assert kept and kept[-1] > 0
    assert "  all as expected: every tap, code, check-in, survey and call" in out
    assert "events wait in the outbox, each once, for a broker to come" in out
    assert "agent: the camera reads a product code" in out  # the events, as committed


def test_demo_stops_cleanly_on_ctrl_c_and_leaves_nothing_running(tmp_path: Path) -> None:
    import signal


    need("mosquitto", "mosquitto")
    need("dbus-daemon", "dbus")
    work = tmp_path / "demo"
    proc = subprocess.Popen([*CLI, "demo", "--private", "--workdir", str(work)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # until the agent has synced a few events upstream
        seen.append(line)
        if "uplink connected" in line and "; 0 events upstream" not in line:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + out
    assert "stopped; everything it started is stopped too" in out
    # the summary so far, and no claim about what it did not get to check
    assert "— the day so far:" in out and "upstream: not checked" in out
    assert "Traceback" not in out

    def left() -> list[str]:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return [p for p in ps.splitlines() if str(work) in p]

    wait_for(lambda: not left(), 10, what=lambda: f"nothing left running: {left()}")


def test_decode_ndef_prints_records_or_one_line_error() -> None:
    from drivers.nfc.ndef_encode import smartposter_message

    msg = smartposter_message("https://shop.example/p/1", {"en": "Shoes", "de": "Schuhe"})
    res = subprocess.run([*CLI, "decode", "ndef", msg.hex()], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"records": [{
        "type": "smartposter", "uri": "https://shop.example/p/1",
        "titles": {"en": "Shoes", "de": "Schuhe"}}]}
    # hex on stdin, with the spaces and colons a reader tool prints
    spaced = ":".join(f"{b:02x}" for b in msg[:20]) + "\n" + " ".join(f"{b:02x}" for b in msg[20:])
    res = subprocess.run([*CLI, "decode", "ndef", "-"], input=spaced, capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and json.loads(res.stdout)["records"][0]["type"] == "smartposter"
    # a tag whose text carries a terminal escape sequence is printed escaped
    from drivers.nfc.ndef_encode import message, text_payload

    hostile = message([(1, b"T", text_payload("\x1b]0;owned\x07\u009b31m"))])
    res = subprocess.run([*CLI, "decode", "ndef", hostile.hex()], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and "\x1b" not in res.stdout and "\u009b" not in res.stdout
    assert json.loads(res.stdout)["records"][0]["text"].startswith("\x1b]0;owned")
    for bad, says in ((msg[:-3].hex(), "cut short"), ("zz", "not hex")):
        res = subprocess.run([*CLI, "decode", "ndef", bad], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr.startswith("o2o-edge: malformed NDEF: ") and says in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_decode_qr_classifies_each_file_and_goes_on_after_a_bad_one(tmp_path: Path) -> None:
    import qrcode
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.keys import public_key_text
    from drivers.qr.pickup import make_code

    key = Ed25519PrivateKey.generate()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[device]\nstore = "store-1"\n[qr]\ndomains = ["shop.example"]\n'
                   f'pickup_public_keys = ["{public_key_text(key.public_key())}"]\n')
    pickup = make_code(key, "A-1001", int(time.time()) + 3600, "store-1")
    files = {"product.png": "https://shop.example/p/77?utm_source=poster",
             "pickup.png": pickup, "evil.png": "https://shop.example@evil.example/"}
    for name, text in files.items():
        qrcode.make(text).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    names = [str(tmp_path / n) for n in ("product.png", "broken.png", "pickup.png", "evil.png")]
    res = subprocess.run([*CLI, "decode", "qr", *names, "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 1  # one file could not be read; the others were still decoded
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["file"] for x in lines] == names
    assert lines[0]["codes"] == [{"payload": files["product.png"], "class": "product",
                                  "reason": None}]
    assert "cannot read it as an image" in lines[1]["error"]
    assert [(c["class"], c["reason"]) for c in lines[2]["codes"]] == [("pickup", None)]
    assert [(c["class"], c["reason"]) for c in lines[3]["codes"]] == [("rejected",
                                                                       "userinfo-in-url")]
    assert res.stderr == ""


def test_qr_keygen_make_and_decode_round_trip(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import xml.etree.ElementTree as ET

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)

    key = tmp_path / "pickup.pem"
    res = cli("qr", "keygen", str(key))
    assert res.returncode == 0 and stat.S_IMODE(key.stat().st_mode) == 0o600
    config_line = res.stdout.strip().split("  #")[0]
    assert config_line.startswith("pickup_public_keys = [")
    assert cli("qr", "keygen", str(key)).returncode == 2  # never overwrites a signing key
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[device]\nstore = "store-1"\n[qr]\ndomains = ["shop.example"]\n'
                   f"{config_line}\n")
    res = cli("qr", "make", "--pickup", "A-2002", "--key", str(key), "--store", "store-1",
              "--valid", "2h", "--out", str(tmp_path / "pickup.png"))
    assert res.returncode == 0 and res.stdout.startswith("O2OP1:")
    res = cli("qr", "make", "--url", "https://shop.example/sale?utm_source=old&x=1",
              "--source", "poster", "--medium", "qr", "--campaign", "bf",
              "--out", str(tmp_path / "campaign.png"))
    assert res.stdout.strip() == ("https://shop.example/sale?x=1&utm_source=poster"
                                  "&utm_medium=qr&utm_campaign=bf")
    res = cli("decode", "qr", str(tmp_path / "pickup.png"), str(tmp_path / "campaign.png"),
              "--config", str(cfg))
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [(c["class"], c["reason"]) for x in lines for c in x["codes"]] == [
        ("pickup", None), ("campaign", None)]
    res = cli("qr", "make", "--url", "https://shop.example/", "--out", str(tmp_path / "c.svg"))
    assert ET.parse(tmp_path / "c.svg").getroot().tag.endswith("svg")  # noqa: S314
    res = cli("qr", "make", "--url", "https://shop.example/")
    assert "█" in res.stdout and res.stdout.strip().endswith("https://shop.example/")
    for bad, says in ((["--pickup", "A-1"], "needs --key"),
                      (["--url", "javascript:alert(1)"], "https URL"),
                      (["--pickup", "A 1", "--key", str(key)], "order id"),
                      (["--pickup", "A-1", "--key", str(key), "--valid", "soon"], "duration")):
        # through main() in this process (an exception would fail the test): four processes
        # took 0.6 s idle, ~3 s in the loaded suite
        try:
            code = main(["qr", "make", *bad])
        except SystemExit as done:
            code = done.code  # type: ignore[assignment]
        err = capsys.readouterr().err
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_scenario_with_a_mistake_exits_2_naming_its_place(tmp_path: Path) -> None:
    bad = tmp_path / "day.toml"
    bad.write_text('[store]\nid = "s"\n[[tap]]\nat = "10:00"\ntag = "nowhere"\n')
    res = cli("scenario", str(bad), timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == "o2o-edge scenario: tap[0].tag: no tag 'nowhere' in [tags]"
    res = cli("demo", "--scenario", str(tmp_path / "missing.toml"), "--broker", "none",
              timeout=60)
    assert res.returncode == 2 and "cannot read the scenario" in res.stderr
