# shellcheck shell=bash
# shellcheck disable=SC2016  # single-quoted bash -c scripts are intentional
# MongoDB wire protocol via FerretDB v1, backed by the postgres component
# (INFRA_MONGO_BACKEND=postgresql, default) or by SQLite files (INFRA_MONGO_BACKEND=sqlite).

MONGO_DIR="$INFRA_DIR/mongo"
MONGO_BIN="$INFRA_DIR/bin/ferretdb"
MONGO_LOG="$MONGO_DIR/log/ferretdb.log"
MONGO_PIDFILE="$MONGO_DIR/ferretdb.pid"
MONGO_PG_DB=ferretdb

mongo_addr() { printf '%s:%s' "$INFRA_HOST" "$INFRA_MONGO_PORT"; }
mongo_url() { printf 'mongodb://%s:%s/' "$INFRA_HOST" "$INFRA_MONGO_PORT"; }

mongo_is_installed() {
  [[ -x "$MONGO_BIN" ]] && [[ "$("$MONGO_BIN" --version 2>/dev/null | head -n 1)" == "version: $FERRETDB_VERSION" ]]
}

mongo_install() {
  if mongo_is_installed; then
    log "mongo: FerretDB $FERRETDB_VERSION already built ($MONGO_BIN)"
    return 0
  fi
  local go
  go="$(find_go)" || die "mongo: the Go toolchain (>= 1.24) is needed to build FerretDB; install Go and retry"
  mkdir -p "$MONGO_DIR/log" "$INFRA_DIR/bin"
  local ilog="$MONGO_DIR/log/install.log" src="$MONGO_DIR/src"
  : >"$ilog"
  # Not a plain `go install ...@version`: the module zip lacks the generated
  # build/version/version.txt, and such a binary panics at start with
  # "Invalid build/version/version.txt file content". So: fetch the module through the
  # Go module proxy, copy it, write version.txt, and `go build` it.
  log "mongo: building FerretDB $FERRETDB_VERSION with $("$go" version) (first time: ~1-3 min; log: $ilog)"
  local modjson moddir
  modjson="$(cd "$MONGO_DIR" && GO111MODULE=on "$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>>"$ilog")" ||
    die_with_log "mongo: go mod download failed" "$ilog"
  moddir="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)"
  [[ -n "$moddir" && -d "$moddir" ]] || {
    printf '%s\n' "$modjson" >>"$ilog"
    die_with_log "mongo: could not locate the downloaded FerretDB module" "$ilog"
  }
  rm -rf "$src"
  cp -r "$moddir" "$src"
  chmod -R u+w "$src"
  printf '%s\n' "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  printf '%s\n' "xtask-infra" >"$src/build/version/package.txt"
  if ! (cd "$src" && "$go" build -buildvcs=false -trimpath -o "$MONGO_BIN.tmp" ./cmd/ferretdb) >>"$ilog" 2>&1; then
    die_with_log "mongo: go build of FerretDB failed" "$ilog"
  fi
  mv -f "$MONGO_BIN.tmp" "$MONGO_BIN"
  rm -rf "$src"
  mongo_is_installed || die_with_log "mongo: built binary does not report version $FERRETDB_VERSION" "$ilog"
  log "mongo: installed $MONGO_BIN"
}

mongo_pid() { read_pidfile "$MONGO_PIDFILE" ferretdb; }

# mongo_ping: send a raw OP_MSG {ping: 1, $db: "admin"} and expect {ok: 1.0} back.
# FerretDB's ping also checks the backend (PostgreSQL / SQLite) status.
mongo_ping() {
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    # header: len=51, requestID=1, responseTo=0, opCode=2013 (OP_MSG); flags=0; section kind 0;
    # BSON (30 bytes): {ping: int32 1, $db: "admin"}
    printf "\x33\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00\x1e\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02\$db\x00\x06\x00\x00\x00admin\x00\x00" >&3
    dd bs=65536 count=1 <&3 2>/dev/null | od -An -v -tx1 | tr -d " \n" | grep -q "016f6b00000000000000f03f"
  ' "$INFRA_HOST" "$INFRA_MONGO_PORT"
}
mongo_ready() { port_open "$INFRA_MONGO_PORT" && mongo_ping; }

mongo_backend_args() {
  case "$INFRA_MONGO_BACKEND" in
    postgresql)
      printf '%s\n' --handler=postgresql \
        "--postgresql-url=postgres://postgres@$INFRA_HOST:$INFRA_PG_PORT/$MONGO_PG_DB"
      ;;
    sqlite)
      mkdir -p "$MONGO_DIR/sqlite"
      printf '%s\n' --handler=sqlite "--sqlite-url=file:$MONGO_DIR/sqlite/"
      ;;
    *) die "mongo: INFRA_MONGO_BACKEND must be 'postgresql' or 'sqlite' (got '$INFRA_MONGO_BACKEND')" ;;
  esac
}

mongo_start() {
  mongo_is_installed || mongo_install
  local pid
  if pid="$(mongo_pid)"; then
    if mongo_ready; then
      log "mongo: already running (pid $pid) on $(mongo_addr) [backend: $INFRA_MONGO_BACKEND]"
      return 0
    fi
    log "mongo: process $pid exists, waiting for readiness"
    if [[ "$INFRA_MONGO_BACKEND" == postgresql ]]; then postgres_start; fi
    wait_until "$INFRA_START_TIMEOUT" "$pid" "$MONGO_LOG" mongo mongo_ready
    return 0
  fi
  ensure_port_free mongo "$INFRA_MONGO_PORT"
  case "$INFRA_MONGO_BACKEND" in
    postgresql | sqlite) ;;
    *) die "mongo: INFRA_MONGO_BACKEND must be 'postgresql' or 'sqlite' (got '$INFRA_MONGO_BACKEND')" ;;
  esac
  if [[ "$INFRA_MONGO_BACKEND" == postgresql ]]; then
    postgres_start
    postgres_ensure_db "$MONGO_PG_DB"
  fi
  mkdir -p "$MONGO_DIR/state" "$MONGO_DIR/log"
  local -a backend
  mapfile -t backend < <(mongo_backend_args)
  log "mongo: starting FerretDB on $(mongo_addr) [backend: $INFRA_MONGO_BACKEND] (log: $MONGO_LOG)"
  spawn "$MONGO_PIDFILE" "$MONGO_LOG" \
    "$MONGO_BIN" "--listen-addr=$(mongo_addr)" "${backend[@]}" \
    --telemetry=disable --debug-addr=- "--state-dir=$MONGO_DIR/state" \
    --log-level=info --log-format=text
  pid="$(head -n 1 "$MONGO_PIDFILE")"
  wait_until "$INFRA_START_TIMEOUT" "$pid" "$MONGO_LOG" mongo mongo_ready
  log "mongo: ready (pid $pid)"
}

mongo_stop() {
  local pid
  if pid="$(mongo_pid)"; then
    stop_pid mongo "$pid" TERM
  else
    log "mongo: not running"
  fi
  rm -f "$MONGO_PIDFILE"
}

mongo_check() {
  mongo_ping || die "mongo: raw OP_MSG ping failed"
  log "mongo: raw OP_MSG ping OK"
  local py="$INFRA_DIR/venv/bin/python"
  envoy_venv
  if ! "$py" -c 'import pymongo' 2>/dev/null; then
    log "mongo: installing pymongo==$PYMONGO_VERSION into $INFRA_DIR/venv (for the check only)"
    "$INFRA_DIR/venv/bin/pip" install -q --disable-pip-version-check "pymongo==$PYMONGO_VERSION" >&2 ||
      die "mongo: pip install pymongo failed"
  fi
  "$py" - "$(mongo_url)" <<'EOF' || die "mongo: pymongo insert+find failed"
import sys, uuid, pymongo
c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=10000)
coll = c["infra_check"]["items"]
key = str(uuid.uuid4())
coll.insert_one({"_id": key, "n": 42})
doc = coll.find_one({"_id": key})
assert doc == {"_id": key, "n": 42}, doc
coll.delete_one({"_id": key})
print("[infra] mongo: pymongo insert+find OK (server version %s)" % c.server_info()["version"], file=sys.stderr)
EOF
}
