# Sourced by scripts/test and scripts/demo: pick the newest supported Python, then
# create or update its virtual environment (.venv/py3.14 or .venv/py3.13) with the
# pinned dependencies of the matching Home Assistant track.
#   Python 3.14 -> Home Assistant 2026.10.x (pytest-homeassistant-custom-component 0.13.375)
#   Python 3.13 -> Home Assistant 2025.4.x  (pytest-homeassistant-custom-component 0.13.236)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  local candidate
  for candidate in python3.14 python3.13; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv' >/dev/null 2>&1; then
      command -v "$candidate"; return 0
    fi
  done
  # pyenv installs that are not on PATH
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.14*/bin/python3.14 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

PYTHON="$(find_python)" || { echo "cariflex: needs Python 3.14 or 3.13 (none found on PATH or in pyenv)" >&2; exit 2; }
PY_VERSION="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
case "$PY_VERSION" in
  3.14) TRACK="ha-2026.10" ;;
  3.13) TRACK="ha-2025.4" ;;
  *) echo "cariflex: unsupported Python $PY_VERSION" >&2; exit 2 ;;
esac
VENV="$ROOT/.venv/py$PY_VERSION"
REQ="$ROOT/requirements/$TRACK.txt"
echo "cariflex: Python $PY_VERSION ($PYTHON) -> Home Assistant track $TRACK, venv $VENV"

stamp_of() { cat "$ROOT"/requirements/*.txt | sha256sum | cut -d' ' -f1; }
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$VENV/.cariflex-stamp" 2>/dev/null)" != "$(stamp_of)" ]; then
  echo "cariflex: installing $TRACK dependencies (first run takes a few minutes)..."
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c 'import homeassistant, ocpp, websockets' || { echo "cariflex: dependency install failed" >&2; exit 2; }
  stamp_of > "$VENV/.cariflex-stamp"
fi
export PATH="$VENV/bin:$PATH"
export CARIFLEX_TRACK="$TRACK"
