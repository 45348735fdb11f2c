# tests/cluster/slurm.sh: a real single-node Slurm for one test, and the helpers the cluster tests
# share. Sourced (bash) by each tests/cluster/*.sh; see docs/CLUSTER.md, "The cluster tests".
#
#   slurm_start DIR   munged, slurmctld and slurmd with everything (slurm.conf, state, spool, logs,
#                     pid files, sockets, munge key) under DIR; exports SLURM_CONF so that sbatch,
#                     srun, squeue, scontrol and scancel talk to this cluster and no other. Returns
#                     when the node is idle, or fails with the daemons' log tails. Installs an EXIT
#                     trap that cancels the cluster's jobs and stops the daemons by pid, so a test
#                     that fails still tears everything down.
#
# Nothing in /etc is read or written: the ports are picked free for each start (and picked again
# when a daemon loses the race for one), so two runs on one machine, or a daemon left over by a
# killed run, do not collide. The daemons run in the foreground (-D, -F) as children of the test,
# so their pids are known without pid files; they run as root (SlurmUser=root), which is what the
# machines the suite runs on give. Start-up takes well under a second; every wait below is a poll
# with a deadline, never a fixed sleep.
#
# The settings, and why (measured on Debian 12's slurm-wlm 22.05 with 2 cores, no systemd):
#   ProctrackType=proctrack/linuxproc, TaskPlugin=task/none   no cgroups needed
#   SelectType=select/cons_tres + CR_CPU                      one array task per CPU at a time
#                                                             (select/linear runs one per node)
#   SchedulerParameters=batch_sched_delay=0,sched_min_interval=0   the defaults add ~3 s a wave
#     sched_interval=1,bf_interval=1          a job that becomes eligible by time (a requeued
#                                             one) is otherwise seen only by the 30-60 s loops
#   AuthInfo=...,cred_expire=5                a requeued job waits cred_expire (default 120 s)
#                                             before it starts again
#   MailProg=/bin/true; accounting, job completion: none      nothing of that is installed

# ---- small helpers --------------------------------------------------------------------------

# test_setup KILN SOURCE_DIR WORK_DIR: every test's arguments (the kiln binary, the source tree, its
# own work folder) into kiln, src and work; the work folder made empty and made the current one.
test_setup() {
  kiln=${1:?usage: ${KT_NAME:-cluster test} KILN SOURCE_DIR WORK_DIR}
  src=${2:?usage: ${KT_NAME:-cluster test} KILN SOURCE_DIR WORK_DIR}
  work=${3:?usage: ${KT_NAME:-cluster test} KILN SOURCE_DIR WORK_DIR}
  rm -rf "$work"
  mkdir -p "$work"
  cd "$work"
}

say() { printf '%s: %s\n' "${KT_NAME:-cluster}" "$*"; }
fail() { printf '%s: FAIL: %s\n' "${KT_NAME:-cluster}" "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# wait_for SECONDS WHAT CMD...: runs CMD every 20 ms until it succeeds; fails naming WHAT after
# SECONDS. The interval only bounds how late a change is seen, nothing relies on it.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local end=$(($(date +%s%N) + limit * 1000000000))
  until "$@"; do
    if [ "$(date +%s%N)" -gt "$end" ]; then
      fail "timed out after ${limit} s waiting for: $what"
    fi
    sleep 0.02
  done
}

# ---- the cluster ----------------------------------------------------------------------------

slurm_log_tails() {
  local f
  for f in "$SLURM_DIR"/log/*.log; do
    [ -f "$f" ] || continue
    printf -- '--- last lines of %s\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

# A TCP port no socket on this machine uses (any state, IPv4 or IPv6), from /proc/net: no tools
# needed. A daemon that starts later can still lose the port to someone else: slurm_start
# notices (the daemon says "Address already in use") and tries again with new ports.
port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  grep -qE "^ *[0-9]+: [0-9A-F]+:$hex " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! port_in_use "$p" && [ "$p" != "${1:-}" ]; then
      echo "$p"
      return
    fi
  done
}

slurm_write_conf() {
  local d=$SLURM_DIR ctld_port=$1 slurmd_port=$2
  cat >"$d/slurm.conf" <<EOF
# Written by tests/cluster/slurm.sh for one test; removed with the test's folder.
ClusterName=kilntest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.sock,cred_expire=5
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
NodeName=localhost CPUs=$SLURM_CPUS State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

# A daemon started by slurm_start is still alive.
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

ctld_up() {
  alive "$SLURM_CTLD_PID" || return 2
  scontrol ping 2>/dev/null | grep -q 'is UP'
}
node_idle() {
  alive "$SLURM_SLURMD_PID" || return 2
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]
}

# wait_daemon SECONDS WHAT PID CHECK: like wait_for, but gives up at once when the daemon died.
wait_daemon() {
  local limit=$1 what=$2 pid=$3 check=$4
  local end=$(($(date +%s%N) + limit * 1000000000))
  until $check; do
    if ! alive "$pid"; then
      say "$what: the daemon exited"
      return 1
    fi
    if [ "$(date +%s%N)" -gt "$end" ]; then
      say "$what: not ready after ${limit} s"
      return 1
    fi
    sleep 0.02
  done
}

slurm_start_once() {
  local d=$SLURM_DIR ctld_port slurmd_port
  ctld_port=$(free_port)
  slurmd_port=$(free_port "$ctld_port")
  rm -rf "$d/state" "$d/spool" "$d/log" "$d/run"
  mkdir -p "$d/state" "$d/spool" "$d/log" "$d/run"
  slurm_write_conf "$ctld_port" "$slurmd_port"

  slurmctld -D -c -f "$d/slurm.conf" >>"$d/log/slurmctld.out" 2>&1 &
  SLURM_CTLD_PID=$!
  wait_daemon 20 "slurmctld (port $ctld_port)" "$SLURM_CTLD_PID" ctld_up || return 1

  slurmd -D -N localhost -f "$d/slurm.conf" >>"$d/log/slurmd.out" 2>&1 &
  SLURM_SLURMD_PID=$!
  wait_daemon 20 "slurmd (port $slurmd_port), node idle" "$SLURM_SLURMD_PID" node_idle || return 1
  say "slurm up: slurmctld pid $SLURM_CTLD_PID port $ctld_port, slurmd pid $SLURM_SLURMD_PID port $slurmd_port"
}

munge_start() {
  local d=$SLURM_DIR
  # munged refuses a socket folder others cannot enter (0755 is required) and a key that others
  # could read (folder 0700, key 0600).
  mkdir -p "$d/munge" "$d/munge-key" "$d/log"
  chmod 0755 "$d/munge"
  chmod 0700 "$d/munge-key"
  if [ ! -f "$d/munge-key/munge.key" ]; then
    mungekey --create --keyfile="$d/munge-key/munge.key" >"$d/log/mungekey.log" 2>&1 ||
      { cat "$d/log/mungekey.log" >&2; fail "mungekey could not create a key"; }
  fi
  chmod 0600 "$d/munge-key/munge.key"
  munged -F --socket="$d/munge/munge.sock" --key-file="$d/munge-key/munge.key" \
    --pid-file="$d/munge/munged.pid" --seed-file="$d/munge/munged.seed" \
    --log-file="$d/log/munged.log" >>"$d/log/munged.out" 2>&1 &
  SLURM_MUNGE_PID=$!
  wait_daemon 20 "munged" "$SLURM_MUNGE_PID" "test -S $d/munge/munge.sock" ||
    { slurm_log_tails; fail "munged did not start (its log is above)"; }
}

slurm_start() {
  SLURM_DIR=$1
  if [ "$(id -u)" -ne 0 ]; then
    fail "the cluster tests start slurmctld, slurmd and munged as root (SlurmUser=root) and must run as root; this is uid $(id -u). Run ctest as root, or configure with -DKILN_CLUSTER_TESTS=OFF"
  fi
  local tool
  for tool in slurmctld slurmd munged mungekey sbatch srun squeue scontrol scancel sinfo; do
    command -v "$tool" >/dev/null ||
      fail "$tool not found: install slurm-wlm and munge (tools/install-deps does)"
  done
  # Unix sockets (munge's, slurmstepd's in the spool) have a 108-byte limit on their path.
  if [ "${#SLURM_DIR}" -gt 70 ]; then
    fail "the cluster folder $SLURM_DIR is too long for its Unix sockets (at most 70 characters); use a shorter build folder"
  fi
  mkdir -p "$SLURM_DIR"
  SLURM_CPUS=$(nproc)
  export SLURM_CONF=$SLURM_DIR/slurm.conf
  # A test run inside a Slurm job must not talk to the outer cluster's job.
  local v
  for v in $(compgen -e | grep -E '^(SLURM_|SBATCH_|SRUN_|SALLOC_|PMI_|PMIX_|OMPI_)'); do
    [ "$v" = SLURM_CONF ] || unset "$v"
  done
  SLURM_CTLD_PID= SLURM_SLURMD_PID= SLURM_MUNGE_PID=
  trap slurm_stop EXIT

  munge_start
  local attempt
  for attempt in 1 2 3; do
    if slurm_start_once; then
      return 0
    fi
    slurm_kill_daemons
    if ! grep -qs 'Address already in use' "$SLURM_DIR"/log/slurm*.log "$SLURM_DIR"/log/slurm*.out; then
      break
    fi
    say "a port was taken between choosing it and binding it; again with new ports"
  done
  slurm_log_tails
  fail "Slurm did not start (the daemons' logs are above)"
}

# Stops a daemon by pid: TERM, then KILL if it is still there after 10 s.
stop_pid() {
  local pid=$1 i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 500; i++)); do
    alive "$pid" || break
    sleep 0.02
  done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}

slurm_kill_daemons() {
  stop_pid "$SLURM_SLURMD_PID"
  stop_pid "$SLURM_CTLD_PID"
  SLURM_SLURMD_PID= SLURM_CTLD_PID=
}

# Every process whose environment names this cluster's slurm.conf: the job steps (slurmstepd
# daemonises, so it is not a child of the test) and what they started.
cluster_pids() {
  local e pid
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}
    pid=${pid%/environ}
    [ "$pid" = $$ ] && continue
    if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF"; then
      echo "$pid"
    fi
  done
}

slurm_stop() {
  local rc=$?
  trap - EXIT
  [ -n "${KT_CLEANUP:-}" ] && $KT_CLEANUP
  if alive "$SLURM_CTLD_PID"; then
    scancel --quiet --user=root 2>/dev/null || true
    local i
    for ((i = 0; i < 250; i++)); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.02
    done
  fi
  slurm_kill_daemons
  local pid
  for pid in $(cluster_pids); do
    [ "$pid" = "$SLURM_MUNGE_PID" ] && continue
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop_pid "$SLURM_MUNGE_PID"
  if [ "$rc" -ne 0 ]; then
    slurm_log_tails
  fi
  exit "$rc"
}

# ---- jobs -----------------------------------------------------------------------------------

# jobs_active JOBID: some task of JOBID is pending, running or completing.
jobs_active() { [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ]; }
jobs_done() { ! jobs_active "$1"; }

# job_field JOBID[_TASK] FIELD: FIELD (JobState, ExitCode, Restarts, ...) of each record, one a line.
job_field() {
  scontrol -o show job "$1" 2>/dev/null | grep -oE "(^| )$2=[^ ]*" | sed "s/^ *$2=//"
}

# wait_jobs SECONDS JOBID...: polls squeue until no task of the jobs is left pending or running
# (`sbatch --wait` polls far more slowly), then fails unless every task COMPLETED.
wait_jobs() {
  local limit=$1 id
  shift
  for id in "$@"; do
    wait_for "$limit" "job $id to finish (squeue: $(squeue -h -j "$id" -o '%i %T' 2>/dev/null | tr '\n' ' '))" jobs_done "$id"
  done
  for id in "$@"; do
    local states bad
    states=$(job_field "$id" JobState)
    bad=$(grep -vx COMPLETED <<<"$states" || true)
    if [ -n "$bad" ] || [ -z "$states" ]; then
      local line log
      while read -r line; do
        grep -oE '(^| )(JobId|ArrayTaskId|JobState|ExitCode|Restarts)=[^ ]*' <<<"$line" | tr -d ' ' | tr '\n' ' ' >&2
        echo >&2
        log=$(grep -oE 'StdOut=[^ ]*' <<<"$line" | sed 's/^StdOut=//')
        [ -f "$log" ] && tail -n 5 "$log" | sed 's/^/    /' >&2
      done < <(scontrol -o show job "$id" 2>/dev/null)
      fail "job $id: not every task COMPLETED: $(tr '\n' ' ' <<<"$states")"
    fi
  done
}

# ---- frames and manifests -------------------------------------------------------------------

# The job of the tests (examples/cluster/job.json): frames 0..199, files %05d_color.png.
frame_file() { printf '%s/%05d_color.png' "$1" "$2"; }

# count_frames DIR: how many of the job's 200 frame files exist.
count_frames() { find "$1" -maxdepth 1 -name '[0-9][0-9][0-9][0-9][0-9]_color.png' | wc -l; }

# check_output DIR N: exactly the N frame files and nothing else that is not hidden, and nothing
# hidden but the atomic writes' temporaries (.NAME.tmp-...) and the claim folder.
check_output() {
  local dir=$1 n=$2 got extra
  got=$(count_frames "$dir")
  [ "$got" -eq "$n" ] || fail "$dir holds $got frame files, not $n"
  extra=$(find "$dir" -mindepth 1 -maxdepth 1 \
    ! -name '[0-9][0-9][0-9][0-9][0-9]_color.png' ! -name '.*.tmp-*' ! -name .kiln-claims \
    ! -name manifests ! -name manifest.jsonl ! -name 'summary_*.json' -printf '%f\n')
  [ -z "$extra" ] && return 0
  fail "unexpected files in $dir: $(tr '\n' ' ' <<<"$extra")"
}

# check_manifests N FILE...: the union of the manifests' "index" values is 0..N-1, each exactly
# once (no frame written by two shards, none by no shard).
check_manifests() {
  local n=$1 dups missing
  shift
  [ $# -gt 0 ] || fail "no manifest files"
  local all
  all=$(cat "$@" | grep -oE '"index": *[0-9]+' | grep -oE '[0-9]+$' | sort -n)
  dups=$(uniq -d <<<"$all")
  [ -z "$dups" ] || fail "frames in more than one manifest (written by two shards): $(head -n 10 <<<"$dups" | tr '\n' ' ')"
  missing=$(LC_ALL=C comm -23 <(seq 0 $((n - 1)) | LC_ALL=C sort) <(LC_ALL=C sort <<<"$all") | sort -n)
  [ -z "$missing" ] || fail "frames in no manifest: $(head -n 10 <<<"$missing" | tr '\n' ' ')"
  local count
  count=$(grep -c . <<<"$all")
  [ "$count" -eq "$n" ] || fail "the manifests hold $count indices, not $n"
}

# check_merged FILE N: kiln merge's output has N lines, with indices 0..N-1 in order.
check_merged() {
  local file=$1 n=$2 lines idx
  [ -f "$file" ] || fail "no merged manifest $file"
  lines=$(grep -c . "$file")
  [ "$lines" -eq "$n" ] || fail "$file has $lines lines, not $n"
  idx=$(grep -oE '"index": *[0-9]+' "$file" | grep -oE '[0-9]+$')
  [ "$idx" = "$(seq 0 $((n - 1)))" ] || fail "$file is not sorted by index 0..$((n - 1))"
}

# kiln_pid_of VAR=VALUE...: the pid of a running kiln whose environment holds every VAR=VALUE.
kiln_pid_of() {
  local e pid kv ok
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}
    pid=${pid%/environ}
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = kiln ] || continue
    ok=1
    for kv in "$@"; do
      { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF "$kv" || { ok=; break; }
    done
    [ -n "$ok" ] && { echo "$pid"; return 0; }
  done
  return 1
}
