#!/usr/bin/env bash
# Starts a throwaway single-node Slurm cluster on this machine (root; Debian/Ubuntu; systemd not needed), for
# tests, CI and trying `paris launch --backend slurm` without a cluster. Installs the packages when missing.
#
# Usage: [FAKE_GPUS=N] [SLURM_MEMORY_MB=M] [SLURMCTLD_PORT=P] [SLURMD_PORT=P] scripts/slurm-up.sh [BASE_DIR]
#   then: export SLURM_CONF=BASE_DIR/etc/slurm.conf      (the Slurm commands need it; nothing else does)
#   stop: scripts/slurm-down.sh BASE_DIR [--munge]
#
# FAKE_GPUS=N gives the node N fake GPUs (character devices cloned from /dev/null), so that `--gres=gpu:1`
# jobs get their own CUDA_VISIBLE_DEVICES index without any GPU. Everything lives in BASE_DIR (default
# /tmp/paris-slurm): config, state, spool, logs and the daemons' PID files. One cluster at a time per port pair.
set -euo pipefail
BASE=${1:-/tmp/paris-slurm}
FAKE_GPUS=${FAKE_GPUS:-0}
MEMORY_MB=${SLURM_MEMORY_MB:-1000}
say() { echo "[slurm-up] $*" >&2; }

if [ "$(id -u)" != 0 ]; then say "must run as root (it installs packages and starts munged and slurmd)"; exit 1; fi
need_install=0
for c in slurmctld slurmd sbatch munged; do
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || need_install=1
done
if [ "$need_install" = 1 ]; then
  say "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  fi
fi

mkdir -p "$BASE"/{etc,state,spool,log,run}
BASE=$(cd "$BASE" && pwd)
GRES_NODE=""; GRES_TYPES=""
rm -f "$BASE/etc/gres.conf"
if [ "$FAKE_GPUS" -gt 0 ]; then
  # Slurm sets CUDA_VISIBLE_DEVICES only for gres backed by character devices: clone /dev/null (major 1, minor 3).
  for i in $(seq 0 $((FAKE_GPUS - 1))); do [ -e "$BASE/fakegpu$i" ] || mknod "$BASE/fakegpu$i" c 1 3; done
  echo "NodeName=localhost Name=gpu File=$BASE/fakegpu[0-$((FAKE_GPUS - 1))]" > "$BASE/etc/gres.conf"
  GRES_NODE=" Gres=gpu:$FAKE_GPUS"; GRES_TYPES="GresTypes=gpu"
fi
cat > "$BASE/etc/slurm.conf" <<CONF
# Written by paris scripts/slurm-up.sh: a single-node cluster for tests.
ClusterName=paris
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$GRES_TYPES
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEMORY_MB State=UNKNOWN$GRES_NODE
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$BASE/etc/slurm.conf"

# munge: the package's postinst makes /etc/munge/munge.key; without systemd nobody makes /run/munge or starts munged.
if ! munge -n >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force; chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 755 /run/munge
  # Daemons get /dev/null for stdin/stdout/stderr: a caller that captures this script's output through a pipe
  # would otherwise wait forever for the daemons to close it.
  runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n >/dev/null 2>&1 || { say "munged did not start"; exit 1; }
  # Remember that this cluster started munged, so that slurm-down.sh --munge stops it (and only then).
  cp /run/munge/munged.pid "$BASE/run/munged.pid" 2>/dev/null || true
fi

alive() { local p; p=$(cat "$1" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }
alive "$BASE/run/slurmctld.pid" || /usr/sbin/slurmctld </dev/null >>"$BASE/log/slurmctld.out" 2>&1
alive "$BASE/run/slurmd.pid" || /usr/sbin/slurmd </dev/null >>"$BASE/log/slurmd.out" 2>&1
for _ in $(seq 150); do
  case "$(sinfo -h -o '%T' 2>/dev/null)" in
    idle|mixed|allocated) echo "slurm up: export SLURM_CONF=$SLURM_CONF"; exit 0 ;;
  esac
  sleep 0.2
done
say "slurm did not come up within 30 s; the last lines of $BASE/log:"
tail -n 20 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 || true
exit 1
