from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import config_as_dict, load_config, render_toml
from agent.errors import ConfigError


def cfg_file(tmp_path: Path, text: str) -> str:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return str(p)


def test_defaults_run_out_of_the_box(tmp_path: Path) -> None:
    # the autouse fixture points XDG_STATE_HOME / XDG_RUNTIME_DIR into tmp_path
    if Path("/etc/o2o-edge/config.toml").exists():
        pytest.skip("this machine has /etc/o2o-edge/config.toml; defaults not reachable")
    cfg = load_config(None, {})
    assert cfg.outbox.path == tmp_path / "state" / "o2o-edge" / "outbox.db"
    assert cfg.bus.socket == tmp_path / "run" / "o2o-edge" / "agent.sock"
    assert cfg.mqtt.url == "mqtt://127.0.0.1:1883"
    assert cfg.source == "built-in defaults"


def test_file_then_env_override(tmp_path: Path) -> None:
    path = cfg_file(tmp_path, '[device]\nstore = "berlin-01"\nid = "pi-3"\n[mqtt]\nprotocol = "3.1.1"\n')
    cfg = load_config(path, {"O2O_EDGE_MQTT_URL": "mqtt://localhost:1999",
                             "O2O_EDGE_OUTBOX_MAX_BYTES": "2000000"})
    assert (cfg.device.store, cfg.device.id) == ("berlin-01", "pi-3")
    assert cfg.mqtt.url == "mqtt://localhost:1999"
    assert cfg.mqtt.protocol == "3.1.1"
    assert cfg.outbox.max_bytes == 2_000_000
    assert cfg.topic_base == "o2o/v1/berlin-01/pi-3"


def test_env_names_config_file(tmp_path: Path) -> None:
    path = cfg_file(tmp_path, '[device]\nstore = "s-env"\n')
    assert load_config(None, {"O2O_EDGE_CONFIG": path}).device.store == "s-env"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[mqtt]\nurll = "x"\n', "unknown key [mqtt] 'urll'; allowed keys:"),
        ('[mqt]\nurl = "x"\n', "unknown section [mqt]"),
        ("[outbox]\nmax_bytes = \"big\"\n", "[outbox] max_bytes: must be an integer, got str 'big'"),
        ("[outbox]\nttl_days = true\n", "[outbox] ttl_days: must be a number"),
        ('[mqtt]\nurl = "http://x"\n', '[mqtt] url = \'http://x\' is not allowed; use "mqtt://HOST:PORT"'),
        ('[mqtt]\nprotocol = "4"\n', "use \"5\" or \"3.1.1\""),
        ('[device]\nstore = "a/b"\n', "[device] store = 'a/b' is not allowed"),
        ("[outbox]\nmax_bytes = 10\n", "at least 1048576"),
        ('[mqtt]\nurl = "mqtt://broker.example.com:1883"\n', "plaintext to a non-loopback host"),
        ('[mqtt]\nurl = "mqtts://broker.example.com"\ncert_file = "/x"\n', "must be set together"),
        ('[mqtt]\nurl = "mqtts://b.example.com"\nca_file = "/nonexistent/ca.pem"\n', "does not exist"),
        ("[ble]\nimmediate_m = 4.0\n", "[ble] near_m must be greater than immediate_m"),
        ("[ble]\nzone_margin = 1.5\n", "[ble] zone_margin = 1.5 is not allowed; use 0 to 0.99"),
        ('[nfc]\nreader = "pcsc"\n', '[nfc] reader = \'pcsc\' is not allowed; use "usb"'),
        ('[nfc]\ntargets = ["106X"]\n', "a non-empty list of 106A, 106B, 212F, 424F"),
        ('[nfc]\nshelf_tags = ["04a1b2=x"]\n', "a tag UID in hex (4, 7, 8 or 10 bytes)"),
        ('[nfc]\nloyalty_cards = ["04a1b2c3d4e5f6=<b>"]\n', "optionally '=label'"),
        ('[qr]\nroi = "10,10,0,5"\n', '"x,y,width,height" in pixels'),
        ("[qr]\nmax_width = 100\n", "0 (never) or at least 160"),
        ("[device\n", "not valid TOML"),
        ('device = "x"\n', "device must be a table"),
    ],
)
def test_bad_config_names_file_key_and_what_is_allowed(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = cfg_file(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, {})
    assert expected in str(exc.value)
    assert path in str(exc.value)


def test_bad_env_value_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment O2O_EDGE_MQTT_ALLOW_INSECURE: must be true or false"):
        load_config(cfg_file(tmp_path, ""), {"O2O_EDGE_MQTT_ALLOW_INSECURE": "maybe"})


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.toml"), {})


def test_insecure_allowed_when_asked(tmp_path: Path) -> None:
    path = cfg_file(tmp_path, '[mqtt]\nurl = "mqtt://10.1.2.3:1883"\nallow_insecure = true\n')
    assert load_config(path, {}).mqtt.allow_insecure is True


def test_show_masks_secrets(tmp_path: Path) -> None:
    path = cfg_file(tmp_path, '[mqtt]\nurl = "mqtt://u:hunter2@127.0.0.1:1883"\n'
                    'username = "u"\npassword = "hunter2"\n')
    cfg = load_config(path, {})
    shown = render_toml(cfg)
    assert "hunter2" not in shown
    assert 'password = "********"' in shown
    assert config_as_dict(cfg, mask_secrets=False)["mqtt"]["password"] == "hunter2"


def test_the_readme_configuration_reference_is_a_valid_configuration(tmp_path: Path) -> None:
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", readme, re.S)
    cfg = load_config(cfg_file(tmp_path, block), {})
    documented = set(re.findall(r"^\[(\w+)\]", block, re.M))
    assert documented == {f.name for f in dataclasses.fields(cfg)
                          if f.name not in ("source", "path", "remote_version")}
