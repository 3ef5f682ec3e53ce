#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster whose state lives in DIR.
#
#   tests/slurm/start_cluster.sh DIR      # prints: export SLURM_CONF=DIR/slurm.conf
#   eval "$(tests/slurm/start_cluster.sh /tmp/slurm)"; sbatch --wrap hostname
#   tests/slurm/stop_cluster.sh DIR
#
# Needs root (apt-get, munged as the munge user, slurmd launching jobs). Installs Debian's
# slurm-wlm + munge when missing, reuses a running munged (or starts one on the system
# socket), writes DIR/slurm.conf (free ports, so it never collides with a system Slurm or
# another test cluster), starts slurmctld + `slurmd -N localhost` as daemons (PIDs in DIR)
# and waits until the node is idle. Running it again on a live DIR only prints the env line.
# Everything but the env line goes to stderr; on failure the daemons' log tails are printed
# and the exit status is non-zero.
#
# Node sizing: NodeName=localhost advertises CPUs=max(8, nproc) with
# SlurmdParameters=config_overrides, so on a 2-core machine a 2-rank training job, a
# watcher job and array tasks can all run at once (-n4 works too). task/none binds
# nothing, so this is plain time-sharing of the real cores; memory is not a consumable
# resource (CR_CPU), so --mem is never a reason for a job to pend.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

log() { echo "[slurm-cluster] $*" >&2; }
die() {
    log "ERROR: $*"
    for f in "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log "$DIR"/log/*.out; do
        [[ -s $f ]] || continue
        echo "---- tail $f ----" >&2
        tail -n 25 "$f" >&2
    done
    exit 1
}

alive() { # alive PIDFILE NAME: the pid in PIDFILE runs a process called NAME
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/$pid/comm) == "$2" ]]
}

node_state() { sinfo -h -n localhost -o %t 2>/dev/null | head -n1; }

wait_idle() { # wait until the node takes jobs (idle, or busy with jobs of an earlier start)
    local i state=""
    for ((i = 0; i < 150; i++)); do
        state=$(node_state || true)
        case $state in
        idle | mix | alloc | comp) return 0 ;;
        esac
        alive "$DIR/slurmctld.pid" slurmctld || die "slurmctld exited"
        alive "$DIR/slurmd.pid" slurmd || die "slurmd exited"
        sleep 0.2
    done
    die "node not idle after 30 s (state: '${state:-no answer}')"
}

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get, munged, slurmd)"

# ---- idempotence: a live cluster in DIR is reused --------------------------------------
if [[ -s $CONF ]] && alive "$DIR/slurmctld.pid" slurmctld && alive "$DIR/slurmd.pid" slurmd; then
    log "cluster in $DIR already running"
    wait_idle
    echo "export SLURM_CONF=$CONF"
    exit 0
fi

# ---- install -----------------------------------------------------------------------------
need_install() {
    local b
    for b in slurmctld slurmd sbatch srun sinfo squeue scontrol scancel munged munge unmunge; do
        command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || return 0
    done
    return 1
}
export PATH=$PATH:/usr/sbin:/sbin
if need_install; then
    command -v apt-get >/dev/null 2>&1 || die "slurm-wlm/munge missing and no apt-get"
    pkgs=(slurm-wlm munge)
    log "installing ${pkgs[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >"$DIR/apt.log" 2>&1; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update >>"$DIR/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends "${pkgs[@]}" >>"$DIR/apt.log" 2>&1 ||
            { tail -n 20 "$DIR/apt.log" >&2; die "apt-get install ${pkgs[*]} failed"; }
    fi
    need_install && die "slurm/munge binaries still missing after apt-get install"
fi
id munge >/dev/null 2>&1 || die "no 'munge' user (is the munge package installed?)"

# ---- munge ---------------------------------------------------------------------------------
# The system socket (/run/munge/munge.socket.2) is used: munged insists that its key, socket,
# pid and log directories are owned by munge and not reachable through insecure parents,
# which a pytest tmp dir (root, 0700) is not.
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

KEY=/etc/munge/munge.key
if [[ ! -s $KEY ]]; then
    log "creating $KEY"
    install -d -o munge -g munge -m 700 /etc/munge
    if command -v mungekey >/dev/null 2>&1 || [[ -x /usr/sbin/mungekey ]]; then
        mungekey --create --keyfile="$KEY" --force >&2
    else
        dd if=/dev/urandom of="$KEY" bs=1 count=1024 status=none
    fi
    chown munge:munge "$KEY"
    chmod 400 "$KEY"
fi

if munge_ok; then
    log "reusing the running munged"
else
    log "starting munged"
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
    # --force: take over a stale socket left behind by a killed munged.
    runuser -u munge -- munged --force </dev/null >>"$DIR/munged.out" 2>&1 ||
        die "munged failed: $(tail -n 5 "$DIR/munged.out" /var/log/munge/munged.log 2>/dev/null)"
    for ((i = 0; i < 50; i++)); do
        munge_ok && break
        sleep 0.1
    done
    munge_ok || die "munged does not answer: $(tail -n 5 /var/log/munge/munged.log 2>/dev/null)"
    cp /run/munge/munged.pid "$DIR/munged.pid" # stop_cluster.sh stops munged only if this exists
fi

# ---- slurm.conf ----------------------------------------------------------------------------
# A restart after a crash: stop whichever daemon of DIR survived before writing a new conf.
for d in slurmd slurmctld; do
    if alive "$DIR/$d.pid" "$d"; then
        kill "$(<"$DIR/$d.pid")" 2>/dev/null || true
        sleep 1
    fi
done

port_free() {
    if command -v ss >/dev/null 2>&1; then
        [[ -z $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
pick_port() { # a free port in 20000-49999 other than $1
    local p
    for _ in $(seq 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
        [[ $p != "${1:-}" ]] && port_free "$p" && { echo "$p"; return 0; }
    done
    die "no free port found"
}
CTLD_PORT=$(pick_port)
SLURMD_PORT=$(pick_port "$CTLD_PORT")

HW=$(slurmd -C 2>/dev/null | head -n1 || true)
HW_CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$HW")
HW_MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
CPUS=$(((${HW_CPUS:-$(nproc)} > 8) ? ${HW_CPUS:-$(nproc)} : 8))
MEM=${HW_MEM:-1024}
((MEM > 1024)) && MEM=$((MEM - 512)) # a little slack; never above what slurmd reports

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
cat >"$CONF" <<EOF
# Written by tests/slurm/start_cluster.sh: a single-node test cluster, state under $DIR.
ClusterName=andes-test
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: works in containers/VMs without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
SchedulerType=sched/backfill
# Schedule every 2 s (defaults 60/30 s): a requeued job or a freed array slot starts promptly.
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
MinJobAge=600
ReturnToService=2
KillWait=5
InactiveLimit=0
MailProg=/bin/true
NodeName=localhost CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

# ---- daemons ------------------------------------------------------------------------------
log "starting slurmctld (port $CTLD_PORT) and slurmd (port $SLURMD_PORT), CPUs=$CPUS"
rm -f "$DIR/slurmctld.pid" "$DIR/slurmd.pid"
slurmctld -f "$CONF" </dev/null >>"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld failed to start"
for ((i = 0; i < 50; i++)); do
    alive "$DIR/slurmctld.pid" slurmctld && scontrol ping >/dev/null 2>&1 && break
    sleep 0.2
done
alive "$DIR/slurmctld.pid" slurmctld || die "slurmctld is not running"
# -N: the node is called localhost whatever the host name is.
slurmd -f "$CONF" -N localhost </dev/null >>"$DIR/log/slurmd.out" 2>&1 || die "slurmd failed to start"
for ((i = 0; i < 50; i++)); do
    alive "$DIR/slurmd.pid" slurmd && break
    sleep 0.1
done
wait_idle
log "cluster up: $(sinfo -h -o '%P %D %t %C' | head -n1)"
echo "export SLURM_CONF=$CONF"
