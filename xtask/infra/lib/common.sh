# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # vars are used by the other sourced files; single quotes are intentional
# Shared helpers for infra.sh. Sourced, not executed.

# --- locations & settings (all overridable from the environment) -------------
INFRA_SCRIPT_DIR="${INFRA_SCRIPT_DIR:?}"
REPO_ROOT="$(cd "$INFRA_SCRIPT_DIR/../.." && pwd)"
INFRA_DIR="${INFRA_DIR:-$REPO_ROOT/.infra}"
# One spelling per folder (`repo/xtask/../.infra` is `repo/.infra`): where PostgreSQL
# lives when run as root is keyed by this string.
mkdir -p "$INFRA_DIR" && INFRA_DIR="$(cd "$INFRA_DIR" && pwd)"
INFRA_HOST=127.0.0.1

INFRA_PG_PORT="${INFRA_PG_PORT:-55432}"
INFRA_KAFKA_PORT="${INFRA_KAFKA_PORT:-59092}"
INFRA_KAFKA_CONTROLLER_PORT="${INFRA_KAFKA_CONTROLLER_PORT:-59093}"
INFRA_KAFKA_PARTITIONS="${INFRA_KAFKA_PARTITIONS:-1}"
INFRA_KAFKA_HEAP="${INFRA_KAFKA_HEAP:-512m}"
INFRA_MONGO_PORT="${INFRA_MONGO_PORT:-57017}"
INFRA_MONGO_BACKEND="${INFRA_MONGO_BACKEND:-postgresql}" # postgresql | sqlite
INFRA_USER="${INFRA_USER:-shopinfra}"                    # unprivileged user for postgres when run as root
INFRA_STOP_TIMEOUT="${INFRA_STOP_TIMEOUT:-20}"           # seconds between graceful signal and SIGKILL
INFRA_START_TIMEOUT="${INFRA_START_TIMEOUT:-90}"         # seconds to wait for readiness

# Pinned versions.
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
KAFKA_VERSION="${INFRA_KAFKA_VERSION:-4.1.1}"
KAFKA_SCALA=2.13
LOG4J_VERSION=2.24.3 # matches the log4j-core that kafka 4.1.1 depends on
FERRETDB_VERSION="${INFRA_FERRETDB_VERSION:-v1.24.2}"
ENVOY_VERSION="${INFRA_ENVOY_VERSION:-1.40.0}"
PYMONGO_VERSION="${INFRA_PYMONGO_VERSION:-4.15.5}"
KUSTOMIZE_VERSION="${INFRA_KUSTOMIZE_VERSION:-5.7.1}"
# Ships the OpenAPI schemas of many Kubernetes versions; the tests name one (K8S_VERSION).
KUBERNETES_VALIDATE_VERSION="${INFRA_KUBERNETES_VALIDATE_VERSION:-1.34.1}"

ALL_COMPONENTS=(postgres kafka mongo envoy k8s)
SERVICE_COMPONENTS=(postgres kafka mongo)

# --- output --------------------------------------------------------------------
log() { printf '[infra] %s\n' "$*" >&2; }
warn() { printf '[infra] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[infra] ERROR: %s\n' "$*" >&2
  exit 1
}

# die_with_log MESSAGE LOGFILE: print the tail of the log file, then fail.
die_with_log() {
  local msg="$1" logfile="$2"
  printf '[infra] ERROR: %s\n' "$msg" >&2
  printf '[infra] see log file: %s (last 30 lines below)\n' "$logfile" >&2
  if [[ -f "$logfile" ]]; then
    printf -- '----- %s -----\n' "$logfile" >&2
    tail -n 30 "$logfile" >&2 || true
    printf -- '----- end of %s -----\n' "$logfile" >&2
  else
    printf '[infra] (log file does not exist)\n' >&2
  fi
  exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# apt_install PKG...: install Debian packages (root only).
apt_install() {
  is_root || die "need Debian packages '$*' but not running as root; install them with: sudo apt-get install -y $*"
  log "apt-get install -y $*"
  # 'apt-get update' only once per invocation.
  if [[ -z "${_INFRA_APT_UPDATED:-}" ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    _INFRA_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# --- processes -------------------------------------------------------------------

# pid_alive PID [CMD_SUBSTRING]: PID exists and (optionally) its command line contains the substring.
pid_alive() {
  local pid="$1" want="${2:-}"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # A zombie is not alive.
  local state
  state="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
  [[ "$state" != Z ]] || return 1
  if [[ -n "$want" ]]; then
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$want"* ]] || return 1
  fi
  return 0
}

# read_pidfile FILE CMD_SUBSTRING: print the pid stored in FILE (first line) if that process is alive.
read_pidfile() {
  local file="$1" want="$2" pid
  [[ -f "$file" ]] || return 1
  pid="$(head -n 1 "$file" 2>/dev/null | tr -d '[:space:]')"
  pid_alive "$pid" "$want" || return 1
  printf '%s\n' "$pid"
}

# spawn PIDFILE LOGFILE CMD...: start CMD detached (new session, stdin from /dev/null,
# stdout+stderr appended to LOGFILE) and record its pid in PIDFILE.
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  rm -f "$pidfile"
  # The inner bash writes its own pid and then exec's the command, so the pid is
  # exactly that of the service, whether or not setsid had to fork.
  nohup env -u INFRA_LOCK_HELD setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.1
  done
  die_with_log "failed to start: $*" "$logfile"
}

# stop_pid NAME PID SIGNAL: send SIGNAL, wait up to INFRA_STOP_TIMEOUT s, then SIGKILL
# the process group (the services run as session/group leaders).
stop_pid() {
  local name="$1" pid="$2" sig="$3"
  log "stopping $name (pid $pid, SIG$sig)"
  kill -s "$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + INFRA_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "$name did not exit within ${INFRA_STOP_TIMEOUT}s; sending SIGKILL"
    kill -s KILL -- "-$pid" 2>/dev/null || kill -s KILL "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  # Stray children (same process group) must not keep ports open.
  kill -s KILL -- "-$pid" 2>/dev/null || true
}

# --- network -----------------------------------------------------------------------

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$INFRA_HOST" "$1" 2>/dev/null
}

# wait_until TIMEOUT_S PID LOGFILE DESCRIPTION CHECK_CMD...: poll CHECK_CMD until it
# succeeds; fail early (showing the log) if PID dies, or when the timeout expires.
wait_until() {
  local timeout_s="$1" pid="$2" logfile="$3" what="$4"
  shift 4
  local deadline=$((SECONDS + timeout_s))
  while true; do
    if "$@"; then
      return 0
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      die_with_log "$what: process $pid exited before becoming ready" "$logfile"
    fi
    if ((SECONDS >= deadline)); then
      die_with_log "$what: not ready after ${timeout_s}s" "$logfile"
    fi
    sleep 0.5
  done
}

ensure_port_free() {
  local name="$1" port="$2"
  if port_open "$port"; then
    die "$name: port $INFRA_HOST:$port is already in use by another process (not started by this harness?). Stop it or override the port (see README)."
  fi
}

# --- misc ----------------------------------------------------------------------------

# comp_dir NAME: create and print INFRA_DIR/NAME (with its log/ subdir).
comp_dir() {
  mkdir -p "$INFRA_DIR/$1/log"
  printf '%s\n' "$INFRA_DIR/$1"
}

find_java() {
  if command -v java >/dev/null 2>&1; then
    command -v java
    return
  fi
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
    return
  fi
  return 1
}

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    printf '%s\n' /usr/local/go/bin/go
  else
    return 1
  fi
}
