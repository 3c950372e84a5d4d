# shellcheck shell=bash
# Installs what murmur's build and tests need, skipping what is already
# there, and holds the release build both use (`release_build`). Sourced by
# scripts/run and scripts/test. Everything comes from the package registries
# (crates.io, npm, Debian): nothing is downloaded from GitHub, which this
# kind of machine cannot reach.

CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_VERSION=132
MURMUR_TOOLS="${MURMUR_TOOLS:-$HOME/.cache/murmur-tools}"

say() { printf '\033[1;35m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

apt_install() {
  say "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_rust() {
  export PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  # The release WASM rebuilds the standard library (release_build below).
  if ! rustup component list --installed | grep -q '^rust-src'; then
    say "adding the rust-src component"
    rustup component add rust-src
  fi
}

# The release build (server and WASM client, one WASM chunk per lazy page).
# The client's standard library is rebuilt with panics that abort at once
# and without source locations: no panic messages, locations or their
# formatting in the browser's download, ~9% less on every dashboard route
# (BENCHMARKS.md, "the release WASM with its standard library rebuilt").
# These are unstable compiler options: RUSTC_BOOTSTRAP lets this machine's
# stable toolchain take them, for this build only (ARCHITECTURE.md, "The
# release WASM").
# Arguments go to cargo-leptos (e.g. --frontend-only).
release_build() {
  env -u RUSTFLAGS RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" \
    cargo leptos build --release --split --lib-cargo-args=-Zbuild-std=std,panic_abort "$@"
}

ensure_cargo_leptos() {
  if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes a while, once)"
    cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
  fi
}

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
ensure_wasm_bindgen() {
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
  [ -n "$want" ] || die "wasm-bindgen not found in Cargo.lock"
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    say "installing wasm-bindgen-cli $want"
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

ensure_node() {
  if ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
}

# wasm-opt for release builds, from npm's binaryen (Debian's is too old and
# produces WASM that breaks hydration).
ensure_wasm_opt() {
  ensure_node
  export PATH="$MURMUR_TOOLS/node_modules/.bin:$PATH"
  if ! wasm-opt --version 2>/dev/null | grep -q "version $BINARYEN_VERSION"; then
    say "installing wasm-opt (npm binaryen@$BINARYEN_VERSION) into $MURMUR_TOOLS"
    mkdir -p "$MURMUR_TOOLS"
    npm install --prefix "$MURMUR_TOOLS" --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION"
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
  fi
}

ensure_e2e_packages() {
  ensure_node
  if [ ! -x end2end/node_modules/.bin/playwright ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing the end-to-end test packages"
    # Playwright must never download a browser: the tests use Debian's chromium.
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  fi
}

# PostgreSQL for the storage suite: start the local cluster if it is
# installed and stopped. With CI=true an unreachable PostgreSQL is fatal.
ensure_postgres() {
  local url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  if pg_up "$url"; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "starting the local PostgreSQL cluster"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 20); do pg_up "$url" && return 0; sleep 0.5; done
  fi
  if [ "${CI:-}" = "true" ]; then
    die "PostgreSQL is unreachable at $url and CI=true"
  fi
  say "PostgreSQL is unreachable at $url: its tests will be skipped (they fail when CI=true)"
}

pg_up() {
  if command -v pg_isready >/dev/null; then
    local hostport="${1#*@}"; hostport="${hostport%%/*}"
    pg_isready -q -h "${hostport%%:*}" -p "${hostport##*:}"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/5432") 2>/dev/null
  fi
}
