#!/usr/bin/env bash
# bench/haproxy.sh: echo and HTTP throughput through HAProxy against direct to one backend, side by
# side in one run, in network namespaces (deploy/); writes bench/results/haproxy-<date>-<commit>.md.
#
#   bench/haproxy.sh [--no-build] [--quick] [bench/haproxy.py options: --duration S --rounds N
#                    --connections C --threads T --cases echo-16,echo-4k,http-fixed,http-file]
#
# Builds a Release build in build-release/ (plexus-server, plexus-client, the echo and http
# plugins) unless --no-build; --quick: 2 s per run, 1 round (about 30 s). Needs root, iproute2,
# haproxy and wrk. A full run (5 s per run, 3 rounds) takes about 2.5 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=1
args=()
for a in "$@"; do
  case $a in
    --no-build) build=0 ;;
    --quick) args+=(--duration 2 --rounds 1) ;;
    *) args+=("$a") ;;
  esac
done

if ((build)); then
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  nice -n 5 cmake --build build-release -j "$(nproc)" --target plexus-server plexus-client echo http
fi
exec python3 bench/haproxy.py --bin-dir build-release/bin --command "bench/haproxy.sh $*" \
  "${args[@]}"
