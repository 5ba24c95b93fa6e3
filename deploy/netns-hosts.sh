#!/usr/bin/env bash
# netns-hosts.sh: a small network of "hosts" as Linux network namespaces, for running plexus-server
# behind HAProxy on one machine (deploy/README.md).
#
#   deploy/netns-hosts.sh up [N]         namespaces PREFIX-lb and PREFIX-h1..hN (N: 3), joined
#   deploy/netns-hosts.sh down           removes them and ends what runs in them (idempotent)
#   deploy/netns-hosts.sh exec HOST CMD  runs CMD in PREFIX-HOST (HOST: lb, h1, h2, ...)
#   deploy/netns-hosts.sh status         the namespaces, their addresses and processes
#
# Layout: a bridge `br0` inside PREFIX-lb holds the load balancer's address SUBNET.1/24; each host
# namespace PREFIX-hI has `eth0`, one end of a veth pair whose other end (`hI`, in PREFIX-lb) is a
# port of the bridge, with the address SUBNET.(10+I). Nothing is created in the namespace the
# script is run from: each veth pair is made inside PREFIX-lb, its peer moved straight to its host.
#
# Environment: PLX_NETNS_PREFIX (default plx) names the namespaces, so that several sets can exist
# at once (the tests use a prefix of their own per run); PLX_SUBNET (default 10.77.0) is the first
# three octets of the addresses. Needs root and iproute2. Exit status: 0 ok, 1 failure, 2 usage.
set -euo pipefail

prefix=${PLX_NETNS_PREFIX:-plx}
subnet=${PLX_SUBNET:-10.77.0}

usage() {
  sed -n '4,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "netns-hosts: $*" >&2
  exit 1
}

# The namespaces of this prefix that exist now, the load balancer's last (it holds the bridge).
existing() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-h[0-9]+\$" | sort -V || true
  ip netns list 2>/dev/null | awk '{print $1}' | grep -Fx "${prefix}-lb" || true
}

ns_of() {
  case $1 in
    lb | h[0-9]*) echo "${prefix}-$1" ;;
    *) die "unknown host '$1' (expected lb, h1, h2, ...)" ;;
  esac
}

cmd_up() {
  local n=${1:-3}
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 200)); then
    die "invalid host count '$n' (expected 1-200)"
  fi
  [[ -z $(existing) ]] || die "namespaces with prefix '${prefix}' exist already; run 'down' first"
  # A failure part way leaves nothing behind.
  trap 'cmd_down >/dev/null 2>&1 || true
        echo "netns-hosts: up failed (above); removed what it made" >&2' ERR
  local lb=${prefix}-lb
  ip netns add "$lb"
  ip -n "$lb" link set lo up
  ip -n "$lb" link add br0 type bridge
  ip -n "$lb" addr add "${subnet}.1/24" dev br0
  ip -n "$lb" link set br0 up
  local i host
  for ((i = 1; i <= n; i++)); do
    host=${prefix}-h$i
    ip netns add "$host"
    ip -n "$host" link set lo up
    ip -n "$lb" link add "h$i" type veth peer name eth0 netns "$host"
    ip -n "$lb" link set "h$i" master br0
    ip -n "$lb" link set "h$i" up
    ip -n "$host" addr add "${subnet}.$((10 + i))/24" dev eth0
    ip -n "$host" link set eth0 up
  done
  trap - ERR
  echo "netns-hosts: up: ${lb} (${subnet}.1, bridge br0) and ${n} hosts ${prefix}-h1..h${n}" \
    "(${subnet}.11..${subnet}.$((10 + n)))"
}

# Ends the processes in a namespace: SIGTERM, then SIGKILL for what is left after 2 s.
kill_in() {
  local ns=$1 pids t
  mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for ((t = 0; t < 20; t++)); do
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    ((${#pids[@]})) || return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

cmd_down() {
  local ns found=0
  for ns in $(existing); do
    found=1
    kill_in "$ns"
    # The host's end of its veth pair goes with its namespace, and the peer in PREFIX-lb with it.
    ip netns del "$ns" 2>/dev/null || die "cannot delete namespace $ns"
  done
  if ((found)); then
    echo "netns-hosts: down: namespaces with prefix '${prefix}' removed"
  else
    echo "netns-hosts: down: nothing with prefix '${prefix}'"
  fi
}

cmd_exec() {
  (($# >= 2)) || usage
  local ns
  ns=$(ns_of "$1")
  shift
  ip netns list | awk '{print $1}' | grep -Fxq "$ns" ||
    die "namespace $ns does not exist (run 'up')"
  exec ip netns exec "$ns" "$@"
}

cmd_status() {
  local ns any=0
  for ns in $(existing); do
    any=1
    echo "== $ns"
    ip -n "$ns" -br addr show | grep -v '^lo ' | sed 's/^/  /'
    local pids pid
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
    for pid in "${pids[@]}"; do
      # From /proc rather than ps: procps is not on every minimal system.
      echo "  pid $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    done
    ((${#pids[@]})) || echo "  (no processes)"
  done
  ((any)) || echo "netns-hosts: no namespaces with prefix '${prefix}'"
}

(($# >= 1)) || usage
((EUID == 0)) || die "must run as root (network namespaces)"
command -v ip >/dev/null || die "ip (iproute2) not found"
case $1 in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  exec) shift; cmd_exec "$@" ;;
  status) cmd_status ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
