#!/usr/bin/env bash
# jinn's fleet topology as processes on this machine's loopback: the same
# parts as docker-compose.yml, for machines without a container engine.
#
#   deploy/local-cluster.sh [start]   3 `jinn nats` servers in a cluster, Redis
#                                     (deploy/redis/redis.conf and users.acl),
#                                     2 schedulers, 2 intakes, 2 workers
#   deploy/local-cluster.sh status    which processes run
#   deploy/local-cluster.sh stop      drain the workers, stop everything
#
# Then:  source .jinn/cluster/env && jinn submit --wait -- echo hi
#
# Needs bash and redis-server; builds jinn with Go unless JINN_BIN names a
# jinn binary. The archive is a directory every process shares, since they all
# run here (docker-compose.yml uses MinIO instead).
#
# Settings (environment):
#   JINN_BIN                jinn binary (default: built into $JINN_CLUSTER_DIR/bin)
#   JINN_CLUSTER_DIR        data, logs, pids (default: .jinn/cluster in the repository)
#   JINN_NATS_PORTS         client ports of the 3 NATS servers (default "4222 4223 4224")
#   JINN_NATS_ROUTE_PORTS   route ports (default "6222 6223 6224")
#   JINN_NATS_HTTP_PORTS    monitoring ports (default "8222 8223 8224")
#   JINN_REDIS_PORT         Redis port (default 6390)
#   JINN_INTAKE_PORTS       HTTP ports of the 2 intakes (default "8081 8082")
#   JINN_WORKER_MEMORY      memory each worker gives to jobs, MiB or % (default 40%)
#   JINN_START_TIMEOUT      seconds to wait for each part to be ready (default 60)
#   JINN_STOP_TIMEOUT       seconds a worker may drain on stop (default 60)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${JINN_CLUSTER_DIR:-$ROOT/.jinn/cluster}
[[ $DIR == /* ]] || DIR=$PWD/$DIR
read -r -a NATS_PORTS <<<"${JINN_NATS_PORTS:-4222 4223 4224}"
read -r -a ROUTE_PORTS <<<"${JINN_NATS_ROUTE_PORTS:-6222 6223 6224}"
read -r -a HTTP_PORTS <<<"${JINN_NATS_HTTP_PORTS:-8222 8223 8224}"
REDIS_PORT=${JINN_REDIS_PORT:-6390}
read -r -a INTAKE_PORTS <<<"${JINN_INTAKE_PORTS:-8081 8082}"
WORKER_MEMORY=${JINN_WORKER_MEMORY:-40%}
START_TIMEOUT=${JINN_START_TIMEOUT:-60}
STOP_TIMEOUT=${JINN_STOP_TIMEOUT:-60}

# The processes, in start order; stop goes in reverse.
PARTS=(nats-1 nats-2 nats-3 redis scheduler-1 scheduler-2 intake-1 intake-2 worker-1 worker-2)

die() {
  echo "local-cluster: $*" >&2
  exit 1
}

pid_of() { cat "$DIR/pids/$1.pid" 2>/dev/null || true; }

alive() { pid_alive "$(pid_of "$1")"; }

# pid_alive PID: the process runs (a zombie waiting to be reaped does not).
pid_alive() {
  local pid=$1 stat
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    read -r stat <"/proc/$pid/stat" || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
  fi
}

# launch NAME CMD... runs CMD detached, its output added to logs/NAME.log.
declare -A CMD_OF
launch() {
  local name=$1
  shift
  CMD_OF[$name]=$(printf '%q ' "$@")
  if command -v setsid >/dev/null; then
    setsid "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  else
    nohup "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$DIR/pids/$name.pid"
}

# http_ok PORT PATH: GET answers 200 (bash's /dev/tcp: no curl needed).
http_ok() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    read -r -t 5 line <&3 || exit 1
    [[ $line == *" 200 "* ]]
  ) 2>/dev/null
}

# wait_for NAME WHAT CHECK...: run CHECK until it succeeds. A process that
# exits before is started again, as systemd or Docker would: a NATS cluster
# restarted on old data answers /healthz before its streams have leaders,
# and a role that cannot make its streams in time exits.
wait_for() {
  local name=$1 what=$2
  shift 2
  local deadline=$((SECONDS + START_TIMEOUT)) restarts=0
  until "$@"; do
    if ! alive "$name"; then
      if ((restarts >= 5 || SECONDS >= deadline)); then
        tail -n 20 "$DIR/logs/$name.log" >&2 || true
        die "$name exited before $what (log: $DIR/logs/$name.log)"
      fi
      restarts=$((restarts + 1))
      echo "local-cluster: $name exited before $what: starting it again ($restarts)" >&2
      sleep 1
      eval "launch $name ${CMD_OF[$name]}"
      continue
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$DIR/logs/$name.log" >&2 || true
      die "$name: no $what after ${START_TIMEOUT}s (log: $DIR/logs/$name.log)"
    fi
    sleep 0.2
  done
}

logged() { grep -q "$2" "$DIR/logs/$1.log" 2>/dev/null; }

redis_up() { redis-cli -p "$REDIS_PORT" --no-auth-warning --user jinn --pass "$REDIS_PASSWORD" ping 2>/dev/null | grep -q PONG; }

start() {
  for p in "${PARTS[@]}"; do
    alive "$p" && die "$p is running already (pid $(pid_of "$p")): run '$0 stop' first"
  done
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
  ((${#NATS_PORTS[@]} == 3 && ${#ROUTE_PORTS[@]} == 3 && ${#HTTP_PORTS[@]} == 3)) || die "give 3 ports in each of JINN_NATS_PORTS, JINN_NATS_ROUTE_PORTS, JINN_NATS_HTTP_PORTS"
  ((${#INTAKE_PORTS[@]} == 2)) || die "give 2 ports in JINN_INTAKE_PORTS"
  mkdir -p "$DIR"/{pids,logs,archive,redis,bin}
  rm -f "$DIR"/logs/*.log

  local bin=${JINN_BIN:-}
  if [[ -z $bin ]]; then
    bin=$DIR/bin/jinn
    echo "building $bin"
    (cd "$ROOT" && CGO_ENABLED=0 go build -o "$bin" ./cmd/jinn) || die "go build failed; or set JINN_BIN to a jinn binary"
  fi
  [[ -x $bin && -f $bin ]] || die "$bin is not an executable jinn binary"
  [[ $bin == /* ]] || bin=$PWD/$bin

  # NATS: three servers that route to each other, streams with 3 replicas.
  local routes="" nats_urls="" i
  for i in 0 1 2; do
    routes+="${routes:+,}nats://127.0.0.1:${ROUTE_PORTS[i]}"
    nats_urls+="${nats_urls:+,}nats://127.0.0.1:${NATS_PORTS[i]}"
  done
  for i in 0 1 2; do
    local n=nats-$((i + 1))
    # What the flags do not set: the monitoring port and the message size.
    printf 'http: 127.0.0.1:%s\nmax_payload: 2MB\n' "${HTTP_PORTS[i]}" >"$DIR/$n.conf"
    launch "$n" "$bin" nats --name "$n" --config "$DIR/$n.conf" \
      --listen "127.0.0.1:${NATS_PORTS[i]}" --store-dir "$DIR/$n" \
      --cluster-name jinn --cluster-listen "127.0.0.1:${ROUTE_PORTS[i]}" --routes "$routes"
  done
  for i in 0 1 2; do
    wait_for "nats-$((i + 1))" "healthy JetStream" http_ok "${HTTP_PORTS[i]}" /healthz
  done

  # Redis with the production configuration, on loopback, fresh passwords.
  if [[ ! -s $DIR/redis/password ]]; then
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/redis/password"
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/redis/admin-password"
  fi
  REDIS_PASSWORD=$(cat "$DIR/redis/password")
  sed -e "s/>CHANGE-ME-jinn/>$REDIS_PASSWORD/" -e "s/>CHANGE-ME-admin/>$(cat "$DIR/redis/admin-password")/" \
    -e "s/>CHANGE-ME-replica/>$(cat "$DIR/redis/admin-password")/" \
    "$ROOT/deploy/redis/users.acl" >"$DIR/redis/users.acl"
  launch redis redis-server "$ROOT/deploy/redis/redis.conf" --port "$REDIS_PORT" --bind 127.0.0.1 \
    --dir "$DIR/redis" --aclfile "$DIR/redis/users.acl" --daemonize no
  wait_for redis "PONG" redis_up
  local redis_url="redis://jinn:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"

  local common=(--nats "$nats_urls" --replicas 3 --redis "$redis_url" --archive "$DIR/archive" --log-level info)
  # One scheduler at a time: the first makes the streams and the defaults.
  for n in scheduler-1 scheduler-2; do
    launch "$n" "$bin" scheduler "${common[@]}"
    wait_for "$n" "'scheduler ready'" logged "$n" "scheduler ready"
  done
  for i in 0 1; do
    launch "intake-$((i + 1))" "$bin" intake "${common[@]}" --listen "127.0.0.1:${INTAKE_PORTS[i]}"
  done
  for i in 0 1; do
    wait_for "intake-$((i + 1))" "ready /readyz" http_ok "${INTAKE_PORTS[i]}" /readyz
  done
  for n in worker-1 worker-2; do
    launch "$n" "$bin" worker "${common[@]}" --id "$n" --data-dir "$DIR/$n" --job-memory "$WORKER_MEMORY"
  done
  for n in worker-1 worker-2; do
    wait_for "$n" "'worker started'" logged "$n" "worker started"
  done

  cat >"$DIR/env" <<EOF
export JINN_SERVER=http://127.0.0.1:${INTAKE_PORTS[0]}
export JINN_NATS=$nats_urls
export JINN_REDIS=$redis_url
EOF
  echo "jinn is running: 3 NATS servers, Redis, 2 schedulers, 2 intakes, 2 workers"
  for i in 0 1; do
    echo "intake-$((i + 1)): http://127.0.0.1:${INTAKE_PORTS[i]}"
  done
  echo "try:  source $DIR/env && $bin submit --wait -- echo hi"
  echo "logs: $DIR/logs    stop: $0 stop"
}

# stop_part NAME SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop_part() {
  local name=$1 grace=$2 pid
  pid=$(pid_of "$name")
  if [[ -z $pid ]]; then
    return
  fi
  if kill -TERM "$pid" 2>/dev/null; then
    local deadline=$((SECONDS + grace))
    while pid_alive "$pid"; do
      if ((SECONDS >= deadline)); then
        echo "local-cluster: $name did not stop in ${grace}s: killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$DIR/pids/$name.pid"
}

stop() {
  local i pids=()
  # Workers drain first (SIGTERM: finish running jobs), together.
  for ((i = ${#PARTS[@]} - 1; i >= 0; i--)); do
    local p=${PARTS[i]} grace=15
    [[ $p == worker-* ]] && grace=$STOP_TIMEOUT
    stop_part "$p" "$grace" &
    pids+=($!)
    # Wait for each kind before the next: workers, intakes, schedulers, Redis, NATS.
    case $p in worker-1 | intake-1 | scheduler-1 | redis | nats-1)
      wait "${pids[@]}"
      pids=()
      ;;
    esac
  done
  echo "jinn stopped (data kept in $DIR)"
}

status() {
  local p
  for p in "${PARTS[@]}"; do
    if alive "$p"; then
      echo "$p running (pid $(pid_of "$p"))"
    else
      echo "$p stopped"
    fi
  done
}

case ${1:-start} in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 [start|stop|status]" ;;
esac
