# Shared set-up for scripts/test, scripts/demo and scripts/bench: system tools and the venv.
# Sourced, not run. Installs everything the scripts need on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BACKUPKIT_VENV:-$ROOT/.venv}"

ensure_system_tools() {
  # The tests and the demo use the stock tools an operator would: tar with zstd, the sqlite3 CLI,
  # age to decrypt an encrypted archive, and ssh-keygen to make an SSH recipient.
  local need=()
  command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
  command -v zstd >/dev/null 2>&1 || need+=(zstd)
  command -v tar >/dev/null 2>&1 || need+=(tar)
  command -v age >/dev/null 2>&1 || need+=(age)
  command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
  install_packages "${need[@]}"
}

ensure_bench_tools() {
  # Only scripts/bench: the peers it times beside backupkit (Debian's restic and borgbackup).
  local need=()
  command -v restic >/dev/null 2>&1 || need+=(restic)
  command -v borg >/dev/null 2>&1 || need+=(borgbackup)
  install_packages "${need[@]}"
}

install_packages() {
  if [ $# -eq 0 ]; then return 0; fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing $* ..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "please install: $*" >&2
    exit 2
  fi
}

ensure_venv() {
  # Install once, then reuse the environment while pyproject.toml (what it installs) is the same:
  # a second run starts at once. The stamp holds the hash of the file it was installed from.
  local py="${PYTHON:-python3}"
  local stamp="$VENV/.backupkit-installed"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    "$py" -m venv "$VENV"
  fi
  echo "installing backupkit and its test tools into $VENV ..." >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  local log
  log="$(mktemp)"
  # Quiet unless it fails: setuptools' editable-install warnings are noise on a good run.
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  echo "$want" >"$stamp"
}

# The tests' S3-protocol server: ministack in a virtual environment of its own (it pins its own
# botocore, which must not meet ours). Installed once per version, quietly.
S3_SERVER_VERSION="ministack==1.5.33"
S3_VENV="${BACKUPKIT_S3_VENV:-$ROOT/.venv-s3}"

ensure_s3_server() {
  local py="${PYTHON:-python3}"
  local stamp="$S3_VENV/.backupkit-installed"
  if [ -x "$S3_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$S3_SERVER_VERSION" ]; then
    export BACKUPKIT_TEST_S3_PYTHON="$S3_VENV/bin/python"
    return 0
  fi
  [ -x "$S3_VENV/bin/python" ] || "$py" -m venv "$S3_VENV"
  echo "installing the tests' S3 server ($S3_SERVER_VERSION) into $S3_VENV ..." >&2
  local log
  log="$(mktemp)"
  if ! "$S3_VENV/bin/python" -m pip install -q --disable-pip-version-check "$S3_SERVER_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  echo "$S3_SERVER_VERSION" >"$stamp"
  export BACKUPKIT_TEST_S3_PYTHON="$S3_VENV/bin/python"
}
