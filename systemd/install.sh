#!/bin/sh
# Install, upgrade or remove o2o-edge on a store Pi (Debian 12 / Raspberry Pi OS), as root:
#
#   sudo sh systemd/install.sh [--kiosk browser|tty|none]   install or upgrade
#   sudo sh systemd/install.sh uninstall [--purge]           remove (--purge: config and data too)
#
# An upgrade replaces the program, units and rules and keeps /etc/o2o-edge/config.toml and the
# buffered events in /var/lib/o2o-edge. With DESTDIR=/some/dir everything is written under that
# directory instead and nothing on this machine is touched (no users, no systemctl): that is
# how the tests check it.
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
PYTHON=${PYTHON:-python3}
# the Debian architecture (armhf: 32-bit Raspberry Pi OS, whatever the kernel's)
ARCH=${ARCH:-$(dpkg --print-architecture 2>/dev/null || echo unknown)}
ARMHF_DEBS="python3-venv python3-dev python3-numpy python3-opencv python3-pil libzbar0 g++ cmake libffi-dev"

while [ $# -gt 0 ]; do
    case "$1" in
        install|uninstall) ACTION=$1 ;;
        --kiosk) shift; KIOSK=${1:-}
                 case "$KIOSK" in browser|tty|none) ;; *) echo "--kiosk: browser, tty or none" >&2; exit 2 ;; esac ;;
        --purge) PURGE=yes ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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
    if [ "$PURGE" = yes ]; then
        rm -rf "$DESTDIR/etc/o2o-edge" "$DESTDIR/var/lib/o2o-edge" "$DESTDIR/var/lib/o2o-edge-kiosk"
        say "removed, with the configuration and the buffered events"
    else
        say "removed; kept /etc/o2o-edge and /var/lib/o2o-edge (--purge removes them)"
    fi
    if live; then systemctl daemon-reload; udevadm control --reload || true; fi
    exit 0
fi

say "program into $DESTDIR$PREFIX"
install -d -m 0755 "$DESTDIR$PREFIX"
VPY="$DESTDIR$PREFIX/venv/bin/python"
if [ "$ARCH" = armhf ]; then
    if live; then
        say "armhf: Debian's OpenCV, numpy and Pillow, and compilers ($ARMHF_DEBS)"
        # shellcheck disable=SC2086 # a list of package names
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $ARMHF_DEBS
    fi
    if [ ! -x "$VPY" ]; then
        "$PYTHON" -m venv --system-site-packages "$DESTDIR$PREFIX/venv"
    fi
    "$VPY" -m pip install -q --upgrade pip
    # every dependency but OpenCV's wheel (Debian's python3-opencv stands in), then the program
    "$VPY" -c 'import pathlib, sys, tomllib
deps = tomllib.loads(pathlib.Path(sys.argv[1]).read_text())["project"]["dependencies"]
print("\n".join(d for d in deps if not d.startswith("opencv-python")))' "$SRC/pyproject.toml" \
        > "$DESTDIR$PREFIX/requirements-armhf.txt"
    "$VPY" -m pip install -q -r "$DESTDIR$PREFIX/requirements-armhf.txt"
    "$VPY" -m pip install -q --upgrade --no-deps "$SRC"
else
    if [ ! -x "$VPY" ]; then
        "$PYTHON" -m venv "$DESTDIR$PREFIX/venv"
    fi
    "$VPY" -m pip install -q --upgrade pip
    "$VPY" -m pip install -q --upgrade "$SRC"
fi
install -m 0644 "$SRC/README.md" "$DESTDIR$PREFIX/README.md"

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
