#!/usr/bin/env bash
# A real single-node SLURM on this machine, for trying and testing the slurm profiles.
#
#   sudo tools/slurm/local-slurm.sh up       # install (apt, once), configure, start; prints its time
#   sudo tools/slurm/local-slurm.sh status   # daemons, node state, accounting
#   sudo tools/slurm/local-slurm.sh down     # stop the daemons (PID files); config and packages stay
#   sudo tools/slurm/local-slurm.sh purge    # down + remove the packages, configs, state and logs
#
# Debian/Ubuntu, root, no systemd needed: daemons are started by hand and stopped by PID file.
# The node gets every CPU (nproc), ~95 % of the memory `slurmd -C` reports and FAKE_GPUS fake
# GPUs (GRES gpu backed by /dev/null-like character devices, so CUDA_VISIBLE_DEVICES is set).
# Partitions `cpu` (default) and `gpu` share the node, as named in profiles/slurm*.
# With accounting (default) slurmdbd + MariaDB run too, so sacct, the account `ci` (user root)
# and the efficiency report work; the cluster then looks like a site using profiles/slurm.
#
# `up` is idempotent: with an unchanged configuration and running daemons it returns in about
# a second; a changed configuration restarts the SLURM daemons. Logs: /var/log/slurm.
#
# Environment:
#   ACCOUNTING=1         0: no slurmdbd/MariaDB (use profiles/slurm-noacct: status via squeue)
#   FAKE_GPUS=1          number of fake GPUs on the node (0: none)
#   CPU_PARTITION=cpu    GPU_PARTITION=gpu
#   SLURM_ACCOUNT=ci     account created with accounting; SLURM_USERS get an association
#   SLURM_USERS="root $SUDO_USER"
#   MIN_JOB_AGE=3600     seconds finished jobs stay visible to squeue (the plugin needs >= 120)
#   CLUSTER_NAME=localci
set -euo pipefail

MODE=${1:-status}
ACCOUNTING=${ACCOUNTING:-1}
FAKE_GPUS=${FAKE_GPUS:-1}
CPU_PARTITION=${CPU_PARTITION:-cpu}
GPU_PARTITION=${GPU_PARTITION:-gpu}
SLURM_ACCOUNT=${SLURM_ACCOUNT:-ci}
SLURM_USERS=${SLURM_USERS:-root ${SUDO_USER:-}}
MIN_JOB_AGE=${MIN_JOB_AGE:-3600}
CLUSTER_NAME=${CLUSTER_NAME:-localci}

ETC=/etc/slurm
LOGDIR=/var/log/slurm
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
GPU_DIR=/run/fake-gpus
DB_NAME=slurm_acct_db
DB_USER=slurm
PID_MUNGE=/run/munge/munged.pid
PID_MARIADB=/run/mysqld/mysqld.pid
PID_DBD=/run/slurmdbd.pid
PID_CTLD=/run/slurmctld.pid
PID_SLURMD=/run/slurmd.pid
BASE_PKGS=(slurmctld slurmd slurm-client munge)
ACCT_PKGS=(slurmdbd mariadb-server)
HOST=$(hostname -s)

log() { echo "local-slurm: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (sudo $0 $MODE)"
}

# ---------------------------------------------------------------------------------- processes
pid_alive() { # pidfile (via /proc, so that `status` also works without root)
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ]
}

stop_pid() { # name pidfile
    local name=$1 pidfile=$2 pid i
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) did not stop in 10 s; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "stopped $name ($pid)"
}

wait_for() { # description timeout_s command...
    local what=$1 timeout=$2 i
    shift 2
    for i in $(seq $((timeout * 10))); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    die "$what not ready after ${timeout} s (logs: $LOGDIR)"
}

# ---------------------------------------------------------------------------------- install
installed() { # package
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_packages() {
    local missing=() p
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
    log "installing ${missing[*]}"
    # Keep the packages' maintainer scripts from starting services with their stock config.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}"
    } >"$LOGDIR/apt.log" 2>&1 || rc=$?
    [ $own_policy -eq 1 ] && rm -f "$policy"
    if [ $rc -ne 0 ]; then
        tail -20 "$LOGDIR/apt.log" >&2
        die "apt-get install ${missing[*]} failed (rc $rc, full log $LOGDIR/apt.log)"
    fi
}

# ---------------------------------------------------------------------------------- config
node_memory_mb() {
    local real
    real=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
    [ -n "$real" ] || real=$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)
    echo $((real * 95 / 100))
}

# Fake GPUs: GRES needs File= to be a character device, else the node is drained (no File) or
# CUDA_VISIBLE_DEVICES is not set (regular file). Aliases of /dev/null (char 1:3) do.
fake_gpu_files() {
    [ "$FAKE_GPUS" -gt 0 ] || return 0
    mkdir -p "$GPU_DIR"
    local i ok=1
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
        if [ ! -c "$GPU_DIR/gpu$i" ]; then
            rm -f "$GPU_DIR/gpu$i"
            mknod -m 666 "$GPU_DIR/gpu$i" c 1 3 2>/dev/null || ok=0
        fi
    done
    if [ $ok -eq 1 ]; then
        if [ "$FAKE_GPUS" -eq 1 ]; then
            echo "$GPU_DIR/gpu0"
        else
            echo "$GPU_DIR/gpu[0-$((FAKE_GPUS - 1))]"
        fi
    else
        log "mknod not permitted: one fake GPU backed by /dev/null"
        FAKE_GPUS=1
        echo /dev/null
    fi
}

write_if_changed() { # path mode content -> returns 0 when written (changed)
    local path=$1 mode=$2 content=$3
    if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
        return 1
    fi
    printf '%s\n' "$content" >"$path.tmp"
    chmod "$mode" "$path.tmp"
    mv "$path.tmp" "$path"
    return 0
}

slurm_conf() { # cpus mem_mb gres_line
    local cpus=$1 mem=$2 gpu_file=$3 defmem acct gather node_gres=""
    defmem=$((mem / cpus))
    [ $defmem -gt 1000 ] && defmem=1000
    if [ "$ACCOUNTING" = 1 ]; then
        acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu"
        gather="JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5"
    else
        acct="AccountingStorageType=accounting_storage/none"
        gather="JobAcctGatherType=jobacct_gather/none"
    fi
    [ -n "$gpu_file" ] && node_gres=" Gres=gpu:$FAKE_GPUS"
    cat <<EOF
# Written by tools/slurm/local-slurm.sh: a single-node test cluster. Edits are overwritten.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$PID_CTLD
SlurmdPidFile=$PID_SLURMD
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=$MIN_JOB_AGE
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$defmem
$acct
$gather
GresTypes=gpu
# No Sockets/Cores/Threads: with CR_CPU_Memory every hardware thread is one schedulable CPU.
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem$node_gres State=UNKNOWN
PartitionName=$CPU_PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
EOF
}

gres_conf() { # gpu_file
    echo "# Written by tools/slurm/local-slurm.sh: fake GPUs (character devices aliasing /dev/null)."
    echo "AutoDetect=off"
    [ -n "$1" ] && echo "NodeName=$HOST Name=gpu File=$1"
    return 0
}

db_password() {
    local pw=""
    [ -f "$ETC/slurmdbd.conf" ] && pw=$(sed -n 's/^StoragePass=//p' "$ETC/slurmdbd.conf")
    [ -n "$pw" ] || pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    echo "$pw"
}

slurmdbd_conf() { # password
    cat <<EOF
# Written by tools/slurm/local-slurm.sh.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LOGDIR/slurmdbd.log
PidFile=$PID_DBD
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$1
StorageLoc=$DB_NAME
EOF
}

# ---------------------------------------------------------------------------------- daemons
start_munge() {
    pid_alive "$PID_MUNGE" && return 0
    mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
    wait_for munged 10 sh -c 'munge -n | unmunge'
    log "started munged"
}

start_mariadb() {
    if ! mariadb-admin ping >/dev/null 2>&1; then
        mkdir -p /run/mysqld
        chown mysql:mysql /run/mysqld
        if [ ! -d /var/lib/mysql/mysql ]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOGDIR/mariadb-install.log" 2>&1
        fi
        setsid mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file="$PID_MARIADB" \
            </dev/null >>"$LOGDIR/mariadb.log" 2>&1 &
        wait_for MariaDB 30 mariadb-admin ping
        log "started mariadbd"
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS $DB_NAME;
        CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$1';
        ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$1';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';"
}

start_slurmdbd() {
    pid_alive "$PID_DBD" && return 0
    slurmdbd </dev/null >/dev/null 2>&1
    wait_for slurmdbd 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'
    log "started slurmdbd"
}

start_slurm() {
    mkdir -p "$CTLD_SPOOL" "$SLURMD_SPOOL"
    if ! pid_alive "$PID_CTLD"; then
        slurmctld </dev/null >/dev/null 2>&1
        wait_for slurmctld 30 scontrol ping
        log "started slurmctld"
    fi
    if ! pid_alive "$PID_SLURMD"; then
        slurmd </dev/null >/dev/null 2>&1
        log "started slurmd"
    fi
}

node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1; }

wait_node_idle() {
    local i state=""
    for i in $(seq 300); do
        state=$(node_state)
        case "$state" in
            idle | mixed | allocated) return 0 ;;
            *drain* | *inval* | down* | *fail*)
                scontrol update nodename="$HOST" state=resume 2>/dev/null || true
                ;;
        esac
        sleep 0.1
    done
    scontrol show node "$HOST" >&2 || true
    die "node $HOST not idle after 30 s (state '$state'; logs: $LOGDIR)"
}

cluster_registered() {
    sacctmgr -n -P show cluster "$CLUSTER_NAME" format=cluster 2>/dev/null | grep -qx "$CLUSTER_NAME"
}

ensure_associations() {
    # slurmctld registers the cluster with slurmdbd when it starts; add it if that has not happened.
    if ! cluster_registered; then
        sleep 1
        cluster_registered || sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
    fi
    if ! sacctmgr -n -P show account "$SLURM_ACCOUNT" format=account 2>/dev/null | grep -qx "$SLURM_ACCOUNT"; then
        sacctmgr -i add account "$SLURM_ACCOUNT" Cluster="$CLUSTER_NAME" \
            Description="local test account" >/dev/null
        log "created account $SLURM_ACCOUNT"
    fi
    local user
    for user in $SLURM_USERS; do
        if ! sacctmgr -n -P show assoc where user="$user" account="$SLURM_ACCOUNT" format=user 2>/dev/null | grep -qx "$user"; then
            sacctmgr -i add user "$user" Account="$SLURM_ACCOUNT" DefaultAccount="$SLURM_ACCOUNT" >/dev/null
            log "added user $user to account $SLURM_ACCOUNT"
        fi
    done
}

# ---------------------------------------------------------------------------------- modes
up() {
    need_root
    local t0
    t0=$(now)
    mkdir -p "$LOGDIR" "$ETC"
    install_packages "${BASE_PKGS[@]}"
    [ "$ACCOUNTING" = 1 ] && install_packages "${ACCT_PKGS[@]}"

    local cpus mem gpu_file changed=0 pw=""
    cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys both; the node must not
    mem=$(node_memory_mb)
    gpu_file=$(fake_gpu_files)
    [ "$FAKE_GPUS" -gt 0 ] || gpu_file=""
    [ "$gpu_file" = /dev/null ] && FAKE_GPUS=1
    write_if_changed "$ETC/slurm.conf" 644 "$(slurm_conf "$cpus" "$mem" "$gpu_file")" && changed=1
    write_if_changed "$ETC/gres.conf" 644 "$(gres_conf "$gpu_file")" && changed=1
    if [ "$ACCOUNTING" = 1 ]; then
        pw=$(db_password)
        write_if_changed "$ETC/slurmdbd.conf" 600 "$(slurmdbd_conf "$pw")" && changed=1
    fi

    if [ $changed -eq 1 ]; then
        log "configuration changed: (re)starting the SLURM daemons"
        stop_pid slurmd "$PID_SLURMD"
        stop_pid slurmctld "$PID_CTLD"
        stop_pid slurmdbd "$PID_DBD"
    fi
    start_munge
    if [ "$ACCOUNTING" = 1 ]; then
        start_mariadb "$pw"
        start_slurmdbd
    fi
    start_slurm
    wait_node_idle
    [ "$ACCOUNTING" = 1 ] && ensure_associations

    log "up in $(elapsed "$t0") s: node $HOST, $cpus CPUs, ${mem} MB, $FAKE_GPUS fake GPU(s)," \
        "partitions $CPU_PARTITION (default) + $GPU_PARTITION, accounting $([ "$ACCOUNTING" = 1 ] && echo "on (account $SLURM_ACCOUNT)" || echo off)"
}

down() {
    need_root
    stop_pid slurmd "$PID_SLURMD"
    stop_pid slurmctld "$PID_CTLD"
    stop_pid slurmdbd "$PID_DBD"
    if [ -s "$PID_MARIADB" ]; then
        stop_pid mariadbd "$PID_MARIADB"
    fi
    stop_pid munged "$PID_MUNGE"
}

purge() {
    need_root
    down
    local pkgs=() p
    for p in "${BASE_PKGS[@]}" "${ACCT_PKGS[@]}" slurm-wlm-basic-plugins libmunge2; do
        installed "$p" && pkgs+=("$p")
    done
    if [ ${#pkgs[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${pkgs[@]}" >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq --purge >/dev/null
    fi
    rm -rf "$ETC" /etc/munge "$CTLD_SPOOL" "$SLURMD_SPOOL" "$LOGDIR" "$GPU_DIR" /var/lib/mysql
    log "purged (packages: ${pkgs[*]:-none})"
}

status() {
    local name pidfile
    for name in munged:$PID_MUNGE mariadbd:$PID_MARIADB slurmdbd:$PID_DBD \
        slurmctld:$PID_CTLD slurmd:$PID_SLURMD; do
        pidfile=${name#*:}
        if pid_alive "$pidfile"; then
            printf '%-10s running (pid %s)\n' "${name%%:*}" "$(cat "$pidfile")"
        else
            printf '%-10s stopped\n' "${name%%:*}"
        fi
    done
    if command -v sinfo >/dev/null && pid_alive "$PID_CTLD"; then
        sinfo -o '%P %a %D %T %C %G' 2>/dev/null || true
        printf 'accounting: %s\n' "$(scontrol show config 2>/dev/null | sed -n 's/^AccountingStorageType *= *//p')"
        squeue -h -o '%i %P %j %T' 2>/dev/null | head -20 || true
    fi
}

case "$MODE" in
    up) up ;;
    down) down ;;
    purge) purge ;;
    status) status ;;
    *) die "usage: $0 up|down|status|purge" ;;
esac
