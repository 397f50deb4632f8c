#!/usr/bin/env bash
# Local test infrastructure: PostgreSQL, Kafka (KRaft), FerretDB (MongoDB wire), Envoy.
# See README.md next to this file.
set -euo pipefail

INFRA_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib/common.sh
source "$INFRA_SCRIPT_DIR/lib/common.sh"
# shellcheck source=SCRIPTDIR/lib/postgres.sh
source "$INFRA_SCRIPT_DIR/lib/postgres.sh"
# shellcheck source=SCRIPTDIR/lib/kafka.sh
source "$INFRA_SCRIPT_DIR/lib/kafka.sh"
# shellcheck source=SCRIPTDIR/lib/mongo.sh
source "$INFRA_SCRIPT_DIR/lib/mongo.sh"
# shellcheck source=SCRIPTDIR/lib/envoy.sh
source "$INFRA_SCRIPT_DIR/lib/envoy.sh"
# shellcheck source=SCRIPTDIR/lib/k8s.sh
source "$INFRA_SCRIPT_DIR/lib/k8s.sh"

usage() {
  cat <<EOF
usage: $(basename "$0") COMMAND [ARGS...]

  install [COMPONENT...]   install what is missing (default: postgres kafka mongo envoy k8s)
  up      [COMPONENT...]   install if missing, start, wait until ready (default: postgres kafka mongo;
                           'envoy' only ensures the binary is installed)
  down    [COMPONENT...]   stop: graceful signal, SIGKILL after ${INFRA_STOP_TIMEOUT}s (default: postgres kafka mongo)
  status  [COMPONENT...]   one line per component (exit 3 if any requested service is not running)
  env                      print 'export VAR=...' lines (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, MONGO_URL, ENVOY_BIN, KUSTOMIZE_BIN, KUBERNETES_VALIDATE_BIN)
  check   [COMPONENT...]   smoke-test running components (select 1, topic+produce+consume, insert+find, envoy --version)
  kafka-topics ARGS...             org.apache.kafka.tools.TopicCommand (--bootstrap-server added if absent)
  kafka-console-producer ARGS...   org.apache.kafka.tools.ConsoleProducer
  kafka-console-consumer ARGS...   org.apache.kafka.tools.consumer.ConsoleConsumer

COMPONENT: postgres | kafka | mongo | envoy | k8s (kustomize and kubernetes-validate).   State dir: $INFRA_DIR
EOF
}

# normalize DEFAULT_SET ARGS...: validate component names and store them, in dependency
# order, in the global array COMPS (DEFAULT_SET: all | services, used when ARGS is empty).
normalize() {
  local default="$1"
  shift
  local -a req
  if (($# == 0)); then
    if [[ "$default" == all ]]; then req=("${ALL_COMPONENTS[@]}"); else req=("${SERVICE_COMPONENTS[@]}"); fi
  else
    req=("$@")
  fi
  local c r ok
  for r in "${req[@]}"; do
    ok=0
    for c in "${ALL_COMPONENTS[@]}"; do [[ "$r" == "$c" ]] && ok=1; done
    ((ok)) || {
      usage >&2
      die "unknown component '$r' (expected one of: ${ALL_COMPONENTS[*]})"
    }
  done
  COMPS=()
  for c in "${ALL_COMPONENTS[@]}"; do
    for r in "${req[@]}"; do
      if [[ "$r" == "$c" ]]; then
        COMPS+=("$c")
        break
      fi
    done
  done
}

# Serialise install/up/down across concurrent invocations (e.g. parallel test jobs):
# re-run this script under `flock -o`. flock keeps the lock in its own process and
# (-o) does not pass the lock fd on, so services we start can never inherit the lock.
take_lock() {
  local lock="$INFRA_DIR/.lock"
  [[ "${INFRA_LOCK_HELD:-}" == "$lock" ]] && return 0
  mkdir -p "$INFRA_DIR"
  local rc=0
  INFRA_LOCK_HELD="$lock" flock -o -w 900 -E 200 "$lock" bash "$INFRA_SCRIPT_DIR/infra.sh" "${INFRA_ARGV[@]}" || rc=$?
  ((rc != 200)) || die "could not lock $lock within 900s (another infra.sh install/up/down is running?)"
  exit "$rc"
}

cmd_install() {
  normalize all "$@"
  take_lock
  local c t0
  for c in "${COMPS[@]}"; do
    t0=$SECONDS
    "${c}_install"
    log "$c: install step done in $((SECONDS - t0))s"
  done
}

cmd_up() {
  normalize services "$@"
  take_lock
  local c
  for c in "${COMPS[@]}"; do
    case "$c" in
      postgres) postgres_is_installed || postgres_install; postgres_start ;;
      kafka) kafka_start ;;
      mongo) mongo_start ;;
      envoy) envoy_install ;;
      k8s) k8s_install ;;
    esac
  done
}

cmd_down() {
  normalize services "$@"
  take_lock
  local i c
  # Reverse dependency order: mongo (uses postgres) first.
  for ((i = ${#COMPS[@]} - 1; i >= 0; i--)); do
    c="${COMPS[i]}"
    case "$c" in
      postgres)
        if [[ "$INFRA_MONGO_BACKEND" == postgresql ]] && mongo_pid >/dev/null; then
          warn "mongo (FerretDB) is still running and uses postgres as its backend"
        fi
        postgres_stop
        ;;
      kafka) kafka_stop ;;
      mongo) mongo_stop ;;
      envoy) log "envoy: nothing to stop (tests run their own envoy processes)" ;;
      k8s) log "k8s: nothing to stop (tools only)" ;;
    esac
  done
}

cmd_status() {
  normalize services "$@"
  local c pid state addr rc=0
  for c in "${COMPS[@]}"; do
    if [[ "$c" == envoy || "$c" == k8s ]]; then
      if "${c}_is_installed"; then
        printf '%-9s %-9s\n' "$c" installed
      else
        printf '%-9s %-9s %s\n' "$c" missing "-"
        rc=3
      fi
      continue
    fi
    addr="$("${c}_addr")"
    if pid="$("${c}_pid")"; then
      case "$c" in
        postgres) postgres_ready && state=running || state=unhealthy ;;
        kafka) kafka_port_ready && state=running || state=unhealthy ;;
        mongo) mongo_ready && state=running || state=unhealthy ;;
      esac
      [[ "$state" == running ]] || rc=3
      printf '%-9s %-9s %-16s pid=%s\n' "$c" "$state" "$addr" "$pid"
    else
      printf '%-9s %-9s %s\n' "$c" stopped "$addr"
      rc=3
    fi
  done
  return "$rc"
}

cmd_env() {
  printf 'export INFRA_DIR=%q\n' "$INFRA_DIR"
  printf 'export DATABASE_URL=%q\n' "$(postgres_url)"
  printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$(kafka_addr)"
  printf 'export MONGO_URL=%q\n' "$(mongo_url)"
  local b
  if b="$(envoy_bin)"; then
    printf 'export ENVOY_BIN=%q\n' "$b"
  else
    printf '# envoy not installed: run %q install envoy\n' "$0"
  fi
  if k8s_is_installed; then
    printf 'export KUSTOMIZE_BIN=%q\n' "$KUSTOMIZE_BIN"
    printf 'export KUBERNETES_VALIDATE_BIN=%q\n' "$KUBEVAL_BIN"
  else
    printf '# kustomize and kubernetes-validate not installed: run %q install k8s\n' "$0"
  fi
}

cmd_check() {
  normalize all "$@"
  local c
  for c in "${COMPS[@]}"; do
    if [[ "$c" != envoy && "$c" != k8s ]] && ! "${c}_pid" >/dev/null; then
      die "$c is not running (run: $0 up $c)"
    fi
    "${c}_check"
  done
}

main() {
  (($# > 0)) || {
    usage >&2
    exit 2
  }
  INFRA_ARGV=("$@")
  local cmd="$1"
  shift
  case "$cmd" in
    install) cmd_install "$@" ;;
    up) cmd_up "$@" ;;
    down | stop) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env ;;
    check) cmd_check "$@" ;;
    kafka-topics) kafka_tool org.apache.kafka.tools.TopicCommand "$@" ;;
    kafka-console-producer) kafka_tool org.apache.kafka.tools.ConsoleProducer "$@" ;;
    kafka-console-consumer) kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      die "unknown command '$cmd'"
      ;;
  esac
}

main "$@"
