#!/usr/bin/env bash
# scripts/measure-pss.sh — the memory of a process group as seen from outside
# (../shared/ENGINEERING.md section 3): PSS of all its processes plus its shared memory.
#
#   scripts/measure-pss.sh [--json] PID...          these processes
#   scripts/measure-pss.sh [--json] --group RUN_DIR  the launcher and children of
#                                                    RUN_DIR/group.json (lmlaunch)
#   scripts/measure-pss.sh [--json] --cgroup DIR     every process in DIR/cgroup.procs
#                                                    (e.g. /sys/fs/cgroup/memory/NAME)
#
# Prints the total in bytes (one integer), or with --json one line:
#   {"total_bytes":T,"pss_bytes":P,"shm_unmapped_bytes":U,"pss_shmem_bytes":S,
#    "processes":[{"pid":..,"comm":"..","pss_bytes":..,"pss_shmem_bytes":..},...],
#    "segments":[{"name":"lmm-123-0","bytes":..,"mapped":true},...]}
#
# How shared memory is counted, once:
#  - PSS (/proc/PID/smaps_rollup "Pss:") already contains every mapped page of a shared
#    memory segment, split among the processes that map it (a page mapped by 3 processes
#    adds 1/3 page to each). Summed over all the mappers, a segment mapped only by
#    processes of the group counts exactly its resident mapped pages; nothing is added.
#    (Pss_Shmem, the shared-memory part of that, is reported for information.)
#  - A segment in /dev/shm named lmm-<pid>-<n> whose <pid> is one of the processes, and
#    that none of the processes maps (created and not mapped, or left behind by a crash),
#    uses memory that PSS does not see: its allocated size (st_blocks * 512; tmpfs
#    allocates on write) is added as shm_unmapped_bytes.
#  - A segment already unlinked (the scheduler unlinks the ring early) lives only as long
#    as its mappings, so PSS covers it.
#  Not covered: pages of a mapped segment that no process of the group has faulted in
#  (the ring is created and attached with MAP_POPULATE, so it has none), and segments
#  kept only through an open descriptor after unlink.
#
# Processes that have exited are skipped; --group checks start times so a reused pid is
# not counted. Needs read access to /proc/PID/smaps_rollup (same user, or root).
set -euo pipefail

json=0
mode=pids
arg=
pids=()
starts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    --group) mode=group; arg=${2:?--group needs RUN_DIR}; shift ;;
    --group=*) mode=group; arg=${1#--group=} ;;
    --cgroup) mode=cgroup; arg=${2:?--cgroup needs a directory}; shift ;;
    --cgroup=*) mode=cgroup; arg=${1#--cgroup=} ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "measure-pss.sh: unknown option '$1'" >&2; exit 2 ;;
    *)
      [[ "$1" =~ ^[0-9]+$ ]] || { echo "measure-pss.sh: '$1' is not a pid" >&2; exit 2; }
      pids+=("$1"); starts+=("") ;;
  esac
  shift
done

case "$mode" in
  group)
    f="$arg/group.json"
    [ -r "$f" ] || { echo "measure-pss.sh: $f: cannot read" >&2; exit 1; }
    # "launcher_pid": P, "launcher_start_time": S, then per child "pid": P, "start_time": S
    # (pretty or compact JSON; the keys come in this order, group_json.c writes them so).
    last_pid=
    while read -r key val; do
      case "$key" in
        launcher_pid|pid) pids+=("$val"); starts+=(""); last_pid=${#pids[@]} ;;
        launcher_start_time|start_time) [ -n "$last_pid" ] && starts[$((last_pid - 1))]=$val ;;
      esac
    done < <(grep -oE '"(launcher_pid|launcher_start_time|pid|start_time)"[[:space:]]*:[[:space:]]*[0-9]+' "$f" |
             sed -E 's/"([a-z_]+)"[[:space:]]*:[[:space:]]*([0-9]+)/\1 \2/')
    ;;
  cgroup)
    [ -r "$arg/cgroup.procs" ] || { echo "measure-pss.sh: $arg/cgroup.procs: cannot read" >&2; exit 1; }
    while read -r p; do pids+=("$p"); starts+=(""); done < "$arg/cgroup.procs"
    ;;
esac
[ "$mode" != pids ] || [ ${#pids[@]} -gt 0 ] || { echo "usage: measure-pss.sh [--json] PID...|--group RUN_DIR|--cgroup DIR" >&2; exit 2; }

# Field 22 of /proc/PID/stat (start time), counted after the ')' that ends comm.
start_time() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  echo "${20}"
}

pss_total=0
pss_shmem_total=0
procs_json=
declare -A live=()
declare -A mapped=()
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  [ -n "${live[$p]:-}" ] && continue
  if [ -n "${starts[$i]}" ]; then
    st=$(start_time "$p") || continue
    [ "$st" = "${starts[$i]}" ] || continue
  fi
  rollup=$(cat "/proc/$p/smaps_rollup" 2>/dev/null) || continue
  [ -n "$rollup" ] || continue   # a zombie or kernel thread has no mappings
  pss_kb=$(awk '$1 == "Pss:" {print $2}' <<<"$rollup")
  shm_kb=$(awk '$1 == "Pss_Shmem:" {print $2}' <<<"$rollup")
  pss_kb=${pss_kb:-0}; shm_kb=${shm_kb:-0}
  live[$p]=1
  pss_total=$((pss_total + pss_kb * 1024))
  pss_shmem_total=$((pss_shmem_total + shm_kb * 1024))
  comm=$(cat "/proc/$p/comm" 2>/dev/null || echo '?')
  comm=${comm//[\"\\]/_}
  procs_json+="${procs_json:+,}{\"pid\":$p,\"comm\":\"$comm\",\"pss_bytes\":$((pss_kb * 1024)),\"pss_shmem_bytes\":$((shm_kb * 1024))}"
  # segments this process maps ("/dev/shm/lmm-1-0" or "... (deleted)")
  while read -r seg; do mapped[$seg]=1; done < <(grep -oE '/dev/shm/lmm-[0-9]+-[^ ]*' "/proc/$p/maps" 2>/dev/null | sed 's|/dev/shm/||' | sort -u)
done

unmapped_total=0
segs_json=
shopt -s nullglob
for path in /dev/shm/lmm-*; do
  name=${path#/dev/shm/}
  [[ "$name" =~ ^lmm-([0-9]+)-[^/]+$ ]] || continue
  owner=${BASH_REMATCH[1]}
  # the segment belongs to the group if its creator is one of the processes (a live one,
  # or, for --group/pid lists, one named even if it has exited: its leftovers still cost)
  belongs=0
  [ -n "${live[$owner]:-}" ] && belongs=1
  for p in "${pids[@]}"; do [ "$p" = "$owner" ] && belongs=1; done
  [ $belongs = 1 ] || continue
  bytes=$(( $(stat -c '%b * %B' "$path" 2>/dev/null || echo 0) ))
  if [ -n "${mapped[$name]:-}" ]; then
    segs_json+="${segs_json:+,}{\"name\":\"$name\",\"bytes\":$bytes,\"mapped\":true}"
  else
    segs_json+="${segs_json:+,}{\"name\":\"$name\",\"bytes\":$bytes,\"mapped\":false}"
    unmapped_total=$((unmapped_total + bytes))
  fi
done

total=$((pss_total + unmapped_total))
if [ $json = 1 ]; then
  printf '{"total_bytes":%d,"pss_bytes":%d,"shm_unmapped_bytes":%d,"pss_shmem_bytes":%d,"processes":[%s],"segments":[%s]}\n' \
    "$total" "$pss_total" "$unmapped_total" "$pss_shmem_total" "$procs_json" "$segs_json"
else
  echo "$total"
fi
