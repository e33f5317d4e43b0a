#!/usr/bin/env bash
# Installs what the tests need, idempotently, and quickly when it is already
# there (`make setup`; `make test` runs it first):
#   - Debian packages: kcat, prometheus (promtool), systemd (systemd-analyze),
#     iptables, xfsprogs (xfs_io), libfaketime; installed with apt when run as
#     root, otherwise named and the script stops;
#   - Python packages of it/requirements.txt into the project's virtual
#     environment .venv (never the system interpreter);
#   - the client libraries of `make compat` (it/compat/install.sh).
# The machine must already have a Rust toolchain, Python 3 with venv, Go,
# Node.js with npm, and a JDK with Maven.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}

# 1. Toolchains we do not install.
missing=()
for tool in cargo python3 go node npm java mvn; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: missing ${missing[*]}: the tests need a Rust toolchain (rustup), Python 3, Go, Node.js with npm, and a JDK with Maven" >&2
  exit 1
fi

# 2. Debian packages: command (or file) -> package.
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -e "$1" ]; }
have kcat || need+=(kcat)
have promtool || need+=(prometheus)
have systemd-analyze || need+=(systemd)
have iptables || have /usr/sbin/iptables || need+=(iptables)
have xfs_io || have /usr/sbin/xfs_io || need+=(xfsprogs)
have /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 || need+=(libfaketime)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: these Debian packages are missing; install them as root: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 3. The virtual environment; reinstalled only when the requirements change.
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$ROOT/it/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python3" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into $VENV" >&2
  "$VENV/bin/python3" -m pip install -q --upgrade pip
  "$VENV/bin/python3" -m pip install -q -r "$ROOT/it/requirements.txt"
  echo "$want" >"$stamp"
fi

# 4. The other client libraries of make compat.
PATH="$VENV/bin:$PATH" bash "$ROOT/it/compat/install.sh"
