#!/usr/bin/env bash
# A one-node SLURM cluster on this host, for tests/distributed/test_slurm.py. Debian 12, as root.
# Idempotent: run it again and it installs nothing new and leaves running daemons running.
#
# What it does: installs Debian's slurm-wlm (slurmctld, slurmd, slurm-client) and munge (and
# iproute2, whose `ip` and `tc` tests/distributed/test_two_nodes.py needs), writes a
# minimal /etc/slurm/slurm.conf for a single node named by `hostname -s`, starts munged, slurmctld and
# slurmd as plain daemons (CI machines and containers have no systemd as PID 1; the packages' units
# would never run there), and waits until `sinfo` shows the node idle.
#
# Choices, and why:
# - ProctrackType=proctrack/linuxproc, TaskPlugin=task/none: cgroups are often read-only or v1-only
#   in a sandbox; linuxproc tracks job processes by parent PID and needs nothing from the kernel
#   (slurm.conf(5), ProctrackType).
# - SelectType=select/cons_tres with CR_CPU: CPUs are consumable, so two 1-CPU jobs can share the node.
# - SlurmUser=root, SlurmdUser=root: no service account to prepare; this cluster lives for one CI job.
# - NodeAddr=127.0.0.1: `hostname -s` need not resolve in a container.
# Sources: slurm.conf(5) for Slurm 22.05 (Debian 12's version), https://slurm.schedmd.com/slurm.conf.html;
# munged(8) and munge.key handling, https://github.com/dun/munge/wiki/Installation-Guide.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "ci_slurm.sh: run as root" >&2
    exit 1
fi

HOST=$(hostname -s)
CPUS=$(nproc)
# RealMemory in MiB, a little under MemTotal so that slurmd never reports less than configured
# (a node whose real memory is below RealMemory is set DRAIN with "Low RealMemory").
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm

need_install=0
for tool in slurmctld slurmd sbatch sinfo munged ip tc; do
    command -v "$tool" >/dev/null 2>&1 || need_install=1
done
if [[ $need_install -eq 1 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' maintainer scripts from starting services (invoke-rc.d honours
    # policy-rc.d exit 101, "action forbidden"): this script starts them itself, with its own config.
    added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge iproute2 >/dev/null
    if [[ $added_policy -eq 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
fi

# --- munge: the key, then the daemon -------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
munge -n | unmunge >/dev/null

# --- slurm.conf ----------------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
conf=$(cat <<EOF
# Written by nnscale's scripts/ci_slurm.sh: a one-node cluster for tests.
ClusterName=nnscale-ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdTimeout=300
InactiveLimit=0
KillWait=10
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [[ ! -f $CONF_DIR/slurm.conf ]] || [[ "$(cat "$CONF_DIR/slurm.conf")" != "$conf" ]]; then
    printf '%s\n' "$conf" > "$CONF_DIR/slurm.conf"
    changed=1
fi

alive() {  # alive PIDFILE: the daemon it names is running
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

if [[ $changed -eq 1 ]]; then
    # A new configuration: restart whatever runs with the old one.
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if alive "$pidfile"; then
            kill "$(cat "$pidfile")"
            for _ in $(seq 100); do alive "$pidfile" || break; sleep 0.1; done
        fi
    done
fi
alive /run/slurmctld.pid || slurmctld
for _ in $(seq 100); do
    scontrol ping >/dev/null 2>&1 && break
    sleep 0.2
done
alive /run/slurmd.pid || slurmd

# --- wait for the node -----------------------------------------------------------------------------
state=""
for i in $(seq 150); do
    state=$(sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n1)
    case "$state" in
        idle|mix|alloc) break ;;
        down*|drain*|drng*)
            # ReturnToService=2 brings a node back once it registers; an older DOWN state saved in
            # StateSaveLocation may still need a nudge.
            scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
done
if [[ $state != idle && $state != mix && $state != alloc ]]; then
    echo "ci_slurm.sh: node $HOST is '${state:-unknown}', not idle; see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log" >&2
    sinfo -N -l >&2 || true
    exit 1
fi
sinfo
