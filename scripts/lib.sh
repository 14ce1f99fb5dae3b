# shellcheck shell=bash
# Shared provisioning for scripts/develop, scripts/test and scripts/bench.
#
# Home Assistant 2026.x needs Python >= 3.14.2. When such a python (plus the
# influxd and victoria-metrics servers) is on PATH we use it directly.
# Otherwise, on Debian/Ubuntu as root, we build once a Debian sid root with
# debootstrap that ships python3.14/3.13 and both servers as binaries, and run
# inside it with bubblewrap. The root and the virtualenvs live in a cache dir
# outside the git tree, so a second run only checks a stamp.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${HA_INGESTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha_ingestor}"
SID_ROOT="$CACHE/sid-root"
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# gcc and the headers build the few dependencies that ship no wheel for every release.
SID_PACKAGES="python3.14,python3.14-venv,python3.14-dev,python3.13,python3.13-venv,ca-certificates,influxdb,victoria-metrics,procps,gcc,g++,libc6-dev"

log() { printf '\033[1;34m[ha_ingestor]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[ha_ingestor] error:\033[0m %s\n' "$*" >&2; exit 1; }

# python_ok PY MAJOR MINOR PATCH: true when PY exists and is >= the version.
python_ok() {
  command -v "$1" >/dev/null 2>&1 || return 1
  "$1" -c "import sys; sys.exit(0 if sys.version_info[:3] >= ($2, $3, $4) else 1)" 2>/dev/null
}

# Decide between "native" and "sid" mode once per script run.
select_mode() {
  if [[ "${HA_INGESTOR_MODE:-}" == "native" || "${HA_INGESTOR_MODE:-}" == "sid" ]]; then
    MODE="$HA_INGESTOR_MODE"; return
  fi
  MODE="sid"
  if command -v influxd >/dev/null 2>&1 && command -v victoria-metrics >/dev/null 2>&1; then
    for py in python3.14 python3; do
      if python_ok "$py" 3 14 2; then MODE="native"; NATIVE_PY314="$(command -v "$py")"; break; fi
    done
  fi
}

# The Debian mirror debootstrap downloads from: HA_INGESTOR_MIRROR, else the
# machine's own Debian source. Ubuntu lists no Debian mirror, so there (and in
# CI) HA_INGESTOR_MIRROR must name one.
mirror_url() {
  if [[ -n "${HA_INGESTOR_MIRROR:-}" ]]; then
    echo "$HA_INGESTOR_MIRROR"; return
  fi
  local url
  url="$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -i debian | grep -v -i security | head -n1 | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')" || true
  [[ -n "$url" ]] || die "no Debian mirror in /etc/apt/sources.list* (Ubuntu lists none): set HA_INGESTOR_MIRROR to the URL of a Debian mirror"
  echo "$url"
}

ensure_sid_root() {
  local stamp="$SID_ROOT/.ha_ingestor_stamp"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$SID_PACKAGES" ]]; then
    return
  fi
  [[ "$(id -u)" == "0" ]] || die "no Python >= 3.14.2 with influxd and victoria-metrics on PATH, and not root: cannot build the Debian sid root. Install them, or run as root on Debian/Ubuntu."
  command -v apt-get >/dev/null 2>&1 || die "no suitable Python on PATH and no apt-get to provision one (Debian/Ubuntu needed)"
  # Ubuntu ships debootstrap's Debian scripts but not Debian's archive key.
  if ! command -v debootstrap >/dev/null 2>&1 || ! command -v bwrap >/dev/null 2>&1 \
    || [[ ! -f "$DEBIAN_KEYRING" ]]; then
    log "installing debootstrap, bubblewrap and the Debian archive keyring"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap bubblewrap debian-archive-keyring >/dev/null
  fi
  mkdir -p "$CACHE" "$CACHE/debs"
  if [[ -f "$stamp" ]]; then
    # An older root: add what the package list gained instead of rebuilding it.
    log "updating the Debian sid root's packages"
    sync_host_files
    bwrap --bind "$SID_ROOT" / --proc /proc --dev /dev --tmpfs /tmp --chdir / --clearenv \
      --setenv PATH /usr/sbin:/usr/bin:/sbin:/bin --setenv DEBIAN_FRONTEND noninteractive \
      sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $(tr ',' ' ' <<<"$SID_PACKAGES")" \
      >"$CACHE/apt.log" 2>&1 || { tail -n 20 "$CACHE/apt.log" >&2; die "updating the sid root failed (log: $CACHE/apt.log)"; }
  else
    local mirror
    mirror="$(mirror_url)"
    log "building Debian sid root in $SID_ROOT (once, ~1 min)"
    rm -rf "$SID_ROOT.tmp"
    # --cache-dir keeps the downloaded packages outside the root, so CI can cache them.
    if ! debootstrap --variant=minbase --keyring="$DEBIAN_KEYRING" --cache-dir="$CACHE/debs" \
      --include="$SID_PACKAGES" sid "$SID_ROOT.tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
      tail -n 20 "$CACHE/debootstrap.log" >&2
      rm -rf "$SID_ROOT.tmp"
      die "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    rm -rf "$SID_ROOT"
    mv "$SID_ROOT.tmp" "$SID_ROOT"
  fi
  echo "$SID_PACKAGES" >"$stamp"
}

# Refresh network config each run: the host's may have changed since the build.
sync_host_files() {
  cp /etc/resolv.conf "$SID_ROOT/etc/resolv.conf" 2>/dev/null || true
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    cp /etc/ssl/certs/ca-certificates.crt "$SID_ROOT/etc/ssl/certs/ca-certificates.crt"
  fi
}

# in_env CMD...: run CMD with the repository at /src (sid) or in place (native).
in_env() {
  if [[ "$MODE" == "native" ]]; then
    (cd "$REPO" && env HA_INGESTOR_VENVS="$CACHE/venvs" "$@")
  else
    local tty_args=()
    # --unshare-pid: when the command ends (or Ctrl-C), nothing it started survives.
    mkdir -p "$CACHE/pip"
    # pip's download cache lives outside the root too (CI caches it, not the root).
    bwrap --bind "$SID_ROOT" / --bind "$REPO" /src --bind "$CACHE/pip" /root/.cache/pip \
      --unshare-pid --proc /proc --dev /dev --tmpfs /tmp \
      --die-with-parent --chdir /src --clearenv \
      --setenv PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --setenv HOME /root --setenv LANG C.UTF-8 --setenv TERM "${TERM:-dumb}" \
      --setenv CI "${CI:-}" --setenv PIP_DISABLE_PIP_VERSION_CHECK 1 \
      --setenv PIP_DEFAULT_TIMEOUT 180 --setenv HA_INGESTOR_VENVS /opt/venvs \
      --setenv SSL_CERT_FILE /etc/ssl/certs/ca-certificates.crt \
      --setenv PYTEST_ADDOPTS "${PYTEST_ADDOPTS:-}" \
      "${tty_args[@]}" "$@"
  fi
}

venv_dir() { # name -> path seen from inside the environment
  if [[ "$MODE" == "native" ]]; then echo "$CACHE/venvs/$1"; else echo "/opt/venvs/$1"; fi
}

# ensure_venv NAME PYTHON REQFILE...: create/refresh a venv when requirements change.
ensure_venv() {
  local name="$1" py="$2"; shift 2
  local dir; dir="$(venv_dir "$name")"
  local hash; hash="$(cat "$@" | sha256sum | cut -c1-16)"
  local host_dir="$dir"
  [[ "$MODE" == "sid" ]] && host_dir="$SID_ROOT$dir"
  if [[ -f "$host_dir/.req-hash" && "$(cat "$host_dir/.req-hash")" == "$hash" ]]; then
    return
  fi
  log "installing $name environment ($py)"
  local reqs=()
  for f in "$@"; do reqs+=(-r "$f"); done
  in_env sh -c "rm -rf '$dir' && $py -m venv '$dir' && '$dir/bin/pip' install -q --upgrade pip >/dev/null && '$dir/bin/pip' install -q ${reqs[*]} && echo $hash > '$dir/.req-hash'" \
    || die "installing the $name environment failed"
}

setup_env() {
  select_mode
  if [[ "$MODE" == "sid" ]]; then
    ensure_sid_root
    sync_host_files
    # shellcheck disable=SC2034 # read by the scripts that source this file
    PY314=python3.14
  else
    # shellcheck disable=SC2034
    PY314="$NATIVE_PY314"
  fi
  log "mode: $MODE"
}
