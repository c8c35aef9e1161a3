#!/usr/bin/env bash
# svcdash's two set-up commands on a Debian/Ubuntu machine with a Rust toolchain:
#   ./dev.sh serve   installs any missing engine (PostgreSQL, Redis, MariaDB,
#                    RabbitMQ) from the OS packages, then runs svcdash on the
#                    embedded default
#   ./dev.sh test    installs what the tests need, then runs the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

# Debian package → a program it provides (a path where it is off PATH).
packages=(
  "postgresql:/usr/lib/postgresql/*/bin/initdb"
  "redis-server:redis-server"
  "mariadb-server:/usr/sbin/mariadbd"
  "mariadb-backup:mariadb-backup"
  "galera-4:/usr/lib/galera/libgalera_smm.so"
  "socat:socat"
  "openssl:openssl"
  "rabbitmq-server:/usr/lib/rabbitmq/bin/rabbitmq-server"
  "age:age"
  "zstd:zstd"
  "pg-auto-failover-cli:pg_autoctl"
)

install_missing() {
  local missing=()
  for entry in "${packages[@]}"; do
    local pkg=${entry%%:*} program=${entry##*:}
    if [[ "$program" == /* ]]; then
      compgen -G "$program" >/dev/null || missing+=("$pkg")
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
  for service in postgresql redis-server mariadb rabbitmq-server; do
    "${sudo[@]}" service "$service" stop >/dev/null 2>&1 || true
  done
}

# The pg_auto_failover extension (PostgreSQL cluster instances' monitor) of the
# PostgreSQL version installed: its package name carries that version.
install_auto_failover() {
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if [ -f "/usr/share/postgresql/$version/extension/pgautofailover.control" ]; then
    return
  fi
  echo "dev.sh: installing postgresql-$version-auto-failover" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "postgresql-$version-auto-failover" >/dev/null
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

# The Node programs the tests start (crates/svcdash/tests/support/package.json:
# oidc-provider for the OpenID Connect tests, playwright-core for the browser
# tests), under target/ so the checkout holds no node_modules or lock file.
# Reinstalled only when package.json differs from the copy of the last install.
install_node_packages() {
  local dir=target/test-tools/node manifest=crates/svcdash/tests/support/package.json
  # oidc-provider 9 calls crypto.hash (Node 20.12); Debian 12's nodejs is 18.
  if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a * 100 + b >= 2012 ? 0 : 1)'; then
    echo "dev.sh: the tests need Node.js 20.12 or later; this is $(node --version)" >&2
    exit 1
  fi
  if [ ! -d "$dir/node_modules" ] || ! cmp -s "$manifest" "$dir/installed-package.json"; then
    echo "dev.sh: installing the tests' Node packages (npm) into $dir" >&2
    mkdir -p "$dir"
    cp "$manifest" "$dir/package.json"
    npm install --prefix "$dir" --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null
    cp "$manifest" "$dir/installed-package.json"
  fi
  export TEST_NODE_MODULES="$PWD/$dir/node_modules"
}

# Schemathesis drives every dashboard route of /v1/openapi.json against a running
# svcdash with generated requests and checks the answers against the document:
# no 5xx, documented status codes, bodies and content types.
api_fuzz() {
  local venv=target/test-tools/schemathesis
  if [ ! -x "$venv/bin/st" ]; then
    echo "dev.sh: installing schemathesis (PyPI) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis>=4,<5'
  fi
  # The same targets as `cargo test --workspace`, so the same features: nothing is
  # compiled again (`-p svcdash` alone would unify features differently).
  cargo build --locked -q --workspace --all-targets
  local bin=target/debug/svcdash work port pid status=0
  work=$(mktemp -d)
  chmod 755 "$work"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export SVCDASH_DATA="$work/data"
  "$bin" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
  pid=$!
  "$bin" users create fuzz >/dev/null
  "$bin" users grant fuzz --tenant default >/dev/null
  local token instance
  token=$("$bin" token --user fuzz)
  "$bin" instances create --service redis --plan single-small --wait fuzzed >/dev/null
  instance=$("$bin" instances show fuzzed | awk '/^id:/{print $2}')
  printf '[parameters]\n"path.instance_id" = "%s"\n' "$instance" >"$work/schemathesis.toml"
  (cd "$work" && "$OLDPWD/$venv/bin/st" run "http://127.0.0.1:$port/v1/openapi.json" \
      -H "Authorization: $token" --include-path-regex '^/(v1|service-instances)' \
      --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
      --max-examples 25 --seed 1) || status=$?
  kill -TERM "$pid"
  wait "$pid" || true
  # The instance's account (svcdash makes one per instance when it runs as root)
  # outlives a stopped svcdash, as it should; this one goes with the test.
  for folder in "$work"/data/instances/sd-*; do
    [ -d "$folder" ] && [ "$(id -u)" -eq 0 ] && userdel "$(basename "$folder")" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    echo "dev.sh: schemathesis found problems; svcdash's log: $work/serve.log" >&2
  else
    rm -rf "$work"
  fi
  unset SVCDASH_DATA
  return "$status"
}

case "${1:-}" in
  serve)
    shift
    install_missing
    install_auto_failover
    exec cargo run --release --locked -p svcdash -- serve "$@"
    ;;
  test)
    shift
    packages+=("nodejs:node" "npm:npm" "chromium:chromium")
    install_missing
    install_auto_failover
    install_moto
    install_node_packages
    log=$(mktemp)
    cargo test --workspace --locked "$@" 2>&1 | tee "$log"
    api_fuzz
    # One closing line for the whole run: cargo's own last line is a doc-test
    # binary with nothing in it.
    passed=$(awk '/^test result:/ { n += $4 } END { print n + 0 }' "$log")
    rm -f "$log"
    echo "tests: $((passed + 1)) passed, 0 failed"
    ;;
  *)
    echo "usage: ./dev.sh serve [--listen ADDR --public-url URL] | ./dev.sh test [cargo test args]" >&2
    exit 2
    ;;
esac
