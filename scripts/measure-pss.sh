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
#   {"total_bytes":T = private_bytes + shared_bytes + shm_unmapped_bytes, "private_bytes":..,
#    "shared_bytes":.., "shm_unmapped_bytes":.., "pss_bytes":.. (plain sum of PSS),
#    "pss_shmem_bytes":.., "method":"inode"|"pss-split",
#    "processes":[{"pid":..,"comm":"..","pss_bytes":..,"pss_shmem_bytes":..},...],
#    "segments":[{"name":"lmm-123-0","bytes":..,"mapped":true},...]}
#
# How shared memory is counted, once:
#  - Private memory: for every process, PSS minus its shared-memory part
#    (/proc/PID/smaps_rollup "Pss:" - "Pss_Shmem:"): anonymous memory, file pages
#    (binaries, libraries, mmap'ed files) split among the processes that map them.
#  - Shared memory: every segment the processes map (/dev/shm/*, memfd, SysV, shared
#    anonymous; also already-unlinked ones, "(deleted)") counted ONCE, by identity
#    (device:inode), at its allocated size (st_blocks * 512 of /proc/PID/map_files/RANGE;
#    tmpfs allocates on write, and the ring is fully allocated at creation). This is the
#    same as summing Pss_Shmem over all the mappers (PSS splits a page among its mappers)
#    in the steady state, but it stays right while processes attach or detach: a sum
#    of per-process PSS read one process after the other counts a segment up to
#    N times when it is read between two attaches.
#  - Segments in /dev/shm named lmm-<pid>-<n> whose <pid> is one of the processes and
#    that none of them maps (created and not yet mapped, or left behind by a crash) use
#    memory too: their allocated size is added (shm_unmapped_bytes).
#  Without access to /proc/PID/map_files (not root, not the same user with
#  CAP_SYS_ADMIN) it falls back to summing PSS as is (Pss_Shmem split among mappers)
#  plus the unmapped segments ("method": "pss-split" in --json).
#  Not covered: segments kept only through an open descriptor after unlink.
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

private_total=0      # sum of Pss - Pss_Shmem
pss_total=0          # sum of Pss
pss_shmem_total=0    # sum of Pss_Shmem
shared_total=0       # distinct mapped segments, allocated bytes
method=inode
procs_json=
segs_json=
declare -A live=()
declare -A mapped=()     # /dev/shm names mapped by some process
declare -A seen=()       # dev:inode of shared segments already counted
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  [ -n "${live[$p]:-}" ] && continue
  if [ -n "${starts[$i]}" ]; then
    st=$(start_time "$p") || continue
    [ "$st" = "${starts[$i]}" ] || continue
  fi
  rollup=$(cat "/proc/$p/smaps_rollup" 2>/dev/null) || continue
  [ -n "$rollup" ] || continue   # a zombie or kernel thread has no mappings
  read -r pss_kb shm_kb < <(awk '$1 == "Pss:" {p = $2} $1 == "Pss_Shmem:" {s = $2} END {print p + 0, s + 0}' <<<"$rollup")
  live[$p]=1
  pss_total=$((pss_total + pss_kb * 1024))
  pss_shmem_total=$((pss_shmem_total + shm_kb * 1024))
  private_total=$((private_total + (pss_kb - shm_kb) * 1024))
  comm=$(cat "/proc/$p/comm" 2>/dev/null || echo '?')
  comm=${comm//[\"\\]/_}
  procs_json+="${procs_json:+,}{\"pid\":$p,\"comm\":\"$comm\",\"pss_bytes\":$((pss_kb * 1024)),\"pss_shmem_bytes\":$((shm_kb * 1024))}"
  # shared mappings: "START-END perms offset dev inode path"
  while read -r range dev inode path; do
    case "$path" in
      /dev/shm/*) name=${path#/dev/shm/}; name=${name%% (deleted)}; mapped[$name]=1 ;;
      /memfd:*|/SYSV*|"/dev/zero (deleted)"|"/ (deleted)") name=$path ;;
      *) continue ;;
    esac
    key=$dev:$inode
    [ -n "${seen[$key]:-}" ] && continue
    if [ $method = inode ] && sz=$(stat -L -c '%b %B' "/proc/$p/map_files/$range" 2>/dev/null); then
      seen[$key]=1
      bytes=$(( ${sz% *} * ${sz#* } ))
      shared_total=$((shared_total + bytes))
      segs_json+="${segs_json:+,}{\"name\":\"${name//\"/_}\",\"bytes\":$bytes,\"mapped\":true}"
    else
      method=pss-split
    fi
  done < <(awk '$6 != "" && $5 != 0 {path = $6; for (i = 7; i <= NF; i++) path = path " " $i; print $1, $4, $5, path}' "/proc/$p/maps" 2>/dev/null)
done

unmapped_total=0
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
  [ $belongs = 1 ] && [ -z "${mapped[$name]:-}" ] || continue
  bytes=$(( $(stat -c '%b * %B' "$path" 2>/dev/null || echo 0) ))
  segs_json+="${segs_json:+,}{\"name\":\"$name\",\"bytes\":$bytes,\"mapped\":false}"
  unmapped_total=$((unmapped_total + bytes))
done

if [ $method = inode ]; then shared_bytes=$shared_total; else shared_bytes=$pss_shmem_total; fi
total=$((private_total + shared_bytes + unmapped_total))
if [ $json = 1 ]; then
  printf '{"total_bytes":%d,"private_bytes":%d,"shared_bytes":%d,"shm_unmapped_bytes":%d,"pss_bytes":%d,"pss_shmem_bytes":%d,"method":"%s","processes":[%s],"segments":[%s]}\n' \
    "$total" "$private_total" "$shared_bytes" "$unmapped_total" "$pss_total" "$pss_shmem_total" "$method" "$procs_json" "$segs_json"
else
  echo "$total"
fi
