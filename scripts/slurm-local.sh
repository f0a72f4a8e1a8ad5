#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for deforma's cluster tests and for trying `--executor slurm`:
# munged, slurmctld and slurmd (Debian 12: packages slurm-wlm and munge), bound to the loopback address,
# with the CPUs and memory this machine has. Everything (configuration, munge key, state, logs, pid files)
# lives under one folder, removed by `stop`; nothing under /etc is used or changed.
#
#   scripts/slurm-local.sh start    starts the daemons (does nothing when they already run); prints the
#                                   line to export so that sbatch/squeue find the cluster
#   scripts/slurm-local.sh stop     stops the daemons this script started (by their pid files) and removes
#                                   the folder
#   scripts/slurm-local.sh status   says whether the cluster runs (exit 0) or not (exit 3)
#   scripts/slurm-local.sh env      prints the export line only
#
# Environment: DEFORMA_SLURM_DIR (default build/slurm-local beside the script's project),
# DEFORMA_SLURM_PORT (slurmctld port, default 6917; slurmd uses the next one).
#
# No cgroups are needed (proctrack/linuxproc, task/none), so it also runs in a container as root. Process
# tracking by parent pid is weaker than cgroups (a task that double-forks escapes it): fine for tests,
# not for a production cluster.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${DEFORMA_SLURM_DIR:-$ROOT/build/slurm-local}"
PORT="${DEFORMA_SLURM_PORT:-6917}"
CONF="$DIR/etc/slurm.conf"
NODE="localhost"

log() { printf '[slurm-local] %s\n' "$*" >&2; }

alive() {  # alive PIDFILE: the process named by the pid file runs
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

running() {
  alive "$DIR/run/munged.pid" && alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid"
}

need() {
  local missing=() c
  for c in munged mungekey slurmctld slurmd sinfo; do
    command -v "$c" >/dev/null 2>&1 || [[ -x "/usr/sbin/$c" ]] || missing+=("$c")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "error: missing ${missing[*]}: install the Debian packages slurm-wlm and munge"
    exit 2
  fi
}

write_config() {
  local cpus mem_mb user
  cpus="$(nproc)"
  # Leave the system some memory: slurmd refuses a node configured with more than it sees.
  mem_mb="$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)"
  user="$(id -un)"
  cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster on the loopback address.
ClusterName=deforma-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_min_interval=100000
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MaxArraySize=100001
MaxJobCount=200000
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
PlugStackConfig=$DIR/etc/plugstack.conf
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  : >"$DIR/etc/plugstack.conf"
}

start() {
  need
  if running; then
    log "already running (state in $DIR)"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  # A half-started or crashed cluster: stop what is left of it first.
  stop_daemons
  mkdir -p "$DIR"/{etc,state/ctld,state/d,log,run,munge}
  chmod 700 "$DIR/munge"
  write_config
  if [[ ! -s "$DIR/munge/munge.key" ]]; then
    mungekey --create --keyfile="$DIR/munge/munge.key" --force >/dev/null
  fi
  chmod 400 "$DIR/munge/munge.key"
  # --force: munged checks that its folders are not writable by others and owned by the right user; ours
  # are private already, and running it as root in a container is what this script is for.
  /usr/sbin/munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
  export SLURM_CONF="$CONF"
  # The daemons bind their ports to every interface and have no setting to change it: a preloaded
  # library (scripts/loopback_bind.c) turns those binds into binds to the loopback address.
  local shim="$DIR/run/loopback_bind.so"
  if ! cc -shared -fPIC -O2 -o "$shim" "$ROOT/scripts/loopback_bind.c" -ldl 2>"$DIR/log/loopback_bind.log"; then
    log "error: could not build scripts/loopback_bind.c (a C compiler is needed); see $DIR/log/loopback_bind.log"
    stop_daemons
    exit 1
  fi
  LD_PRELOAD="$shim" /usr/sbin/slurmctld -f "$CONF"
  LD_PRELOAD="$shim" /usr/sbin/slurmd -f "$CONF" -N "$NODE"
  # Ready when the node is idle (it registers with the controller within a second or two).
  local i state=""
  for i in $(seq 1 60); do
    state="$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true)"
    if [[ "$state" == "idle" || "$state" == "mix" || "$state" == "alloc" ]]; then
      check_loopback_only
      log "running: 1 node ($(nproc) CPUs), state in $DIR"
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.5
  done
  log "error: the node did not become idle (state '${state:-none}'); logs in $DIR/log:"
  tail -n 5 "$DIR"/log/*.log >&2 || true
  stop_daemons
  exit 1
}

check_loopback_only() {  # refuses to leave the daemons running if one listens beyond the loopback address
  command -v ss >/dev/null 2>&1 || return 0
  local name pid open
  for name in slurmctld slurmd; do
    pid="$(cat "$DIR/run/$name.pid")"
    open="$(ss -ltnpH 2>/dev/null | grep "pid=$pid," | awk '{ print $4 }' | grep -v -E '^(127\.|\[::1\]:)' || true)"
    if [[ -n "$open" ]]; then
      log "error: $name listens on $open, not only on the loopback address; stopping"
      stop_daemons
      exit 1
    fi
  done
}

stop_daemons() {  # stops, by pid, the daemons whose pid files this script's folder holds
  local name pidfile pid i
  for name in slurmd slurmctld munged; do
    pidfile="$DIR/run/$name.pid"
    alive "$pidfile" || continue
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  done
}

stop() {
  stop_daemons
  if [[ -d "$DIR" ]]; then
    rm -rf "$DIR"
    log "stopped; $DIR removed"
  fi
}

status() {
  if running; then
    log "running (state in $DIR)"
    SLURM_CONF="$CONF" sinfo -N 2>/dev/null || true
    return 0
  fi
  log "not running"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
