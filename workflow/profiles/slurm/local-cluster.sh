#!/usr/bin/env bash
# A single-node SLURM "cluster" on this machine, for running the workflow through the SLURM
# executor plugin without a real cluster (issue 18). Debian / Ubuntu only; run as root.
#
#   workflow/profiles/slurm/local-cluster.sh install   # apt-get install slurm-wlm munge (once)
#   workflow/profiles/slurm/local-cluster.sh start     # write configs, start munged, slurmctld, slurmd
#   workflow/profiles/slurm/local-cluster.sh status    # daemons, sinfo; prints the SLURM_CONF to export
#   workflow/profiles/slurm/local-cluster.sh stop      # stop exactly the daemons `start` started
#   workflow/profiles/slurm/local-cluster.sh env       # prints `export SLURM_CONF=...`
#
# Everything (slurm.conf, munge key and socket, spool, state, logs, PID files) lives under
# $PAGECORE_SLURM_DIR (default /var/tmp/pagecore-slurm), which this script owns. The one thing
# outside it is a symlink /etc/slurm/slurm.conf -> $PAGECORE_SLURM_DIR/etc/slurm.conf, made by
# `start` only if no /etc/slurm/slurm.conf exists and removed by `stop`: the plugin's job step
# (snakemake-executor-plugin-slurm-jobstep 0.6.1) removes every SLURM_* variable but a few from
# the environment of the `srun` it runs inside each job, SLURM_CONF included, so that srun only
# finds the configuration at SLURM's default path. No systemd unit is used: the daemons are
# started in the foreground mode under nohup, and their PIDs, as started, are recorded in
# $PAGECORE_SLURM_DIR/run/*.pid.
# Every subcommand is idempotent: `start` on a running cluster only checks it (and refuses
# settings other than those it runs with: stop it first), `stop` on a stopped one does nothing.
# A `start` that fails stops the daemons it started itself and removes the symlink it made.
#
# Knobs (environment): PAGECORE_SLURM_DIR, PAGECORE_SLURM_CPUS (default 2),
# PAGECORE_SLURM_MEM_MB (RealMemory, default 4096), PAGECORE_SLURM_PORT (slurmctld port,
# default 6817; slurmd uses the next one), PAGECORE_SLURM_MIN_JOB_AGE (default 600 s),
# PAGECORE_SLURM_ETC_CONF (the symlink's path, default /etc/slurm/slurm.conf; tests change it).
#
# Job status: no slurmdbd. sacct therefore has no database to ask, and the plugin is run with
# `--slurm-status-command squeue`; squeue only sees a finished job for MinJobAge seconds, so
# MinJobAge is set well above the plugin's longest interval between status checks (180 s).
set -euo pipefail

DIR=${PAGECORE_SLURM_DIR:-/var/tmp/pagecore-slurm}
CPUS=${PAGECORE_SLURM_CPUS:-2}
MEM_MB=${PAGECORE_SLURM_MEM_MB:-4096}
PORT=${PAGECORE_SLURM_PORT:-6817}
MIN_JOB_AGE=${PAGECORE_SLURM_MIN_JOB_AGE:-600}
NODE=$(hostname -s)
CONF=$DIR/etc/slurm.conf
ETC_CONF=${PAGECORE_SLURM_ETC_CONF:-/etc/slurm/slurm.conf}
SOCKET=$DIR/munge/munge.socket
DAEMONS=(munged slurmctld slurmd)
STARTED=()  # daemons this `start` launched (stopped again if it fails)
LINKED=0    # whether this `start` made the $ETC_CONF symlink

die() { echo "local-cluster: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (the daemons run as root on this single node)"; }

installed() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; }

cmd_install() {
    need_root
    if installed; then
        echo "local-cluster: slurm-wlm and munge already installed ($(slurmctld -V))"
        return
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install slurm-wlm and munge with your package manager"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge
}

write_configs() {
    mkdir -p "$DIR"/{etc,munge,run,log,state/ctld,state/d}
    chmod 0700 "$DIR" "$DIR/munge"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        # own key: never touches /etc/munge/munge.key
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 0400 "$DIR/munge/munge.key"
    fi
    local tmp=$CONF.tmp
    cat >"$tmp" <<EOF
# Written by workflow/profiles/slurm/local-cluster.sh; rewritten on every start.
ClusterName=pagecore
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.daemon.pid
SlurmdPidFile=$DIR/run/slurmd.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups needed (containers, cgroup v1 or v2): track processes by parent PID, enforce memory
# by polling RSS (jobs over their --mem are killed, so the profile's mem_mb is tested for real).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No accounting database (no slurmdbd / MariaDB): finished jobs stay visible to squeue for
# MinJobAge seconds, which the plugin's squeue status mode needs (>= 3 x its first check delay
# and above its longest interval between checks, 180 s).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=$MIN_JOB_AGE
ReturnToService=2
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=pagecore Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -s "$CONF" ] && ! cmp -s "$tmp" "$CONF" && { live_pid slurmctld >/dev/null || live_pid slurmd >/dev/null; }; then
        # the daemons run with the file as it is: rewriting it under them made `start` report the
        # new settings (RealMemory=8000) of a node that still had the old ones (4096)
        local diff
        diff=$(diff "$CONF" "$tmp" | grep '^[<>]' | tr '\n' ' ' || true)
        rm -f "$tmp"
        die "the running cluster has other settings than these ($diff); run '$0 stop' first to change them"
    fi
    mv "$tmp" "$CONF"
}

# PID recorded by `start` if that process is still alive and is still the daemon we started.
live_pid() {
    local name=$1 f=$DIR/run/$1.pid pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$DIR" || return 1
    echo "$pid"
}

launch() {  # launch NAME CMD...: start in the foreground mode under nohup, record the PID
    local name=$1
    shift
    if pid=$(live_pid "$name"); then
        echo "local-cluster: $name already running (PID $pid)"
        return
    fi
    nohup "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
    echo $! >"$DIR/run/$name.pid"
    STARTED+=("$name")
    sleep 1
    if ! live_pid "$name" >/dev/null; then
        # its last words (a port in use: "fatal: slurm_init_msg_engine_port error Address already in use")
        die "$name exited at once: $(tail -n 1 "$DIR/log/$name.out" 2>/dev/null || true); see $DIR/log/$name.out and $DIR/log/$name.log"
    fi
    echo "local-cluster: started $name (PID $(cat "$DIR/run/$name.pid"))"
}

# on a failed `start`: stop what it started (a refusal left munged running before)
undo_start() {
    local rc=$? i
    [ "$rc" = 0 ] && return
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_daemon "${STARTED[i]}" >/dev/null || true
    done
    if [ "$LINKED" = 1 ] && [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then
        rm -f "$ETC_CONF"
    fi
    [ ${#STARTED[@]} = 0 ] || echo "local-cluster: stopped what this start had started (${STARTED[*]})" >&2
}

cmd_start() {
    need_root
    installed || die "SLURM is not installed: run '$0 install' (apt-get install slurm-wlm munge)"
    # checked before anything starts
    if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then
        :
    elif [ -L "$ETC_CONF" ]; then
        die "$ETC_CONF is a symlink to $(readlink "$ETC_CONF"), not to $CONF: another SLURM (or another PAGECORE_SLURM_DIR) uses it; stop that one first"
    elif [ -e "$ETC_CONF" ]; then
        die "$ETC_CONF exists and is not ours: this machine has its own SLURM; use it instead"
    fi
    trap undo_start EXIT
    write_configs
    launch munged munged --foreground --force --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
        --pid-file="$DIR/run/munged.daemon.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    for _ in $(seq 20); do [ -S "$SOCKET" ] && break; sleep 0.5; done
    [ -S "$SOCKET" ] || die "munged did not create $SOCKET; see $DIR/log/munged.log"
    if ! [ -L "$ETC_CONF" ]; then
        mkdir -p "$(dirname "$ETC_CONF")"
        ln -s "$CONF" "$ETC_CONF"
        LINKED=1
    fi
    export SLURM_CONF=$CONF
    launch slurmctld slurmctld -D -f "$CONF"
    launch slurmd slurmd -D -f "$CONF" -N "$NODE"
    # wait until the node is idle (it registers with slurmctld a few seconds after start)
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
        case "$state" in idle* | mix* | alloc*) break ;; esac
        sleep 1
    done
    case "$state" in
        idle* | mix* | alloc*) ;;
        *) die "node $NODE is '$state', not idle, after 60 s; see $DIR/log/slurmctld.log and slurmd.log" ;;
    esac
    trap - EXIT
    # what the node runs with, as slurmctld sees it (not what this call was asked for)
    local have
    have=$(sinfo -h -N -o 'CPUs=%c RealMemory=%m' 2>/dev/null | head -1 || true)
    echo "local-cluster: up; node $NODE $state, $have MinJobAge=$MIN_JOB_AGE"
    echo "export SLURM_CONF=$CONF"
}

stop_daemon() {  # stop_daemon NAME: stop the daemon `start` recorded, if it still runs
    local name=$1 pid rc=1
    if pid=$(live_pid "$name"); then
        kill "$pid"
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid"
        fi
        echo "local-cluster: stopped $name (PID $pid)"
        rc=0
    fi
    rm -f "$DIR/run/$name.pid"
    return $rc
}

cmd_stop() {
    local pid any=0
    # reverse order: slurmd, slurmctld, munged
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        if stop_daemon "${DAEMONS[i]}"; then
            any=1
        fi
    done
    if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then
        rm -f "$ETC_CONF"
    fi
    [ $any = 1 ] || echo "local-cluster: nothing of ours was running"
}

cmd_status() {
    local pid down=0
    for name in "${DAEMONS[@]}"; do
        if pid=$(live_pid "$name"); then
            echo "$name: running (PID $pid)"
        else
            echo "$name: stopped"
            down=1
        fi
    done
    if [ $down = 0 ]; then
        SLURM_CONF=$CONF sinfo -N -o '%N %t %c %m %P'
        echo "export SLURM_CONF=$CONF"
    fi
    return $down
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) die "usage: $0 install|start|stop|status|env" ;;
esac
