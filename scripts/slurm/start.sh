#!/usr/bin/env bash
# start.sh - idempotent one-node Slurm on localhost for evalkit's tests (Debian 12 packages, root, no systemd).
#
#   install (apt) -> munge key -> slurm.conf -> munged [-> mariadbd -> slurmdbd] -> slurmctld, slurmd -> node idle
#
# Adapted from shared/recipes/start-slurm.sh. Differences: real accounting (slurmdbd on a private MariaDB) is the
# default, so `sacct` and submitit see real job states; the recipe's sacct shim remains as a fallback
# (EVALKIT_SLURM_ACCOUNTING=shim). Everything (configs, state, database, logs, sockets, pid files) lives under
# $EVALKIT_SLURM_DIR; only daemons whose pid files are there are ever reused or stopped (see stop.sh).
#
# Afterwards:  source $EVALKIT_SLURM_DIR/env.sh   (exports SLURM_CONF, puts $EVALKIT_SLURM_DIR/bin first in PATH)
#
# Knobs (environment):
#   EVALKIT_SLURM_DIR=/tmp/evalkit-slurm   base directory
#   EVALKIT_SLURM_ACCOUNTING=db|shim       db: slurmdbd + MariaDB (default); shim: no slurmdbd, sacct shim
#   EVALKIT_SLURM_CPUS=<n>                 advertise n CPUs (default: nproc; more than nproc uses config_overrides)
#   EVALKIT_SLURM_KEEP_STATE=1             keep job ids, state and accounting of a previous run (default: fresh)
#   EVALKIT_SLURM_TIMEOUT=60               seconds to wait for the node to become idle and accounting to answer
#   EVALKIT_SLURM_PORT=6817                slurmctld port; slurmd, slurmdbd and MariaDB use the next three
set -euo pipefail

B=${EVALKIT_SLURM_DIR:-/tmp/evalkit-slurm}
ACCT=${EVALKIT_SLURM_ACCOUNTING:-db}
TIMEOUT=${EVALKIT_SLURM_TIMEOUT:-60}
CTLD_PORT=${EVALKIT_SLURM_PORT:-6817}
SLURMD_PORT=$((CTLD_PORT + 1)) DBD_PORT=$((CTLD_PORT + 2)) DB_PORT=$((CTLD_PORT + 3))
CONF=$B/etc/slurm.conf
NODE=localhost
CLUSTER=evalkit
T0=$(date +%s.%N)
log() { printf '[evalkit-slurm %s] %s\n' "$(date +%T)" "$*" >&2; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
die() { log "$*"; exit 1; }

# alive PIDFILE NAME: the pid in PIDFILE runs and its comm is NAME (a recycled pid of another program is not ours)
alive() {
  local f=$1 name=$2 pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$name" ]
}
# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds or SECONDS of wall time have passed
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" 2>/dev/null; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.1; done
}
# stop_ours NAME: SIGTERM the daemon recorded in pids/NAME.pid (used to reset a half-started accounting stack)
stop_ours() {
  local f=$B/pids/$1.pid pid
  alive "$f" "$1" || { rm -f "$f"; return 0; }
  pid=$(cat "$f"); kill -TERM "$pid"
  wait_for 10 test ! -d "/proc/$pid" || kill -KILL "$pid"
  rm -f "$f"
}

[ "$(id -u)" = 0 ] || die "must run as root (slurmd, munged and the private MariaDB are started as daemons)"
case $ACCT in db|shim) ;; *) die "EVALKIT_SLURM_ACCOUNTING=$ACCT: valid choices are db, shim" ;; esac

# ---------------------------------------------------------------- 1. packages
PKGS="slurm-wlm slurmctld slurmd slurm-client munge"
[ "$ACCT" = db ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  # Without systemd the postinst scripts would start munge/slurmd/mariadb through invoke-rc.d; a temporary
  # policy-rc.d (exit 101) forbids that: we start our own private instances below.
  tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    tmp_policy=/usr/sbin/policy-rc.d
    trap '[ -n "$tmp_policy" ] && rm -f "$tmp_policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  if [ -n "$tmp_policy" ]; then rm -f "$tmp_policy"; tmp_policy=""; fi
  log "packages installed after $(elapsed)s"
fi

mkdir -p "$B"/{etc,state,spool,log,run,pids,munge,bin}
chmod 755 "$B"

# ---------------------------------------------------------------- 2. munge (private socket and key)
M=$B/munge
chown munge:munge "$M"; chmod 755 "$M"
if [ ! -s "$M/munge.key" ]; then
  mungekey --create --keyfile="$M/munge.key" 2>/dev/null || dd if=/dev/urandom of="$M/munge.key" bs=1024 count=1 status=none
fi
chown munge:munge "$M/munge.key"; chmod 400 "$M/munge.key"
SOCK=$M/munge.socket.2
if alive "$B/pids/munged.pid" munged; then
  log "munged already running (pid $(cat "$B/pids/munged.pid"))"
else
  rm -f "$SOCK" "$SOCK.lock" "$M/munged.pid"
  runuser -u munge -- /usr/sbin/munged --socket="$SOCK" --key-file="$M/munge.key" \
      --log-file="$M/munged.log" --pid-file="$M/munged.pid" --seed-file="$M/munged.seed"
  wait_for 5 test -s "$M/munged.pid" || die "munged did not start; see $M/munged.log"
  cp "$M/munged.pid" "$B/pids/munged.pid"
  log "munged started (pid $(cat "$B/pids/munged.pid"))"
fi
munge --socket="$SOCK" -n | unmunge --socket="$SOCK" >/dev/null || die "munge self-test failed; see $M/munged.log"

# A fresh start (the default) resets job ids to 1, so old accounting records would collide with new jobs of the
# same id (sacct -j 1 would answer for both): reset the database together with slurmctld's state.
FRESH=0
if ! alive "$B/pids/slurmctld.pid" slurmctld && [ "${EVALKIT_SLURM_KEEP_STATE:-0}" != 1 ]; then FRESH=1; fi

# ---------------------------------------------------------------- 3. slurm.conf
if ! alive "$B/pids/slurmctld.pid" slurmctld; then
  HW=$(slurmd -C 2>/dev/null | head -1 || true)
  hw() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$HW"; }
  NCPU=$(hw CPUs); NCPU=${NCPU:-$(nproc)}
  MEM=$(hw RealMemory); MEM=${MEM:-$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)}
  MEM=$(( MEM * 85 / 100 ))                    # RealMemory above the actual memory makes the node INVAL
  CPUS=${EVALKIT_SLURM_CPUS:-$NCPU}
  if [ "$CPUS" = "$NCPU" ] && [ -n "$(hw CoresPerSocket)" ]; then
    TOPO="Sockets=$(( $(hw Boards) * $(hw SocketsPerBoard) )) CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore)"
    OVR=""
  else
    TOPO=""; OVR="SlurmdParameters=config_overrides"
  fi
  # Without DefMemPerCPU a job gets the whole node's memory, so jobs run one at a time.
  DEFMEM=$(( MEM / CPUS )); [ "$DEFMEM" -gt 1024 ] && DEFMEM=1024
  if [ "$ACCT" = db ]; then
    ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# for accounting_storage/slurmdbd this is the munge socket clients (sacct, sacctmgr, slurmctld) use for slurmdbd
AccountingStoragePass=$SOCK"
  else
    ACCT_CONF="AccountingStorageType=accounting_storage/none"
  fi
  cat > "$CONF" <<EOF
# generated by evalkit scripts/slurm/start.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# private munged; cred_expire: a requeued job waits cred_expire+1 s (default 120) before it may restart
AuthInfo=socket=$SOCK,cred_expire=10
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
MailProg=/bin/true
# no cgroups: containers rarely allow them; no memory/core enforcement is acceptable for tests
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$ACCT_CONF
# the job-completion log is the shim's memory of purged jobs, and a debugging aid with real accounting
JobCompType=jobcomp/filetxt
JobCompLoc=$B/log/jobcomp.txt
SchedulerType=sched/backfill
# batch_sched_delay=3 (default) delays the start of batch jobs by up to 3 s. A requeued job gets a begin time
# (cred_expire+1 s ahead) and only backfill starts such jobs, every bf_interval (default 30 s): 1 s here.
SchedulerParameters=batch_sched_delay=0,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# reject at submission (instead of PENDING forever) jobs asking for more than the node or partition has
EnforcePartLimits=ALL
# keep finished jobs in slurmctld's memory for an hour: squeue and the sacct shim read them there
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
$OVR
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS $TOPO RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE DefMemPerCPU=$DEFMEM State=UP
EOF
  log "wrote $CONF (CPUs=$CPUS RealMemory=$MEM accounting=$ACCT)"
fi
export SLURM_CONF=$CONF

# ---------------------------------------------------------------- 4. accounting
if [ "$ACCT" = db ]; then
  D=$B/db
  if [ "$FRESH" = 1 ]; then stop_ours slurmdbd; stop_ours mariadbd; rm -rf "$D"; fi
  mkdir -p "$D"
  if alive "$B/pids/mariadbd.pid" mariadbd; then
    log "mariadbd already running (pid $(cat "$B/pids/mariadbd.pid"))"
  else
    if [ ! -d "$D/data/mysql" ]; then
      mkdir -p "$D/data"; chown -R mysql:mysql "$D"
      mariadb-install-db --no-defaults --datadir="$D/data" --user=mysql --skip-test-db \
          --auth-root-authentication-method=socket >"$B/log/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed; see $B/log/mariadb-install.log"
    fi
    rm -f "$D/mysqld.sock" "$D/mysqld.pid"
    # mariadbd does not daemonize: detach it (setsid, no inherited stdio) so a caller waiting on our output
    # (pytest's subprocess.run) is not held open. Small buffers: it stores a handful of job records.
    setsid /usr/sbin/mariadbd --no-defaults --datadir="$D/data" --user=mysql \
        --socket="$D/mysqld.sock" --pid-file="$D/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
        --log-error="$D/mariadb.log" --skip-log-bin --performance-schema=OFF \
        --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --max-connections=20 \
        </dev/null >/dev/null 2>&1 &
    wait_for 30 test -S "$D/mysqld.sock" || die "mariadbd did not start; see $D/mariadb.log"
    wait_for 10 test -s "$D/mysqld.pid" || die "mariadbd wrote no pid file; see $D/mariadb.log"
    cp "$D/mysqld.pid" "$B/pids/mariadbd.pid"
    log "mariadbd started (pid $(cat "$B/pids/mariadbd.pid"), port $DB_PORT)"
  fi
  if [ ! -s "$D/slurm.pass" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$D/slurm.pass")
  fi
  PASS=$(cat "$D/slurm.pass")
  # root logs in through the socket (unix_socket auth); slurmdbd uses TCP with a password of its own
  mariadb --socket="$D/mysqld.sock" -u root <<SQL || die "could not create the slurm database user; see $D/mariadb.log"
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
  cat > "$B/etc/slurmdbd.conf" <<EOF
# generated by evalkit scripts/slurm/start.sh
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$B/run/slurmdbd.pid
LogFile=$B/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$PASS
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$B/etc/slurmdbd.conf"           # slurmdbd refuses a config others can read (it holds a password)
  if alive "$B/pids/slurmdbd.pid" slurmdbd; then
    log "slurmdbd already running (pid $(cat "$B/pids/slurmdbd.pid"))"
  else
    rm -f "$B/run/slurmdbd.pid"
    # slurmdbd finds slurmdbd.conf next to $SLURM_CONF
    slurmdbd
    wait_for 20 test -s "$B/run/slurmdbd.pid" || die "slurmdbd did not start; see $B/log/slurmdbd.log"
    cp "$B/run/slurmdbd.pid" "$B/pids/slurmdbd.pid"
    log "slurmdbd started (pid $(cat "$B/pids/slurmdbd.pid"), port $DBD_PORT)"
  fi
  # slurmctld must find its cluster in the database, or it keeps job records to itself
  wait_for "$TIMEOUT" timeout 10 sacctmgr -n -P list cluster format=cluster \
    || die "slurmdbd does not answer; see $B/log/slurmdbd.log $B/db/mariadb.log"
  if ! timeout 10 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    timeout 10 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
  fi
fi

# ---------------------------------------------------------------- 5. client-side wrappers
if [ "$ACCT" = shim ]; then
  cp "$(dirname "$0")/sacct-shim" "$B/bin/sacct"; chmod 755 "$B/bin/sacct"
else
  rm -f "$B/bin/sacct"                      # real accounting: the real sacct
fi
cp "$(dirname "$0")/scontrol-requeue-wrapper" "$B/bin/scontrol"; chmod 755 "$B/bin/scontrol"
cat > "$B/env.sh" <<EOF
export SLURM_CONF=$CONF
case ":\$PATH:" in *":$B/bin:"*) ;; *) export PATH=$B/bin:\$PATH ;; esac
EOF
export PATH=$B/bin:$PATH

# ---------------------------------------------------------------- 6. slurmctld, slurmd
if alive "$B/pids/slurmctld.pid" slurmctld; then
  log "slurmctld already running (pid $(cat "$B/pids/slurmctld.pid"))"
else
  if [ "$FRESH" = 1 ]; then CLEAR="-c"; rm -rf "$B/state"/* "$B/spool"/*
    # job ids restart at 1: drop the old job-completion log too (the sacct shim reads it)
    [ -f "$B/log/jobcomp.txt" ] && mv -f "$B/log/jobcomp.txt" "$B/log/jobcomp.txt.old"
  else CLEAR="-i"; fi
  rm -f "$B/run/slurmctld.pid"
  slurmctld -f "$CONF" $CLEAR
  wait_for 10 test -s "$B/run/slurmctld.pid" || die "slurmctld did not start; see $B/log/slurmctld.log"
  cp "$B/run/slurmctld.pid" "$B/pids/slurmctld.pid"
  log "slurmctld started (pid $(cat "$B/pids/slurmctld.pid"))"
fi
if alive "$B/pids/slurmd.pid" slurmd; then
  log "slurmd already running (pid $(cat "$B/pids/slurmd.pid"))"
else
  rm -f "$B/run/slurmd.pid"
  slurmd -f "$CONF" -N "$NODE"
  wait_for 10 test -s "$B/run/slurmd.pid" || die "slurmd did not start; see $B/log/slurmd.log"
  cp "$B/run/slurmd.pid" "$B/pids/slurmd.pid"
  log "slurmd started (pid $(cat "$B/pids/slurmd.pid"))"
fi

# ---------------------------------------------------------------- 7. wait for an idle node (and accounting)
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  st=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null || true)
  case "$st" in
    idle|mixed|allocated) break ;;
    drain*|down*|inval*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || die "node not ready (state '$st'); see $B/log/slurmctld.log $B/log/slurmd.log"
  sleep 0.2
done
if [ "$ACCT" = db ]; then
  # slurmctld registers with slurmdbd asynchronously; until it has, job records are only queued
  registered() { [ -n "$(timeout 10 sacctmgr -n -P list cluster "$CLUSTER" format=ControlHost 2>/dev/null)" ]; }
  while ! registered; do
    [ "$(date +%s)" -lt "$deadline" ] || die "slurmctld did not register with slurmdbd; see $B/log/slurmctld.log $B/log/slurmdbd.log"
    sleep 0.2
  done
fi
log "cluster ready: node $NODE is $st, accounting=$ACCT, after $(elapsed)s  (source $B/env.sh)"
