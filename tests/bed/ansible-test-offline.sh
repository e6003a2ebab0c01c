#!/usr/bin/env bash
# ansible-test builds its venvs --without-pip and downloads get-pip.py from a host these
# machines cannot reach. Put a stand-in in its cache that bootstraps pip with ensurepip
# (in a subprocess: in-process ensurepip hides /etc/pip.conf and breaks TLS to PyPI).
set -euo pipefail
cache=${HOME}/.ansible/test/cache
mkdir -p "$cache"
for name in get_pip_24_2.py; do
  cat > "$cache/$name" <<'PY'
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
PY
done
