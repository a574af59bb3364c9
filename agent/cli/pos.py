"""`o2o-edge pos token NAME`: a bearer token for one till, and the [pos] tokens line that
lets it in (only the token's SHA-256 goes into the configuration)."""

from __future__ import annotations

import argparse
import hashlib
import re
import secrets
import sys
from typing import Any

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def cmd_pos_token(args: argparse.Namespace) -> int:
    if not _NAME.fullmatch(args.name):
        print(f"o2o-edge: a till's name is 1-32 lowercase letters, digits or '-', not "
              f"{args.name[:40]!r}", file=sys.stderr)
        return 2
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    print(f"token for the till (Authorization: Bearer ...), shown once: {token}",
          file=sys.stderr)
    print(f'add to [pos] tokens: "{args.name}={digest}"')
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pos", help="the tills' endpoint: tokens")
    psub = p.add_subparsers(dest="pos_command", metavar="ACTION", required=True)
    q = psub.add_parser("token", help="a new bearer token for a till, and its [pos] tokens entry")
    q.add_argument("name", help="the till's name, e.g. till-1 (named in its sales)")
    q.set_defaults(handler=cmd_pos_token)
