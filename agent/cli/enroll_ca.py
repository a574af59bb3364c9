"""The fleet CA's commands (on the platform, never on a Pi: they need the CA's key):

    o2o-edge enroll sign REQUEST --ca-cert C --ca-key K     a device's request, checked and
                                                            signed: the certificate on stdout
    o2o-edge enroll answer --broker URL --ca-cert C --ca-key K
                                 answers the agents' renewal requests on o2o/v1/+/+/csr with
                                 their certificates, retained on o2o/v1/STORE/DEVICE/cert

The checks and the certificate are agent/enroll/ca.py's. `answer` signs a request only for the
device its topic names: the broker ACL lets only that device's certificate write there."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.enroll.ca import device_cn, issue, load_ca

REQUESTS = "o2o/v1/+/+/csr"


def _ca(args: argparse.Namespace) -> tuple[Any, Any]:
    try:
        return load_ca(Path(args.ca_cert).read_bytes(), Path(args.ca_key).read_bytes())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--ca-cert {args.ca_cert} / --ca-key {args.ca_key}: {exc}") from None


def _expiry(pem: bytes) -> str:
    from cryptography import x509

    return f"{x509.load_pem_x509_certificate(pem).not_valid_after_utc:%Y-%m-%d}"


def cmd_enroll_sign(args: argparse.Namespace) -> int:
    try:
        ca_cert, ca_key = _ca(args)
        raw = (sys.stdin.buffer.read() if args.request == "-" else
               Path(args.request).read_bytes())
        if args.expect is not None:
            device_cn(args.expect)
        pem = issue(raw, ca_cert, ca_key, args.days, args.expect)
    except OSError as exc:
        print(f"o2o-edge enroll sign: {exc.filename or ''}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"o2o-edge enroll sign: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(pem.decode("ascii"))
    print(f"signed, valid until {_expiry(pem)}: 'o2o-edge enroll install' it on the device",
          file=sys.stderr)
    return 0


def cmd_enroll_answer(args: argparse.Namespace) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.errors import AgentError
    from agent.tlsopts import client_tls_context, connect_problem

    try:
        ca_cert, ca_key = _ca(args)
        parts = urlsplit(args.broker)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"--broker {args.broker!r}: give mqtts://HOST:PORT")
        tls = parts.scheme == "mqtts"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id,
                             protocol=mqtt.MQTTv5)
        if tls:
            client.tls_set_context(client_tls_context(args.ca_file, args.cert_file,
                                                      args.key_file))
        elif args.cert_file or args.ca_file:
            raise ValueError("--ca-file and --cert-file need an mqtts:// --broker")
    except (OSError, ValueError, AgentError) as exc:
        print(f"o2o-edge enroll answer: {exc}", file=sys.stderr)
        return 2

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            print(f"o2o-edge enroll answer: the broker refused the connection: {rc}",
                  file=sys.stderr, flush=True)
            return
        c.subscribe(REQUESTS, qos=1)
        print(f"o2o-edge enroll answer: waiting for requests on {REQUESTS}", file=sys.stderr,
              flush=True)

    def on_message(c: Any, u: Any, msg: Any) -> None:
        levels = msg.topic.split("/")
        who = "/".join(levels[2:4])
        try:
            pem = issue(bytes(msg.payload), ca_cert, ca_key, args.days, expect=who)
        except ValueError as exc:
            print(f"refused {who}: {exc}", file=sys.stderr, flush=True)
            return
        # retained: a device offline now finds it when it connects
        c.publish(f"o2o/v1/{who}/cert", pem, qos=1, retain=True)
        print(f"signed {who}, valid until {_expiry(pem)}", flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    client.reconnect_delay_set(1, 60)
    for sig in (signal.SIGTERM, signal.SIGINT):  # a clean disconnect ends loop_forever
        signal.signal(sig, lambda *_: client.disconnect())
    port = parts.port or (8883 if tls else 1883)
    try:
        client.connect(parts.hostname or "", port, keepalive=30)
    except OSError as exc:
        print(f"o2o-edge enroll answer: cannot connect to {parts.hostname}:{port}: "
              f"{connect_problem(exc, tls)}", file=sys.stderr)
        return 2
    client.loop_forever(retry_first_connection=False)
    return 0


def add_parsers(esub: Any) -> None:
    q = esub.add_parser("sign", help="(the fleet's CA) check a device's request and sign it: "
                                     "its certificate on stdout")
    q.add_argument("request", help="the request (PEM, from 'enroll request'); - for stdin")
    q.add_argument("--ca-cert", required=True, help="the CA's certificate (PEM)")
    q.add_argument("--ca-key", required=True, help="the CA's private key (PEM)")
    q.add_argument("--days", type=float, default=90, help="how long it is valid (90)")
    q.add_argument("--expect", help="the STORE/DEVICE the request must name")
    q.set_defaults(handler=cmd_enroll_sign)
    q = esub.add_parser("answer", help="(the fleet's CA) answer the agents' renewal requests "
                                       "over MQTT")
    q.add_argument("--broker", required=True, help="mqtts://HOST:PORT")
    q.add_argument("--ca-cert", required=True, help="the CA's certificate (PEM)")
    q.add_argument("--ca-key", required=True, help="the CA's private key (PEM)")
    q.add_argument("--days", type=float, default=90, help="how long each is valid (90)")
    q.add_argument("--ca-file", default="", help="the CA the broker's certificate is from")
    q.add_argument("--cert-file", default="", help="this service's client certificate")
    q.add_argument("--key-file", default="", help="its key")
    q.add_argument("--client-id", default="o2o-enroll-answer")
    q.set_defaults(handler=cmd_enroll_answer)
