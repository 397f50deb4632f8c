# shellcheck shell=bash
# PostgreSQL 15 (Debian package), private cluster under $INFRA_DIR/postgres.

# As root the cluster runs as $INFRA_USER, which must traverse every parent of its data
# dir; a checkout under a private home (e.g. /root, mode 700) is not reachable, so the
# cluster then lives under /var/tmp instead (keyed by INFRA_DIR, so checkouts differ).
infra_parents_traversable() {
  local d="$INFRA_DIR"
  while [[ "$d" != / && "$d" != . ]]; do
    d="$(dirname "$d")"
    [[ -n "$(find "$d" -maxdepth 0 -perm -o+x 2>/dev/null)" ]] || return 1
  done
}
if is_root && ! infra_parents_traversable; then
  PG_DIR="/var/tmp/shop-infra-$(printf %s "$INFRA_DIR" | sha256sum | cut -c1-12)/postgres"
else
  PG_DIR="$INFRA_DIR/postgres"
fi
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run" # unix socket directory
PG_LOG="$PG_DIR/log/postgres.log"

postgres_addr() { printf '%s:%s' "$INFRA_HOST" "$INFRA_PG_PORT"; }
postgres_url() { printf 'postgres://postgres@%s:%s/postgres' "$INFRA_HOST" "$INFRA_PG_PORT"; }

postgres_is_installed() { [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_isready" ]]; }

# Run a command as the unprivileged cluster owner (postgres refuses to run as root).
pg_as_owner() {
  if is_root; then
    runuser -u "$INFRA_USER" -- "$@"
  else
    "$@"
  fi
}

postgres_install() {
  if postgres_is_installed; then
    log "postgres: PostgreSQL $PG_MAJOR already installed ($PG_BIN)"
  else
    apt_install "postgresql-$PG_MAJOR"
    postgres_is_installed || die "postgres: $PG_BIN/postgres still missing after installing postgresql-$PG_MAJOR"
  fi
  if is_root && ! id -u "$INFRA_USER" >/dev/null 2>&1; then
    log "postgres: creating system user $INFRA_USER"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$INFRA_USER"
  fi
}

postgres_pid() {
  # postmaster.pid is written by postgres itself; first line is the postmaster pid.
  read_pidfile "$PG_DATA/postmaster.pid" postgres
}

postgres_ready() {
  "$PG_BIN/pg_isready" -q -h "$INFRA_HOST" -p "$INFRA_PG_PORT" -U postgres -d postgres -t 2
}

postgres_psql() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$INFRA_HOST" -p "$INFRA_PG_PORT" -U postgres "$@"
}

# As root, postgres runs as $INFRA_USER, which must be able to reach $PG_DIR through
# every parent directory (e.g. a checkout under /root, mode 700, is not reachable).
postgres_check_access() {
  is_root || return 0
  mkdir -p "$PG_DIR"
  chmod o+x "$INFRA_DIR" "$PG_DIR"
  runuser -u "$INFRA_USER" -- test -x "$PG_DIR" && return 0
  local d="$PG_DIR" blocking=""
  while [[ "$d" != / ]]; do
    d="$(dirname "$d")"
    runuser -u "$INFRA_USER" -- test -x "$d" || blocking="$d"
  done
  die "postgres: user '$INFRA_USER' cannot reach $PG_DIR (directory '${blocking:-?}' is not searchable by others). Fix: chmod o+x '${blocking:-?}', or put the state elsewhere with INFRA_DIR=/path/outside/it"
}

postgres_initdb() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
  log "postgres: initdb $PG_DATA"
  rm -rf "$PG_DATA"
  mkdir -p "$PG_DATA" "$PG_RUN" "$PG_DIR/log"
  chmod 700 "$PG_DATA"
  if is_root; then
    chown -R "$INFRA_USER:" "$PG_DIR"
    postgres_check_access
  fi
  local initlog="$PG_DIR/log/initdb.log"
  # trust auth: local test harness, loopback only. --no-sync: data safety is irrelevant here.
  if ! pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$initlog" 2>&1; then
    rm -rf "$PG_DATA"
    die_with_log "postgres: initdb failed" "$initlog"
  fi
  # Static settings. Port/listen address/socket dir are passed on the command line at
  # every start so that INFRA_PG_PORT can change without re-initialising.
  cat >>"$PG_DATA/postgresql.conf" <<'EOF'

# ---- added by xtask/infra (test harness) ----
# fsync is OFF: this cluster only holds disposable test data and fsync=off makes
# schema setup / inserts much faster. It survives a killed server (the OS keeps what
# was written), not a crashed machine. synchronous_commit stays ON (also forced at every
# start, below): with it off, a SIGKILL loses commits that were already acknowledged,
# and the fault tests kill this server. Never copy to production.
fsync = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

postgres_start() {
  local pid
  if pid="$(postgres_pid)"; then
    if postgres_ready; then
      log "postgres: already running (pid $pid) on $(postgres_addr)"
      return 0
    fi
    log "postgres: process $pid exists, waiting for readiness"
    wait_until "$INFRA_START_TIMEOUT" "$pid" "$PG_LOG" "postgres" postgres_ready
    return 0
  fi
  ensure_port_free postgres "$INFRA_PG_PORT"
  postgres_initdb
  mkdir -p "$PG_RUN" "$PG_DIR/log"
  if is_root; then
    chown -R "$INFRA_USER:" "$PG_DIR"
    postgres_check_access
  fi
  log "postgres: starting on $(postgres_addr) (log: $PG_LOG)"
  # pg_ctl forks the postmaster into its own session (setsid) and returns; we do the
  # readiness wait ourselves.
  if ! INFRA_LOCK_HELD='' pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -W \
    -o "-p $INFRA_PG_PORT -c listen_addresses=$INFRA_HOST -c unix_socket_directories=$PG_RUN -c synchronous_commit=on" \
    start >>"$PG_DIR/log/pg_ctl.log" 2>&1 </dev/null; then
    cat "$PG_DIR/log/pg_ctl.log" >>"$PG_LOG" 2>/dev/null || true
    die_with_log "postgres: pg_ctl start failed" "$PG_LOG"
  fi
  # postmaster.pid appears shortly after the start.
  local deadline=$((SECONDS + 15))
  until pid="$(postgres_pid)"; do
    ((SECONDS < deadline)) || die_with_log "postgres: postmaster did not start" "$PG_LOG"
    sleep 0.2
  done
  wait_until "$INFRA_START_TIMEOUT" "$pid" "$PG_LOG" "postgres" postgres_ready
  log "postgres: ready (pid $pid)"
}

postgres_ensure_db() {
  local db="$1"
  if [[ "$(postgres_psql -d postgres -tAc "select 1 from pg_database where datname = '$db'")" != 1 ]]; then
    log "postgres: creating database $db"
    postgres_psql -d postgres -c "create database \"$db\""
  fi
}

postgres_stop() {
  local pid
  if pid="$(postgres_pid)"; then
    # SIGINT = postgres "fast" shutdown (rolls back open transactions, disconnects
    # clients, checkpoints). SIGTERM ("smart") would wait for clients to disconnect.
    stop_pid postgres "$pid" INT
  else
    log "postgres: not running"
  fi
}

postgres_check() {
  postgres_psql -d postgres -tAc 'select 1' | grep -qx 1 || die "postgres: 'select 1' failed"
  log "postgres: select 1 OK"
}
