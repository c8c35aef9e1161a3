#!/usr/bin/env bash
# svcdash's two set-up commands on a Debian/Ubuntu machine with a Rust toolchain:
#   ./dev.sh serve   installs any missing engine (PostgreSQL, Redis) from the OS
#                    packages, then runs svcdash on the embedded default
#   ./dev.sh test    installs what the tests need, then runs the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

# Debian package → a program it provides.
packages=(
  "postgresql:pg_dump"
  "redis-server:redis-server"
  "age:age"
  "zstd:zstd"
)

install_missing() {
  local missing=()
  for entry in "${packages[@]}"; do
    local pkg=${entry%%:*} program=${entry##*:}
    if [ "$pkg" = postgresql ]; then
      compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=("$pkg")
    else
      command -v "$program" >/dev/null || missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return
  fi
  echo "dev.sh: installing missing OS packages: ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged servers; svcdash runs its own.
  "${sudo[@]}" service postgresql stop >/dev/null 2>&1 || true
  "${sudo[@]}" service redis-server stop >/dev/null 2>&1 || true
}

# moto's S3-compatible server for the object-store tests, in a virtualenv of its own.
install_moto() {
  if [ -n "${MOTO_SERVER:-}" ] && [ -x "$MOTO_SERVER" ]; then
    return
  fi
  local venv=target/test-tools/moto
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "dev.sh: installing moto's S3 server (PyPI) into $venv" >&2
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      local sudo=()
      [ "$(id -u)" -eq 0 ] || sudo=(sudo)
      "${sudo[@]}" apt-get update -qq
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q 'moto[server]>=5,<6'
  fi
  export MOTO_SERVER="$PWD/$venv/bin/moto_server"
}

case "${1:-}" in
  serve)
    shift
    install_missing
    exec cargo run --release --locked -p svcdash -- serve "$@"
    ;;
  test)
    shift
    install_missing
    install_moto
    exec cargo test --workspace --locked "$@"
    ;;
  *)
    echo "usage: ./dev.sh serve [--listen ADDR --public-url URL] | ./dev.sh test [cargo test args]" >&2
    exit 2
    ;;
esac
