#!/usr/bin/env bash
# stop.sh - stop the daemons that start.sh started (and only those: pids come from $EVALKIT_SLURM_DIR/pids/*.pid and
# are checked against /proc/PID/comm before being signalled). Jobs are cancelled first so that no slurmstepd or job
# processes outlive the cluster.
#   EVALKIT_SLURM_DIR=/tmp/evalkit-slurm   base directory (as for start.sh)
#   EVALKIT_SLURM_PURGE=1                  also remove configs, state, database and logs (packages stay)
set -uo pipefail
B=${EVALKIT_SLURM_DIR:-/tmp/evalkit-slurm}
CONF=$B/etc/slurm.conf
log() { printf '[evalkit-slurm %s] %s\n' "$(date +%T)" "$*" >&2; }

pid_of() {  # pid_of NAME: prints the pid recorded in pids/NAME.pid if it runs and its comm is NAME
  local f=$B/pids/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ] && echo "$pid"
}

stop() {  # stop NAME
  local pid
  if ! pid=$(pid_of "$1"); then rm -f "$B/pids/$1.pid"; return 0; fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  if [ -d "/proc/$pid" ]; then log "$1 ($pid) ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null; sleep 0.5; fi
  log "$1 ($pid) stopped"
  rm -f "$B/pids/$1.pid"
}

# 1. cancel this cluster's jobs while its controller is still up
if pid_of slurmctld >/dev/null && [ -r "$CONF" ]; then
  export SLURM_CONF=$CONF
  jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 150); do
      [ -z "$(squeue -h -t all -o '%T' 2>/dev/null | grep -vE 'COMPLETED|CANCELLED|FAILED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE')" ] && break
      sleep 0.2
    done
  fi
fi

# 2. daemons, in reverse start order (slurmctld flushes its last records to slurmdbd before the database goes)
stop slurmd
stop slurmctld
stop slurmdbd
stop mariadbd
stop munged

# 3. report (never kill by name: they may be another cluster's) job step daemons that survived
left=$(ps -eo pid=,args= | awk '$2 ~ /^slurmstepd:/ {print $1}' | tr '\n' ' ')
[ -n "${left// /}" ] && log "WARNING: slurmstepd processes still present: $left"

if [ "${EVALKIT_SLURM_PURGE:-0}" = 1 ]; then
  rm -rf "$B"/{etc,state,spool,log,run,pids,munge,bin,db} "$B/env.sh"
  log "purged runtime files under $B"
fi
exit 0
