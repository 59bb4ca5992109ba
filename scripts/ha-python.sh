#!/usr/bin/env bash
# `make hass-venv`: create the virtual environment VENV with a Python 3.13 (Home Assistant's
# validator needs it; tests/hass/requirements.txt says why).
#
#   scripts/ha-python.sh VENV [CANDIDATE...]      (HOST_PIP: a pip that can download, for pip itself)
#
# 1. The first candidate that runs and is 3.13 (HA_PYTHON, python3.13 on PATH, pyenv's versions).
#    A pyenv shim may exist and fail when run, so each one is run, not just looked for.
# 2. Else, as root with debootstrap: Debian trixie's own python3 (3.13) from Debian's packages,
#    in a root file system under the cache directory (AURORA_CONTAINER_CACHE, default
#    /var/cache/aurora-tests), made once: about 2 minutes and 300 MB. Its interpreter runs here
#    through trixie's own dynamic loader and libraries (bin/python3.13 in VENV is a small script
#    doing that), so nothing of the system changes and no chroot is needed.
# 3. Else one line saying what is missing, exit 1.
set -euo pipefail

venv=${1:?usage: ha-python.sh VENV [CANDIDATE...]}
shift
is_313() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; }

for candidate in "$@"; do
  if [ -n "$candidate" ] && is_313 "$candidate"; then
    echo "building $venv with $candidate"
    rm -rf "$venv"
    "$candidate" -m venv "$venv"
    exit 0
  fi
done

cache=${AURORA_CONTAINER_CACHE:-/var/cache/aurora-tests}
rootfs=$cache/python3.13-trixie
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
case $arch in
  amd64) loader=lib64/ld-linux-x86-64.so.2 libdir=x86_64-linux-gnu ;;
  arm64) loader=lib/ld-linux-aarch64.so.1 libdir=aarch64-linux-gnu ;;
  *) echo "make hass-venv: no Python 3.13 found and no recipe for $arch; pass HA_PYTHON=/path/to/python3.13" >&2; exit 1 ;;
esac

# the headers too: a few of Home Assistant's requirements have no wheel and are compiled here
if [ ! -f "$rootfs/usr/include/python3.13/Python.h" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
    echo "make hass-venv: no Python 3.13 found (HA_PYTHON, python3.13 on PATH, pyenv) and making one needs root and debootstrap ('sudo make setup'); or pass HA_PYTHON=/path/to/python3.13" >&2
    exit 1
  fi
  echo "no Python 3.13 here: making one from Debian trixie's packages in $rootfs (debootstrap, about 2 minutes, once)"
  start=$SECONDS
  mkdir -p "$cache"
  rm -rf "$rootfs.partial"
  if ! debootstrap --variant=minbase --include=python3,python3-venv,libpython3.13-dev,ca-certificates trixie \
         "$rootfs.partial" "$mirror" >"$cache/python3.13-trixie.log" 2>&1; then
    echo "make hass-venv: debootstrap of Debian trixie failed (log: $cache/python3.13-trixie.log); or pass HA_PYTHON=/path/to/python3.13" >&2
    exit 1
  fi
  rm -rf "$rootfs"
  mv "$rootfs.partial" "$rootfs"
  echo "Python 3.13 ready in $((SECONDS - start)) s"
fi

run313() {  # trixie's interpreter with trixie's loader and libraries; $1 is what it takes as its path
  local argv0=$1
  shift
  "$rootfs/$loader" --library-path "$rootfs/lib/$libdir:$rootfs/usr/lib/$libdir" --argv0 "$argv0" \
    "$rootfs/usr/bin/python3.13" "$@"
}

echo "building $venv with Debian trixie's Python 3.13 ($rootfs)"
rm -rf "$venv"
run313 "$rootfs/usr/bin/python3.13" -m venv --without-pip "$venv"
venv_abs=$(cd "$venv" && pwd)
rm -f "$venv/bin/python3.13"
cat >"$venv/bin/python3.13" <<EOF
#!/bin/sh
# Debian trixie's Python 3.13 (made by scripts/ha-python.sh), run with its own loader and libraries;
# extensions pip compiles take trixie's Python headers (pyconfig.h is under the multiarch directory)
CPPFLAGS="-I$rootfs/usr/include -I$rootfs/usr/include/$libdir \${CPPFLAGS:-}"
export CPPFLAGS
exec "$rootfs/$loader" --library-path "$rootfs/lib/$libdir:$rootfs/usr/lib/$libdir" \\
  --argv0 "$venv_abs/bin/python3.13" "$rootfs/usr/bin/python3.13" "\$@"
EOF
chmod +x "$venv/bin/python3.13"
# trixie's ensurepip would look for its wheels in this machine's /usr/share/python-wheels: take
# pip from the package index instead
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 13)'
${HOST_PIP:-python3 -m pip} download -q --no-deps --only-binary :all: --python-version 3.13 -d "$wheels" pip >/dev/null 2>&1 ||
  "$venv/bin/python" -m ensurepip >/dev/null
for wheel in "$wheels"/pip-*.whl; do
  [ -e "$wheel" ] && "$venv/bin/python" "$wheel/pip" install -q --no-index "$wheel"
done
"$venv/bin/python" -m pip --version >/dev/null
