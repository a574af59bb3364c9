#!/bin/sh
# Install, upgrade or remove o2o-edge on a store Pi (Debian 12 / Raspberry Pi OS), as root:
#
#   sudo sh systemd/install.sh [--kiosk browser|tty|none]   install (program, units, rules, users)
#   sudo sh systemd/install.sh upgrade SRC [--timeout S]     a new version beside the one in use,
#                         tried, kept if the agent is healthy within S seconds (120), else undone
#   sudo sh systemd/install.sh rollback [--timeout S]        back to the version before
#   sudo sh systemd/install.sh uninstall [--purge]           remove (--purge: config and data too)
#
# Each version has a venv of its own, /opt/o2o-edge/venvs/VERSION; /opt/o2o-edge/venv, which
# the units run, is a symlink to the one in use, switched with one rename. SRC is a source tree
# (like this one) or a wheel. An upgrade copies the venv in use with hard links (unchanged
# dependencies are shared, not copied), lets pip bring the program and any dependency that
# changed, switches, restarts the agent and the kiosk units that run, and waits for the agent's
# health: READY (the unit active), `o2o-edge status` naming the new version with the outbox
# writer running, and the uplink connected when [mqtt] url is set. Not healthy in time: the
# symlink goes back, the units restart, exit 1. The configuration, the outbox and the store
# database are never touched. The previous version's venv is kept; older ones are removed.
#
# With DESTDIR=/some/dir everything is written under that directory instead and nothing on this
# machine is touched (no users, no systemctl unless SYSTEMCTL names one): that is how the tests
# check it. CONFIG names the agent's configuration (default /etc/o2o-edge/config.toml).
#
# On 32-bit Raspberry Pi OS (armhf) PyPI has no armv7l wheel of OpenCV, numpy, Pillow, cffi or
# zxing-cpp: the script installs Debian's OpenCV, numpy and Pillow with apt-get, gives the venv
# the system's packages (--system-site-packages), and installs compilers for what neither PyPI
# nor piwheels (Raspberry Pi OS's pip default) has a wheel of.
set -eu

PREFIX=/opt/o2o-edge
SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
ACTION=install
KIOSK=browser
PURGE=no
TIMEOUT=120
PYTHON=${PYTHON:-python3}
# the Debian architecture (armhf: 32-bit Raspberry Pi OS, whatever the kernel's)
ARCH=${ARCH:-$(dpkg --print-architecture 2>/dev/null || echo unknown)}
ARMHF_DEBS="python3-venv python3-dev python3-numpy python3-opencv python3-pil libzbar0 g++ cmake libffi-dev"

while [ $# -gt 0 ]; do
    case "$1" in
        install|uninstall|rollback) ACTION=$1 ;;
        upgrade) ACTION=upgrade; shift
                 [ $# -gt 0 ] || { echo "upgrade: give the new version's source tree or wheel" >&2; exit 2; }
                 SRC=$1
                 [ -e "$SRC" ] || { echo "upgrade: $SRC: no such file or directory" >&2; exit 2; }
                 SRC=$(cd "$(dirname "$SRC")" && pwd)/$(basename "$SRC") ;;
        --kiosk) shift; KIOSK=${1:-}
                 case "$KIOSK" in browser|tty|none) ;; *) echo "--kiosk: browser, tty or none" >&2; exit 2 ;; esac ;;
        --timeout) shift; TIMEOUT=${1:-}
                   case "$TIMEOUT" in ''|*[!0-9]*) echo "--timeout: whole seconds" >&2; exit 2 ;; esac ;;
        --purge) PURGE=yes ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

live() { [ -z "$DESTDIR" ]; }
say() { echo "o2o-edge install: $*"; }
# the staff view is installed, never enabled here: it is off until a store turns it on
UNITS="o2o-edge.service o2o-edge-kiosk-web.service o2o-edge-kiosk-browser.service o2o-edge-kiosk-tty.service o2o-edge-staff.service"

if live && [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo sh $0 ...), or set DESTDIR to stage the files elsewhere" >&2
    exit 1
fi

if [ "$ACTION" = uninstall ]; then
    if live; then
        for u in $UNITS; do systemctl disable --now "$u" 2>/dev/null || true; done
    fi
    for u in $UNITS; do rm -f "$DESTDIR/etc/systemd/system/$u"; done
    rm -f "$DESTDIR/etc/udev/rules.d/70-o2o-edge.rules" "$DESTDIR/etc/modprobe.d/o2o-edge-nfc.conf" \
          "$DESTDIR/etc/dbus-1/system.d/o2o-edge.conf" "$DESTDIR/etc/sysusers.d/o2o-edge.conf"
    rm -rf "$DESTDIR$PREFIX"
    if [ -L "$DESTDIR/usr/local/bin/o2o-edge" ]; then rm -f "$DESTDIR/usr/local/bin/o2o-edge"; fi
    if [ "$PURGE" = yes ]; then
        rm -rf "$DESTDIR/etc/o2o-edge" "$DESTDIR/var/lib/o2o-edge" "$DESTDIR/var/lib/o2o-edge-kiosk"
        say "removed, with the configuration and the buffered events"
    else
        say "removed; kept /etc/o2o-edge and /var/lib/o2o-edge (--purge removes them)"
    fi
    if live; then systemctl daemon-reload; udevadm control --reload || true; fi
    exit 0
fi

P=$DESTDIR$PREFIX
CONFIG=${CONFIG:-$DESTDIR/etc/o2o-edge/config.toml}
# who restarts the units: systemctl on this machine; nobody for a staged root unless named
if live; then SYSTEMCTL=${SYSTEMCTL:-systemctl}; else SYSTEMCTL=${SYSTEMCTL:-}; fi

version_of() {  # the version a source tree or a wheel installs
    case "$1" in
        *.whl) basename "$1" | cut -d- -f2 ;;
        *) sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$1/agent/__init__.py" ;;
    esac
}

in_use() {  # the version the venv symlink points at ("" when none)
    if [ -L "$P/venv" ]; then basename "$(readlink "$P/venv")"; fi
}

switch_to() {  # point the venv symlink at venvs/$1: one rename, never a moment without one
    ln -sfn "venvs/$1" "$P/venv.switch"
    mv -T "$P/venv.switch" "$P/venv"
}

relocate() {  # a venv copied from $1 to $2: its scripts name their own interpreter by path
    for f in "$2"/bin/* "$2/pyvenv.cfg"; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        if grep -qF "$1" "$f" 2>/dev/null; then
            # a new file (sed -i writes one and renames it): the copy's hard link is broken,
            # the old venv's script is left as it was
            sed -i "s|$1|$2|g" "$f"
        fi
    done
}

adopt_old_layout() {  # a venv from before versioned installs becomes venvs/VERSION
    if [ -d "$P/venv" ] && [ ! -L "$P/venv" ]; then
        old=$("$P/venv/bin/o2o-edge" --version 2>/dev/null | sed -n 's/^o2o-edge //p')
        old=${old:-unknown}
        install -d -m 0755 "$P/venvs"
        rm -rf "$P/venvs/$old"
        mv "$P/venv" "$P/venvs/$old"
        relocate "$P/venv" "$P/venvs/$old"
        switch_to "$old"
        say "the venv in use is now $PREFIX/venvs/$old"
    fi
}

make_venv() {  # a fresh venv at $1
    if [ "$ARCH" = armhf ]; then
        "$PYTHON" -m venv --system-site-packages "$1"
    else
        "$PYTHON" -m venv "$1"
    fi
    "$1/bin/python" -m pip install -q --upgrade pip
}

with_pip() {  # pip in the venv $1 (the venvs the units run are left without it)
    "$1/bin/python" -m pip --version >/dev/null 2>&1 || "$1/bin/python" -m ensurepip >/dev/null
}

finish_venv() {  # bytecode for what the device runs, and no pip: ~50 MB less (bench-install)
    # -P: the venv's program, not a tree in the working directory
    "$1/bin/python" -P -m agent.bytecode 2>/dev/null || true
    "$1/bin/python" -m pip uninstall -q -y pip setuptools >/dev/null 2>&1 || true
}

pip_program() {  # the program from $2 into the venv $1, with what its dependencies need
    if [ "$ARCH" = armhf ]; then
        # every dependency but OpenCV's wheel (Debian's python3-opencv stands in), then the
        # program; the dependencies from the tree's pyproject.toml or the wheel's metadata
        "$1/bin/python" -c 'import email, pathlib, sys, tomllib, zipfile
src = pathlib.Path(sys.argv[1])
if src.suffix == ".whl":
    with zipfile.ZipFile(src) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = email.message_from_bytes(z.read(meta))
    deps = [d for d in msg.get_all("Requires-Dist") or [] if "extra ==" not in d]
else:
    deps = tomllib.loads((src / "pyproject.toml").read_text())["project"]["dependencies"]
print("\n".join(d for d in deps if not d.startswith("opencv-python")))' "$2" \
            > "$1/requirements-armhf.txt"
        "$1/bin/python" -m pip install -q --no-compile -r "$1/requirements-armhf.txt"
        "$1/bin/python" -m pip install -q --no-compile --upgrade --no-deps "$2"
    else
        "$1/bin/python" -m pip install -q --no-compile --upgrade "$2"
    fi
}

build_venv() {  # venvs/$1 from $2: a hard-linked copy of the venv in use, or a fresh one
    dest=$P/venvs/$1
    rm -rf "$dest"
    install -d -m 0755 "$P/venvs"
    base=$(in_use)
    if [ -n "$base" ] && [ -x "$P/venvs/$base/bin/python" ]; then
        cp -al "$P/venvs/$base" "$dest"
        relocate "$P/venvs/$base" "$dest"
    else
        make_venv "$dest"
    fi
    # (called as a condition, where set -e does not stop at a failure: each step says)
    with_pip "$dest" || return 1
    pip_program "$dest" "$2" || return 1
    finish_venv "$dest"
}

if [ "$ARCH" = armhf ] && live && [ "$ACTION" != rollback ]; then
    say "armhf: Debian's OpenCV, numpy and Pillow, and compilers ($ARMHF_DEBS)"
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $ARMHF_DEBS
fi

health() {  # "ok", or why the agent of version $1 is not healthy (venvs/$1 asks it)
    if [ -z "$SYSTEMCTL" ]; then echo ok; return; fi
    state=$($SYSTEMCTL is-active o2o-edge.service 2>/dev/null || true)
    case "$state" in
        active) ;;
        failed) echo "the service failed (journalctl -u o2o-edge -n 20 says why)"; return ;;
        *) echo "the service is ${state:-unknown}, not yet READY"; return ;;
    esac
    "$P/venvs/$1/bin/o2o-edge" status --json --config "$CONFIG" 2>&1 | "$P/venvs/$1/bin/python" -c '
import json, sys
want = sys.argv[1]
text = sys.stdin.read()
try:
    s = json.loads(text)
except ValueError:
    print("status: " + (text.strip().splitlines() or ["no answer"])[-1][:200]); sys.exit()
version = s.get("agent", {}).get("version")
writer = s.get("outbox", {}).get("writer")
up = s.get("uplink", {})
if version != want:
    print(f"the agent runs {version}, not {want}")
elif writer != "running":
    print(f"the outbox writer is {writer}")
elif up.get("state") not in ("connected", "disabled"):
    state, why = up.get("state"), up.get("last_error") or "no error yet"
    print(f"the uplink is {state} ({why})")
else:
    print("ok")' "$1"
}

# the agent's data as the unit sees it (its Environment=): where the state directory is
XDG_STATE_HOME=${XDG_STATE_HOME:-$DESTDIR/var/lib}
export XDG_STATE_HOME

schemas() {  # "OUTBOX STOREDB": the newest schema versions venvs/$1 can open
    "$P/venvs/$1/bin/python" -c 'from agent.outbox.schema import SCHEMA_VERSION
from agent.storedb.migrations import MIGRATIONS
print(SCHEMA_VERSION, MIGRATIONS[-1].version)' 2>/dev/null || echo "999 999"
}

on_disk() {  # "OUTBOX STOREDB": the schema versions of the agent's files now, read only
    "$P/venvs/$1/bin/python" -c 'import sqlite3, sys
from agent.config import load_config
cfg = load_config(sys.argv[1])
found = []
for path in (cfg.outbox.path, cfg.kiosk.store_db):
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        found.append(db.execute("PRAGMA user_version").fetchone()[0])
        db.close()
    except sqlite3.Error:
        found.append(0)  # not there (yet): nothing to misread
print(*found)' "$CONFIG" 2>/dev/null || echo "0 0"
}

restart_units() {
    [ -n "$SYSTEMCTL" ] || return 0
    # a version that crash-looped must not leave the unit over its start limit for the next
    $SYSTEMCTL reset-failed o2o-edge.service 2>/dev/null || true
    $SYSTEMCTL restart o2o-edge.service
    # the kiosk units that run follow the symlink too
    for u in o2o-edge-kiosk-web.service o2o-edge-kiosk-tty.service o2o-edge-staff.service; do
        if $SYSTEMCTL is-active --quiet "$u" 2>/dev/null; then $SYSTEMCTL restart "$u"; fi
    done
}

wait_healthy() {  # until version $1 is healthy, at most TIMEOUT seconds; why not on stdout
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        why=$(health "$1")
        [ "$why" = ok ] && return 0
        case "$why" in "the service failed"*) echo "$why"; return 1 ;; esac
        if [ "$(date +%s)" -ge "$deadline" ]; then echo "$why"; return 1; fi
        sleep 2
    done
}

prune() {  # keep the version in use and the one before it
    keep_a=$(in_use); keep_b=$(basename "$(readlink "$P/venv.previous" 2>/dev/null || echo none)")
    for d in "$P"/venvs/*; do
        [ -d "$d" ] || continue
        case "$(basename "$d")" in "$keep_a"|"$keep_b") ;; *) rm -rf "$d" ;; esac
    done
}

try_version() {  # switch to $1 (from $2), restart, judge; go back to $2 when not healthy
    kept=$(readlink "$P/venv.previous" 2>/dev/null || true)  # what rollback goes to now
    ln -sfn "venvs/$2" "$P/venv.previous"
    switch_to "$1"
    restart_units
    if [ -z "$SYSTEMCTL" ]; then
        say "staged: $PREFIX/venv is $1 now; no service restarted"
        return 0
    fi
    say "waiting up to ${TIMEOUT}s for the agent $1 to be healthy"
    if why=$(wait_healthy "$1"); then
        return 0
    fi
    say "the agent $1 is not healthy: $why"
    # the version before cannot open files a newer schema wrote: it would refuse the store
    # database (and not start) and set the outbox aside; then the new version stays
    knows=$(schemas "$2"); now=$(on_disk "$1")
    if [ "${now% *}" -gt "${knows% *}" ] || [ "${now#* }" -gt "${knows#* }" ]; then
        say "not rolled back: $1 brought the outbox and store database to schemas ${now% *} and ${now#* }, $2 opens up to ${knows% *} and ${knows#* } and would not run on them; $1 stays in use (README, Updates and rollback)"
        return 1
    fi
    switch_to "$2"
    # rollback still goes to the version it went to before this try, not to the failed one
    if [ -n "$kept" ]; then ln -sfn "$kept" "$P/venv.previous"; else rm -f "$P/venv.previous"; fi
    restart_units
    if back=$(wait_healthy "$2"); then
        say "rolled back to $2, which runs again; $1 stays in $PREFIX/venvs/$1 for a look"
    else
        say "rolled back to $2, which is not healthy either: $back; 'o2o-edge doctor' says more"
    fi
    return 1
}

if [ "$ACTION" = upgrade ] || [ "$ACTION" = rollback ]; then
    if live && [ ! -e "$P/venv" ]; then
        echo "nothing installed in $PREFIX: run 'sudo sh systemd/install.sh' first" >&2; exit 1
    fi
    adopt_old_layout
    current=$(in_use)
    if [ "$ACTION" = rollback ]; then
        prev=$(basename "$(readlink "$P/venv.previous" 2>/dev/null || echo none)")
        if [ ! -x "$P/venvs/$prev/bin/o2o-edge" ]; then
            echo "no previous version kept in $PREFIX/venvs: nothing to go back to" >&2; exit 1
        fi
        say "back from $current to $prev"
        try_version "$prev" "$current" || exit 1
        say "done: $prev runs; $current is kept and 'upgrade' or 'rollback' goes to it again"
        exit 0
    fi
    new=$(version_of "$SRC")
    case "$new" in
        ''|*[!A-Za-z0-9.+_-]*) echo "upgrade: cannot tell the version of $SRC" >&2; exit 2 ;;
    esac
    if [ "$new" = "$current" ]; then
        say "$new is the version in use: nothing to do"; exit 0
    fi
    say "$new beside $current in $PREFIX/venvs/$new"
    if ! build_venv "$new" "$SRC"; then
        rm -rf "$P/venvs/$new"
        echo "o2o-edge install: $new did not install (pip's words above); $current still runs, nothing changed" >&2
        exit 1
    fi
    try_version "$new" "$current" || exit 1
    prune
    # the units' Documentation=; a wheel carries no README
    if [ -f "$SRC/README.md" ]; then install -m 0644 "$SRC/README.md" "$P/README.md"; fi
    say "done: $new runs; $current is kept ('install.sh rollback' goes back to it)"
    exit 0
fi

say "program into $P"
install -d -m 0755 "$P"
adopt_old_layout
new=$(version_of "$SRC")
if [ -n "$new" ] && [ "$new" = "$(in_use)" ]; then
    with_pip "$P/venvs/$new"  # the same version again: in place
    pip_program "$P/venvs/$new" "$SRC"
    finish_venv "$P/venvs/$new"
else
    new=${new:-unknown}
    build_venv "$new" "$SRC"
    if [ -n "$(in_use)" ]; then ln -sfn "$(readlink "$P/venv")" "$P/venv.previous"; fi
    switch_to "$new"
fi
install -m 0644 "$SRC/README.md" "$DESTDIR$PREFIX/README.md"
# `o2o-edge` on PATH, whichever version is in use
install -d -m 0755 "$DESTDIR/usr/local/bin"
ln -sfn "$PREFIX/venv/bin/o2o-edge" "$DESTDIR/usr/local/bin/o2o-edge"

say "units, udev rules, module blacklist, D-Bus policy, users"
install -d -m 0755 "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/udev/rules.d" \
    "$DESTDIR/etc/modprobe.d" "$DESTDIR/etc/dbus-1/system.d" "$DESTDIR/etc/sysusers.d"
for u in $UNITS; do install -m 0644 "$SRC/systemd/$u" "$DESTDIR/etc/systemd/system/$u"; done
install -m 0644 "$SRC/systemd/70-o2o-edge.rules" "$DESTDIR/etc/udev/rules.d/70-o2o-edge.rules"
install -m 0644 "$SRC/systemd/o2o-edge-nfc.conf" "$DESTDIR/etc/modprobe.d/o2o-edge-nfc.conf"
install -m 0644 "$SRC/systemd/o2o-edge-dbus.conf" "$DESTDIR/etc/dbus-1/system.d/o2o-edge.conf"
install -m 0644 "$SRC/systemd/o2o-edge.sysusers" "$DESTDIR/etc/sysusers.d/o2o-edge.conf"

install -d -m 0750 "$DESTDIR/etc/o2o-edge"
install -m 0640 "$SRC/systemd/config.example.toml" "$DESTDIR/etc/o2o-edge/config.toml.example"
if [ -e "$DESTDIR/etc/o2o-edge/config.toml" ]; then
    say "kept /etc/o2o-edge/config.toml (the new example is config.toml.example)"
else
    install -m 0640 "$SRC/systemd/config.example.toml" "$DESTDIR/etc/o2o-edge/config.toml"
    say "wrote /etc/o2o-edge/config.toml from the example: set [device] store in it"
fi

if live; then
    systemd-sysusers /etc/sysusers.d/o2o-edge.conf
    chown -R root:o2o-edge /etc/o2o-edge
    # the device's key and certificate: the agent renews them in place, so the directory is its
    install -d -o o2o-edge -g o2o-edge -m 0750 /var/lib/o2o-edge /var/lib/o2o-edge/tls
    udevadm control --reload && udevadm trigger --subsystem-match=usb --subsystem-match=video4linux || true
    systemctl daemon-reload
    systemctl enable --now o2o-edge.service
    case "$KIOSK" in
        browser) systemctl disable o2o-edge-kiosk-tty.service 2>/dev/null || true
                 systemctl enable --now o2o-edge-kiosk-web.service o2o-edge-kiosk-browser.service ;;
        tty)     systemctl disable --now o2o-edge-kiosk-web.service o2o-edge-kiosk-browser.service 2>/dev/null || true
                 systemctl enable --now o2o-edge-kiosk-tty.service ;;
        none)    ;;
    esac
    say "the staff view (phones on the store LAN) is installed, not enabled: README, Staff view"
    say "done: 'systemctl status o2o-edge' and 'o2o-edge doctor' tell how it is going"
else
    say "staged under $DESTDIR (no users, services or udev touched)"
fi
