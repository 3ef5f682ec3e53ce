#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start_cluster.sh DIR: cancel its jobs, then
# stop slurmd and slurmctld by the PIDs in DIR, and munged only if start_cluster.sh started
# it (DIR/munged.pid) and no other slurmctld still needs it. Safe to run twice.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
[[ -d $1 ]] || exit 0
DIR=$(cd "$1" && pwd -P)
export SLURM_CONF=$DIR/slurm.conf
export PATH=$PATH:/usr/sbin:/sbin

log() { echo "[slurm-cluster] $*" >&2; }

pid_of() { # pid_of PIDFILE NAME: the pid in PIDFILE if it runs a process called NAME
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/$pid/comm) == "$2" ]] || return 1
    echo "$pid"
}

stop() { # stop NAME:PIDFILE...: SIGTERM to all at once (each takes ~2 s), SIGKILL after 10 s
    local arg name pid pids=() i
    for arg in "$@"; do
        name=${arg%%:*}
        pid=$(pid_of "${arg#*:}" "$name") || continue
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 100; i++)); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -d /proc/$pid ]]; then
            log "pid $pid ignored SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# Cancel this cluster's jobs first so that no job step outlives slurmd.
if pid_of "$DIR/slurmctld.pid" slurmctld >/dev/null && pid_of "$DIR/slurmd.pid" slurmd >/dev/null; then
    if [[ -n $(squeue -h -t PD,R,CG,S -o %i 2>/dev/null) ]]; then
        scancel --full -u "$(id -un)" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            [[ -z $(squeue -h -t R,CG -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

stop "slurmd:$DIR/slurmd.pid" "slurmctld:$DIR/slurmctld.pid"

if pid=$(pid_of "$DIR/munged.pid" munged); then
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        log "leaving munged (pid $pid) running: another slurm daemon uses it"
    else
        stop "munged:$DIR/munged.pid"
    fi
fi
rm -f "$DIR/munged.pid"
exit 0
