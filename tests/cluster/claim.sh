#!/usr/bin/env bash
# cluster.claim: three `kiln render --claim --chunk 8 --claim-timeout 3` processes (plain processes,
# no scheduler) share one output folder; one is SIGKILLed in the middle of a chunk (it holds the
# chunk's claim and has written some of its frames, not all; it is stopped before that is checked). The other two finish: each exits 0,
# the dead process's chunk was taken over (its next claim generation exists), every chunk is done,
# and `kiln verify` decodes all 200 frames.
# Usage: claim.sh KILN SOURCE_DIR WORK_DIR
set -euo pipefail
KT_NAME=cluster.claim
# shellcheck source=slurm.sh
source "${2:?usage: $KT_NAME KILN SOURCE_DIR WORK_DIR}/tests/cluster/slurm.sh"
test_setup "$@"
job=$src/examples/cluster/job.json
out=$work/out
# The claims of one selection of frames live in a folder of their own: .kiln-claims/<key>/.
claims=
claim_dir() {
  [ -n "$claims" ] && return 0
  claims=$(find "$out/.kiln-claims" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1)
  [ -n "$claims" ]
}

pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap stop_all EXIT

# 64x64 at 8 spp: a chunk of 8 frames takes long enough here to be caught half written.
for i in 0 1 2; do
  "$kiln" render "$job" -o "$out" --claim --chunk 8 --claim-timeout 3 --size 64x64 --spp 8 \
    >"$work/p$i.log" 2>&1 &
  pids+=($!)
done
victim=${pids[0]}

# victim_chunk: prints a chunk the victim holds (a claim file naming its pid), not yet done, of
# which at least one frame is on disk (frames = positions here: frames 0..199, no --frames).
victim_chunk() {
  local f name c frame
  claim_dir || return 1
  for f in "$claims"/[0-9]*.[0-9]*; do
    [ -f "$f" ] || continue
    grep -qw "$victim" "$f" 2>/dev/null || continue
    name=$(basename "$f")
    c=$((10#${name%%.*}))
    [ -e "$claims/${name%%.*}.done" ] && continue
    for ((frame = 8 * c; frame < 8 * c + 8; frame++)); do
      if [ -e "$(frame_file "$out" "$frame")" ]; then
        echo "$c"
        return 0
      fi
    done
  done
  return 1
}
# The victim is stopped (SIGSTOP) before its state is read, so that it cannot finish the chunk
# between the check and the kill; when the stopped state is not mid-chunk it goes on (SIGCONT).
victim_stopped_mid_chunk() {
  kill -0 "$victim" 2>/dev/null || return 0
  victim_chunk >/dev/null || return 1
  kill -STOP "$victim"
  victim_chunk >/dev/null && return 0
  kill -CONT "$victim"
  return 1
}
wait_for 60 "process 0 to be in the middle of a chunk" victim_stopped_mid_chunk
chunk=$(victim_chunk) || { cat "$work/p0.log" >&2; fail "process 0 ended before it could be killed mid-chunk"; }
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
written=0
for ((frame = 8 * chunk; frame < 8 * chunk + 8; frame++)); do
  [ -e "$(frame_file "$out" "$frame")" ] && written=$((written + 1))
done
say "SIGKILLed process 0 (pid $victim) holding chunk $chunk with $written of its 8 frames written"
cname=$(printf '%08d' "$chunk")
[ ! -e "$claims/$cname.done" ] || fail "chunk $chunk was finished when process 0 was killed"

for i in 1 2; do
  end=$(($(date +%s) + 90))
  while kill -0 "${pids[$i]}" 2>/dev/null; do
    [ "$(date +%s)" -le "$end" ] || { cat "$work/p$i.log" >&2; fail "process $i still running after 90 s"; }
    sleep 0.05
  done
  rc=0
  wait "${pids[$i]}" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$work/p$i.log" >&2; fail "process $i exited $rc"; }
done

ls "$claims/$cname".[1-9]* >/dev/null 2>&1 ||
  fail "nobody took chunk $chunk over from the killed process: $(cd "$claims" && echo "$cname".*)"
for ((c = 0; c < 25; c++)); do
  [ -e "$claims/$(printf '%08d' "$c").done" ] || fail "chunk $c has no .done"
done
check_output "$out" 200
"$kiln" verify "$job" -o "$out" --size 64x64 || fail "kiln verify failed"
say "chunk $chunk was taken over; the two others finished all 25 chunks; verify passes"
