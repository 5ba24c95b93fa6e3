#!/usr/bin/env python3
"""Connection rate: Plexus (main-loop hand-off and per-thread SO_REUSEPORT accept) against the
peer echo servers (bench/peers), 1 and 2 threads, side by side in one run.

Each connection: connect, send 16 B, read the echo, close, and again (`plexus-client bench
--churn`, the same client for every server). Builds a Release tree in build-release/ (and the
peers in build-release/bench-peers/) unless --no-build, runs every (threads, server) cell
--rounds times in an order shuffled per round, keeps the median, and writes
bench/results/connrate-<date>-<commit>.md with the ratios against the best library peer
(libev, libevent, libuv, asio; epoll_echo, a bare epoll loop, is shown apart).

    bench/connrate.py                    # about 2 minutes once built
    bench/connrate.py --rounds 5 --duration 5
"""

import argparse
import datetime
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_PEERS = ["libev", "libevent", "libuv", "asio"]
PEER_BINARIES = {"epoll_echo": "epoll_echo", "libev": "libev_echo", "libevent": "libevent_echo",
                 "libuv": "libuv_echo", "asio": "asio_echo"}


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build-dir", default="build-release")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--threads", default="1,2", help="server threads, comma list")
    p.add_argument("--connections", type=int, default=32, help="connections in flight")
    p.add_argument("--client-threads", type=int, default=2)
    p.add_argument("--size", default="16")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--syscalls", action="store_true",
                   help="instead: each server (1 thread) under `strace -f -c`; syscalls per "
                        "connection, by name (timing-independent, unlike the rates)")
    return p.parse_args(argv)


def build(build_dir):
    def step(cmd):
        log("+", " ".join(cmd))
        subprocess.run(["nice", "-n", "5"] + cmd, check=True, cwd=ROOT)
    step(["cmake", "-S", ".", "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release"])
    step(["cmake", "--build", str(build_dir), "-j2", "--target", "plexus-server", "plexus-client",
          "echo"])
    peers = build_dir / "bench-peers"
    step(["cmake", "-S", "bench", "-B", str(peers), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release"])
    step(["cmake", "--build", str(peers), "-j2"])


def servers(build_dir):
    server = str(build_dir / "bin" / "plexus-server")
    base = [server, "--port", "{port}", "--threads", "{threads}", "--plugin", "echo",
            "--log-level", "warn"]
    out = {"plexus-handoff": base,
           "plexus-reuseport": base + ["--accept-mode", "reuseport"],
           "plexus-reuseport-level": base + ["--accept-mode", "reuseport", "--epoll-mode",
                                             "level"]}
    skipped = ["muduo (not packaged in Debian 12)"]
    for name, binary in PEER_BINARIES.items():
        path = build_dir / "bench-peers" / binary
        if path.exists():
            out[name] = [str(path), "--port", "{port}", "--threads", "{threads}"]
        else:
            skipped.append(f"{name} (not built: its library is missing)")
    return out, skipped


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(proc, port, deadline_s=10.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.05)
    return "not accepting"


def process_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(name, argv, threads, args, client):
    port = free_port()
    cmd = [a.replace("{port}", str(port)).replace("{threads}", str(threads)) for a in argv]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT)
    result = {"server": name, "threads": threads, "ok": False}
    try:
        why = wait_accepting(proc, port)
        if why:
            result["reason"] = why
            return result
        cpu0 = process_cpu_s(proc.pid)
        out = subprocess.run(
            [client, "bench", "--churn", "-p", str(port), "-c", str(args.connections),
             "-t", str(args.client_threads), "--size", args.size, "-d", str(args.duration),
             "--warmup", str(args.warmup), "--json", "--quiet"],
            capture_output=True, text=True, timeout=args.duration + args.warmup + 60)
        cpu1 = process_cpu_s(proc.pid)
        if out.returncode != 0 or not out.stdout.strip():
            result["reason"] = f"client exit {out.returncode}: {out.stderr.strip()[-200:]}"
            return result
        r = json.loads(out.stdout)
        result["client"] = r
        result["connections_per_second"] = r["connections_per_second"]
        # The server's CPU over warm-up and measured time, per connection measured (approximate:
        # the warm-up's connections are in the CPU time but not in the count).
        total = r["completed"] * (args.duration + args.warmup) / max(args.duration, 1e-9)
        result["server_cpu_us_per_conn"] = (cpu1 - cpu0) * 1e6 / max(total, 1)
        result["ok"] = r["connect_errors"] == 0 and r["mismatches"] == 0 and r["resets"] == 0
        if not result["ok"]:
            result["reason"] = "connect errors, resets or mismatches"
        return result
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def syscall_profile(table, args, client):
    """Syscalls per connection of each server at 1 thread, counted by strace."""
    lines = ["## Syscalls per connection (1 thread, `strace -f -c`)", "",
             "Whole connections (connect, 16 B echo, close) the client completed while the server "
             "ran under strace, and every syscall the server made meanwhile (start-up included, "
             "a few dozen), divided.", ""]
    names = ["accept4", "accept", "epoll_ctl", "epoll_wait", "read", "recvfrom", "readv",
             "write", "sendto", "writev", "close", "setsockopt", "getsockname", "getpeername"]
    lines += ["| server | total | " + " | ".join(names) + " |",
              "|---|" + "---:|" * (len(names) + 1)]
    for name, argv in table.items():
        port = free_port()
        cmd = [a.replace("{port}", str(port)).replace("{threads}", "1") for a in argv]
        trace = Path(f"/tmp/connrate-strace-{os.getpid()}-{name}.txt")
        proc = subprocess.Popen(["strace", "-f", "-c", "-o", str(trace)] + cmd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
        if wait_accepting(proc, port):
            lines.append(f"| {name} | FAILED to start | |")
            continue
        out = subprocess.run([client, "bench", "--churn", "-p", str(port), "-c", "8", "-t", "1",
                              "--size", args.size, "-d", "2", "--warmup", "0", "--json",
                              "--quiet"], capture_output=True, text=True, timeout=60)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        # +1: the connect of wait_accepting().
        completed = json.loads(out.stdout)["completed"] + 1 if out.stdout.strip() else 0
        counts = {}
        for row in trace.read_text().splitlines():
            f = row.split()
            if len(f) >= 5 and f[-1] not in ("syscall", "total") and f[3].isdigit():
                counts[f[-1]] = int(f[3])
        trace.unlink(missing_ok=True)
        per = {k: v / max(completed, 1) for k, v in counts.items()}
        total = sum(per.values())
        lines.append(f"| {name} | {total:.2f} | "
                     + " | ".join(f"{per[n]:.2f}" if n in per else "" for n in names) + " |")
        log(f"syscalls {name}: {total:.2f} per connection ({completed} connections)")
    return lines + [""]


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv):
    args = parse_args(argv)
    build_dir = (ROOT / args.build_dir).resolve()
    if not args.no_build:
        build(build_dir)
    client = str(build_dir / "bin" / "plexus-client")
    table, skipped = servers(build_dir)
    threads_list = [int(t) for t in args.threads.split(",")]
    if args.syscalls:
        print("\n".join(syscall_profile(table, args, client)))
        return 0
    rng = random.Random(args.seed)
    runs = []
    for rnd in range(args.rounds):
        for threads in threads_list:
            names = list(table)
            rng.shuffle(names)
            for name in names:
                r = one_run(name, table[name], threads, args, client)
                r["round"] = rnd
                runs.append(r)
                log(f"round {rnd + 1} threads {threads} {name}: "
                    + (f"{r['connections_per_second']:.0f} conn/s" if r["ok"]
                       else f"FAILED ({r.get('reason', '')})"))

    # Medians per (threads, server).
    med = {}
    for threads in threads_list:
        for name in table:
            ok = [r for r in runs if r["threads"] == threads and r["server"] == name and r["ok"]]
            if ok:
                med[(threads, name)] = (
                    statistics.median(r["connections_per_second"] for r in ok),
                    statistics.median(r["server_cpu_us_per_conn"] for r in ok), len(ok))

    commit = git_commit()
    date = datetime.date.today().isoformat()
    lines = [f"# Connection rate: connect, {args.size} B echo, close ({date}, {commit})", "",
             f"`{' '.join(['bench/connrate.py'] + argv)}`", "",
             f"- Client: `plexus-client bench --churn -c {args.connections} -t "
             f"{args.client_threads} --size {args.size} -d {args.duration} --warmup {args.warmup}`"
             f" (each of {args.connections} slots: connect, send, read the echo, close, again).",
             f"- {args.rounds} rounds, order shuffled per round (seed {args.seed}); median shown; "
             "a run with any connect error, reset or mismatch counts as failed.",
             f"- Machine: {os.cpu_count()} CPUs, load average at the end "
             f"{os.getloadavg()[0]:.1f} (shared: the figures are noisy; compare within a table, and the CPU per connection).",
             "- Plexus `--threads T`: T sub-reactors; handoff: plus the main loop, which accepts "
             "and hands off; reuseport: each sub-reactor accepts on its own SO_REUSEPORT socket. "
             "A peer's `--threads T`: T loops, each accepting on its own SO_REUSEPORT socket.",
             "- Best peer: the best of " + ", ".join(LIBRARY_PEERS) + " (epoll_echo, a bare epoll "
             "loop with no library, is shown for reference).", ""]
    if skipped:
        lines += ["Skipped: " + "; ".join(skipped) + ".", ""]
    for threads in threads_list:
        peers = [(med[(threads, p)][0], p) for p in LIBRARY_PEERS if (threads, p) in med]
        best, best_name = max(peers) if peers else (None, None)
        lines += [f"## {threads} thread{'s' if threads > 1 else ''}", "",
                  "| server | connections/s | vs best peer | server CPU µs/conn | runs ok |",
                  "|---|---:|---:|---:|---:|"]
        for name in table:
            if (threads, name) not in med:
                lines.append(f"| {name} | FAILED | | | 0/{args.rounds} |")
                continue
            rate, cpu, n = med[(threads, name)]
            ratio = f"{rate / best:.2f}x" if best else ""
            mark = " (best peer)" if name == best_name else ""
            lines.append(f"| {name}{mark} | {rate:,.0f} | {ratio} | {cpu:.1f} | {n}/{args.rounds} |")
        lines.append("")
    failed = [r for r in runs if not r["ok"]]
    if failed:
        lines += ["## Failed runs", ""]
        lines += [f"- round {r['round'] + 1}, {r['server']}, {r['threads']} threads: "
                  f"{r.get('reason', '')}" for r in failed] + [""]
    text = "\n".join(lines)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"connrate-{date}-{commit}.md"
    out.write_text(text)
    (out_dir / f"connrate-{date}-{commit}.json").write_text(json.dumps(runs, indent=1) + "\n")
    print(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
