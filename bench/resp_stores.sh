#!/usr/bin/env bash
# Measures the resp plugin's two stores (and redis-server beside them) with redis-benchmark:
# -c 50, SET/GET/INCR (plus PING_MBULK, LPUSH, HSET against redis-server at 1 thread), with and
# without -P 16, plexus-server at --threads 1 and 2. Each figure is the median of REPS runs, the
# servers' runs interleaved so that a noisy machine hurts them alike. Prints a Markdown table.
#
#   bench/resp_stores.sh [BUILD_DIR] > bench/results/resp-store-$(date +%F).md
set -euo pipefail
build=${1:-build}
n=${N:-100000}
reps=${REPS:-3}
server=$build/bin/plexus-server
port_base=${PORT_BASE:-17400}
tests=${TESTS:-ping_mbulk,set,get,incr,lpush,hset}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }

declare -A ports
start() {  # name port command...
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$port"
  ports[$name]=$port
}

p=$port_base
start redis $p redis-server --port $p --save '' --appendonly no; p=$((p+1))
for store in striped sharded; do
  for t in 1 2; do
    start "$store/$t" $p "$server" --port $p --threads $t --plugin resp --plugin-arg store=$store
    p=$((p+1))
  done
done

declare -A results
for rep in $(seq "$reps"); do
  for pipe in 1 16; do
    for name in redis striped/1 sharded/1 striped/2 sharded/2; do
      redis-cli -p "${ports[$name]}" flushall >/dev/null
      while IFS=, read -r test rps _; do
        test=${test//\"/}; rps=${rps//\"/}
        [[ $test == test ]] && continue
        results["$name|$pipe|$test"]+="$rps "
      done < <(redis-benchmark -p "${ports[$name]}" -c 50 -n "$n" -P "$pipe" -t "$tests" --csv 2>/dev/null)
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| server | -P | $(echo "$tests" | tr 'a-z,' 'A-Z|' | sed 's/|/ | /g') |"
echo "|---|---|$(echo "$tests" | sed 's/[^,]*/---/g; s/,/|/g')|"
for pipe in 1 16; do
  for name in redis striped/1 sharded/1 striped/2 sharded/2; do
    row="| $( [[ $name == redis ]] && echo "redis-server 7.0" || echo "resp store=${name%/*}, --threads ${name#*/}") | $pipe |"
    for test in $(echo "$tests" | tr 'a-z,' 'A-Z '); do
      row+=" $(echo "${results["$name|$pipe|$test"]:-}" | median) |"
    done
    echo "$row"
  done
done
