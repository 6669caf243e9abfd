#!/usr/bin/env bash
# A real single-node SLURM cluster from Debian's packages, with real job accounting, for tests and trials.
#   scripts/slurm_local.sh start    # munge, MariaDB, slurmdbd, slurmctld, slurmd; prints `export SLURM_CONF=...`
#   scripts/slurm_local.sh status   # what runs, `sinfo`, the last jobs from `sacct`
#   scripts/slurm_local.sh stop     # stops every daemon it started, by the pid it recorded
# Needs root and Debian 12's slurmctld, slurmd, slurmdbd, slurm-client, munge and mariadb-server
# (`scripts/setup.sh slurm` installs them). Everything lives in $SLURM_LOCAL_DIR (default
# .cache/slurm_local): configs, state, logs, the database; nothing outside it is changed except munge's
# /run/munge. The database listens on 127.0.0.1 only; its password is random, kept in files of mode 600.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$(realpath -m "${SLURM_LOCAL_DIR:-.cache/slurm_local}")"
HOST="$(hostname -s)"
CTLD_PORT="${SLURM_LOCAL_PORT:-6817}"  # slurmctld; slurmd +1, slurmdbd +2, MariaDB +3
SLURMD_PORT=$((CTLD_PORT + 1)) DBD_PORT=$((CTLD_PORT + 2)) DB_PORT=$((CTLD_PORT + 3))
export SLURM_CONF="$DIR/slurm.conf"

say() { echo "slurm_local: $*" >&2; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

write_configs() {
  mkdir -p "$DIR"/{state,spool,log,run,db}
  local memory password
  memory=$(awk '/MemAvailable/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  [ -s "$DIR/db_password" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$DIR/db_password")
  password=$(cat "$DIR/db_password")
  cat > "$DIR/slurm.conf" <<EOF
ClusterName=bench_app_local
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
KillWait=5
MailProg=/bin/true
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$HOST CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  (umask 077 && cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
EOF
  )
}

start_munge() {
  if pgrep -x munged >/dev/null; then return 0; fi  # the machine's own munge serves us too
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  wait_for 10 test -S /run/munge/munge.socket.2
  cp /run/munge/munged.pid "$DIR/run/munged.pid"  # ours to stop
}

start_database() {
  alive "$DIR/run/mariadb.pid" && return 0
  if [ ! -d "$DIR/db/mysql" ]; then
    mariadb-install-db --user=root --datadir="$DIR/db" --auth-root-authentication-method=socket \
      >"$DIR/log/mariadb-install.log" 2>&1
  fi
  mariadbd --user=root --datadir="$DIR/db" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --socket="$DIR/run/mariadb.sock" --pid-file="$DIR/run/mariadb.pid" \
    --log-error="$DIR/log/mariadb.log" --skip-name-resolve >/dev/null 2>&1 &
  wait_for 60 mariadb --socket="$DIR/run/mariadb.sock" -u root -e "SELECT 1"
  mariadb --socket="$DIR/run/mariadb.sock" -u root <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$DIR/db_password")';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

start() {
  if [ "$(id -u)" != 0 ]; then say "needs root"; exit 2; fi
  for tool in slurmctld slurmd slurmdbd sacctmgr munged mariadbd; do
    command -v "$tool" >/dev/null || { say "$tool not installed (scripts/setup.sh slurm)"; exit 2; }
  done
  write_configs
  start_munge
  start_database
  if ! alive "$DIR/run/slurmdbd.pid"; then
    slurmdbd
    wait_for 30 sacctmgr -n show cluster
  fi
  sacctmgr -i -Q add cluster bench_app_local >/dev/null 2>&1 || true
  alive "$DIR/run/slurmctld.pid" || slurmctld
  alive "$DIR/run/slurmd.pid" || slurmd
  wait_for 60 bash -c "sinfo -h -o %t | grep -q idle" || { say "node not idle: see $DIR/log"; exit 1; }
  say "cluster bench_app_local up on $HOST (controller port $CTLD_PORT, accounting port $DBD_PORT)"
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  local name pidfile pid
  for name in slurmd slurmctld slurmdbd mariadb munged; do
    pidfile="$DIR/run/$name.pid"
    alive "$pidfile" || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    wait_for 20 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
    say "stopped $name ($pid)"
  done
  rm -f "$DIR/run/munged.pid"
}

status() {
  local name
  for name in munged mariadb slurmdbd slurmctld slurmd; do
    if alive "$DIR/run/$name.pid"; then echo "$name: running ($(cat "$DIR/run/$name.pid"))"; else echo "$name: -"; fi
  done
  sinfo 2>&1 || true
  sacct -a -X -S now-1day -o JobID,JobName%20,State,ExitCode,Elapsed 2>&1 | tail -n 10 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
