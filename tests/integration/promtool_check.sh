#!/bin/bash
# promtool check metrics on a real scrape: plexus-server (echo, 2 sub-reactors) with
# --admin-listen 127.0.0.1:0, some echo traffic, then /metrics through curl into promtool.
# Usage: promtool_check.sh PLEXUS_SERVER PLUGIN_DIR. Exit 77 (skipped) without promtool or curl.
set -u
server=$1
plugin_dir=$2
if ! command -v promtool >/dev/null; then
  echo "promtool is not installed (Debian: prometheus): skipped"
  exit 77
fi
command -v curl >/dev/null || { echo "curl is not installed: skipped"; exit 77; }

tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# --listen takes no port 0: a random port, again if it is taken.
for attempt in 1 2 3 4 5; do
  port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
  "$server" --listen "127.0.0.1:$port echo" --plugin-dir "$plugin_dir" --threads 2 \
    --admin-listen 127.0.0.1:0 2>"$tmp/log" &
  pid=$!
  for _ in $(seq 100); do
    grep -q " listening on 127.0.0.1:$port" "$tmp/log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q " listening on 127.0.0.1:$port" "$tmp/log" && break
  wait "$pid" 2>/dev/null
  pid=
done
[ -n "$pid" ] || { echo "plexus-server did not start:"; cat "$tmp/log"; exit 1; }
admin=$(grep -o "admin listening on 127.0.0.1:[0-9]*" "$tmp/log" | grep -o "[0-9]*$")
[ -n "$admin" ] || { echo "no admin port in the log:"; cat "$tmp/log"; exit 1; }

# Some traffic, so that the per-loop series have values.
for i in 1 2 3; do
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'hello %s\n' "$i" >&3
  read -r -t 5 reply <&3
  [ "$reply" = "hello $i" ] || { echo "echo answered '$reply'"; exit 1; }
  exec 3>&-
done

curl -sf "http://127.0.0.1:$admin/metrics" >"$tmp/scrape" || { echo "curl /metrics failed"; exit 1; }
if ! grep -q '^plexus_connections_accepted_total{' "$tmp/scrape"; then
  echo "no connection series:"
  cat "$tmp/scrape"
  exit 1
fi
if ! promtool check metrics <"$tmp/scrape"; then
  echo "promtool check metrics failed on:"
  cat "$tmp/scrape"
  exit 1
fi
echo "promtool check metrics: ok ($(grep -vc '^#' "$tmp/scrape") samples)"
