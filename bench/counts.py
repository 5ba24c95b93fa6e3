"""bench/counts.py: the timing-independent figures of the suite, run by `bench/run --counts`.

Three tables, each a difference between two runs so that start-up and connection set-up cancel:

- syscalls per echoed message: a strict 16 B ping-pong over 10 connections (one client thread),
  --count 1 and then N round trips per connection, each against a fresh server; the syscalls of
  the second minus those of the first, over the extra messages. Every server under
  `strace -f -c`; Plexus also by its own counters (`plexus-server --stats`, without strace)
  when the server has that option.
- user-space instructions per echoed message: the same ping-pong (--callgrind-n and twice that)
  with the server under `valgrind --tool=callgrind`; Ir of the two runs subtracted.
- bytes of RSS per idle connection: VmRSS of the server before and after this process opens
  --idle-connections connections to it (and once more where each connection first echoed 16 B).

bench/run owns the options, the build, the server list and the process helpers; it calls
add_options() while parsing and main() when --counts is given. Python standard library only.
"""

import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One kind per syscall name as strace spells it; what is not here counts as "other".
KINDS = {
    "wait": {"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
             "_newselect"},
    "read": {"read", "readv", "recvfrom", "recvmsg", "recvmmsg"},
    "write": {"write", "writev", "sendto", "sendmsg", "sendmmsg"},
    "ctl": {"epoll_ctl"},
    "accept": {"accept", "accept4"},
}
KIND_ORDER = ["wait", "read", "write", "ctl", "accept", "other"]
STATS_KEYS = {"wait": "wait_calls", "read": "read_calls", "write": "write_calls",
              "ctl": "ctl_calls", "accept": "accept_calls", "other": "other_calls"}

CONNECTIONS = 10
SIZE = 16
PARTS = ("syscalls", "instructions", "memory")

# Targets printed beside Plexus's figures (server name, or "plexus-epoll-*" for every mode).
SYSCALL_TARGETS = {"plexus-epoll-level": 2.1, "plexus-epoll-oneshot": 3.1}
INSTRUCTION_TARGET = 150       # every Plexus epoll mode
IDLE_BYTES_TARGET = 256        # every Plexus server (issue 10: 256 bytes per idle connection)


class Failed(Exception):
    pass


def add_options(p):
    g = p.add_argument_group("counts (bench/run --counts; see bench/README.md)")
    g.add_argument("--counts", action="store_true",
                   help="instead of the matrix: syscalls and instructions per message, bytes per "
                        "idle connection (a few minutes)")
    g.add_argument("--counts-parts", default=",".join(PARTS), metavar="LIST",
                   help="which tables: syscalls,instructions,memory (default all)")
    g.add_argument("--counts-threads", default="0,1", metavar="LIST",
                   help="Plexus --threads values for the counts (default 0,1; peers run 1)")
    g.add_argument("--syscall-n", type=int, default=2000, metavar="N",
                   help="round trips per connection of the syscall runs counted by Plexus's own "
                        "counters, less a run of 1 (default 2000)")
    g.add_argument("--strace-n", type=int, default=1000, metavar="N",
                   help="the same for the runs under strace (default 1000)")
    g.add_argument("--syscall-rounds", type=int, default=3, metavar="R",
                   help="rounds of each syscall measurement; the median is kept (default 3)")
    g.add_argument("--callgrind-n", type=int, default=2000, metavar="N",
                   help="round trips per connection of the first callgrind run; the second does "
                        "twice that (default 2000)")
    g.add_argument("--idle-connections", type=int, default=10000, metavar="N",
                   help="idle connections for the memory table (default 10000)")


# ---------------------------------------------------------------------------------------------
# Running one server


class Session:
    """A server under an optional wrapper (strace, valgrind), on a free port, stopped on exit."""

    def __init__(self, ctx, server, threads, wrapper=(), start_deadline=15.0):
        self.ctx, self.server, self.threads = ctx, server, threads
        self.port = ctx.ports.take()
        self.argv = list(wrapper) + server.command(self.port, threads)
        self.start_deadline = start_deadline
        self.proc = None
        self.out = None
        self.exit = None

    def __enter__(self):
        run = self.ctx.run
        self.out = tempfile.TemporaryFile()
        try:
            self.proc = run.start(self.argv, None, self.out)
        except OSError as e:
            self.out.close()
            raise Failed(f"cannot start: {e}") from None
        self.ctx.live.append(self.proc)
        problem = run.wait_accepting(self.proc, self.port, self.start_deadline)
        if problem:
            note = self.output_note()
            self.__exit__(None, None, None)
            raise Failed(problem + note)
        return self

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.out.flush()
        self.out.seek(0)
        return self.out.read().decode(errors="replace")

    def output_note(self):
        text = self.output().strip() if self.out and not self.out.closed else ""
        return f"; server output: {text[-300:]!r}" if text else ""

    def stop(self):
        """SIGTERM, and the exit status; Failed unless 0."""
        self.exit = self.ctx.run.stop(self.proc, self.ctx.args.stop_timeout)
        if self.exit != 0:
            raise Failed(f"server exit status after SIGTERM: {self.exit}" + self.output_note())

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.ctx.run.kill_group(self.proc, signal.SIGKILL)
            self.proc.wait()
        if self.proc in self.ctx.live:
            self.ctx.live.remove(self.proc)
        self.out.close()
        return False


def pingpong(ctx, session, count, timeout):
    """The strict ping-pong: CONNECTIONS connections, SIZE bytes, `count` round trips each;
    returns the number of messages echoed."""
    run = ctx.run
    argv = ctx.client_argv + ["-s", "127.0.0.1", "-p", str(session.port),
                              "--connections", str(CONNECTIONS), "--size", str(SIZE),
                              "--count", str(count), "--threads", "1", "--json", "--quiet"]
    with tempfile.TemporaryFile() as out:
        client = run.start(argv, None, out)
        ctx.live.append(client)
        try:
            client.wait(timeout)
        except subprocess.TimeoutExpired:
            run.kill_group(client, signal.SIGKILL)
            client.wait()
            raise Failed(f"client still running after {timeout:g} s" + session.output_note())
        finally:
            ctx.live.remove(client)
        out.seek(0)
        text = out.read().decode(errors="replace")
    result = run.parse_client_json(text)
    if result is None:
        raise Failed(f"client exit {client.returncode}, no JSON: {text.strip()[-300:]!r}")
    faults = [f"{result.get(k)} {k.replace('_', ' ')}"
              for k in ("connect_errors", "mismatches", "disconnects", "unanswered")
              if result.get(k)]
    if faults:
        raise Failed(", ".join(faults))
    if not session.alive():
        raise Failed("server died during the run" + session.output_note())
    if result.get("messages") != CONNECTIONS * count:
        raise Failed(f"{result.get('messages')} messages echoed, expected {CONNECTIONS * count}")
    return result["messages"]


def parse_strace_summary(text):
    """{syscall: calls} from `strace -c` output."""
    calls = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not re.fullmatch(r"[\d.]+", fields[0]) or fields[-1] == "total":
            continue
        calls[fields[-1]] = calls.get(fields[-1], 0) + int(fields[3])
    return calls


def by_kind(calls):
    kinds = dict.fromkeys(KIND_ORDER, 0)
    for name, n in calls.items():
        kind = next((k for k, names in KINDS.items() if name in names), "other")
        kinds[kind] += n
    return kinds


def parse_stats_line(text):
    for line in reversed(text.splitlines()):
        _, sep, rest = line.partition("stats: ")
        if sep and rest.strip().startswith("{"):
            try:
                return json.loads(rest.strip())
            except json.JSONDecodeError:
                return None
    return None


# ---------------------------------------------------------------------------------------------
# The three parts. Each measurement returns a dict of results or raises Failed.


def syscall_run(ctx, server, threads, count, method):
    """Syscalls of one server run with `count` round trips: (kinds, stats-or-None, messages)."""
    stats = method == "counters" or (server.kind == "plexus" and ctx.has_stats)
    if stats:
        server = ctx.run.Server(server.name, server.kind, server.argv + ["--stats"])
    wrapper, trace = (), None
    if method == "strace":
        trace = tempfile.NamedTemporaryFile(prefix="counts-strace-", delete=False)
        trace.close()
        wrapper = ["strace", "-f", "-c", "-o", trace.name, "--"]
    try:
        with Session(ctx, server, threads, wrapper) as s:
            messages = pingpong(ctx, s, count, 120)
            s.stop()
            own = parse_stats_line(s.output()) if stats else None
            if stats and own is None:
                raise Failed("no 'stats:' line on the server's stderr" + s.output_note())
        if method == "strace":
            calls = parse_strace_summary(Path(trace.name).read_text(errors="replace"))
            if not calls:
                raise Failed("strace wrote no summary")
            kinds = by_kind(calls)
        else:
            kinds = {k: own.get(STATS_KEYS[k], 0) for k in KIND_ORDER}
        return kinds, own, messages
    finally:
        if trace:
            os.unlink(trace.name)


def syscall_round(ctx, server, threads, method, n):
    # A tiny run (one round trip per connection) against a big one rather than N against 2N:
    # the same cancelling of start-up and set-up, but the timing-dependent part (how many
    # connections each wait finds ready) varies from run to run, and N-against-2N would weigh
    # that variation 2 + 1 times instead of about once.
    k1, own1, m1 = syscall_run(ctx, server, threads, 1, method)
    k2, own2, m2 = syscall_run(ctx, server, threads, n, method)
    msgs = m2 - m1
    per = {k: (k2[k] - k1[k]) / msgs for k in KIND_ORDER}
    per["total"] = sum(per[k] for k in KIND_ORDER)
    result = {"per_message": per, "messages": [m1, m2], "calls": [k1, k2]}
    if own1 and own2:
        result["own"] = [own1, own2]
        waits = own2.get("wait_calls", 0) - own1.get("wait_calls", 0)
        if waits > 0:
            result["events_per_wait"] = (own2.get("events", 0) - own1.get("events", 0)) / waits
        if method == "strace":  # the server's own count of the same runs, as a cross-check
            result["own_total"] = (own2.get("syscalls", 0) - own1.get("syscalls", 0)) / msgs
    return result


def syscalls(ctx, server, threads, method):
    """--syscall-rounds rounds of (N, 2N); the round with the median total is reported, with
    the spread of the totals."""
    n = ctx.args.syscall_n if method == "counters" else ctx.args.strace_n
    rounds = [syscall_round(ctx, server, threads, method, n)
              for _ in range(ctx.args.syscall_rounds)]
    rounds.sort(key=lambda r: r["per_message"]["total"])
    result = dict(rounds[len(rounds) // 2])
    totals = [r["per_message"]["total"] for r in rounds]
    result["totals"] = totals
    result["n"] = n
    return result


def callgrind_run(ctx, server, threads, count):
    out = tempfile.NamedTemporaryFile(prefix="counts-callgrind-", delete=False)
    out.close()
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}"]
    try:
        with Session(ctx, server, threads, wrapper, start_deadline=60.0) as s:
            messages = pingpong(ctx, s, count, 300)
            s.stop()
        text = Path(out.name).read_text(errors="replace")
        m = re.search(r"^totals:\s*(\d+)", text, re.M) or re.search(r"^summary:\s*(\d+)", text,
                                                                    re.M)
        if not m:
            raise Failed("callgrind wrote no totals")
        return int(m.group(1)), messages
    finally:
        os.unlink(out.name)


def instructions(ctx, server, threads):
    n = ctx.args.callgrind_n
    ir1, m1 = callgrind_run(ctx, server, threads, n)
    ir2, m2 = callgrind_run(ctx, server, threads, 2 * n)
    return {"per_message": (ir2 - ir1) / (m2 - m1), "ir": [ir1, ir2], "messages": [m1, m2]}


def proc_status(pid):
    """(VmRSS, RssAnon) in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("RssAnon", 0)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(session, deadline, what):
    """Waits until the fd count and RSS stop changing; returns (fds, rss, anon)."""
    pid = session.proc.pid
    last = None
    while time.monotonic() < deadline:
        if not session.alive():
            raise Failed(f"server died {what}" + session.output_note())
        now = (fd_count(pid), *proc_status(pid))
        if now == last:
            return now
        last = now
        time.sleep(0.25)
    raise Failed(f"server's fds/RSS still changing {what}")


def memory(ctx, server, threads, echo):
    n = ctx.args.idle_connections
    socks = []
    linger0 = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT to run out of ports with
    try:
        with Session(ctx, server, threads) as s:
            pid = s.proc.pid
            base_fds, base_rss, base_anon = settle(s, time.monotonic() + 10, "at start")
            deadline = time.monotonic() + 60 + n / 500
            for i in range(n):
                if time.monotonic() > deadline:
                    raise Failed(f"only {i} connections after the deadline")
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
                sock.settimeout(10)
                try:
                    sock.connect(("127.0.0.1", s.port))
                except OSError as e:
                    raise Failed(f"connect {i + 1} of {n}: {e}") from None
                # Keep the accept queue short: let the server catch up every 500 connects.
                if (i + 1) % 500 == 0:
                    while fd_count(pid) < base_fds + i + 1 - 1000:
                        if not s.alive() or time.monotonic() > deadline:
                            raise Failed(f"server accepted {fd_count(pid) - base_fds} of {i + 1}"
                                         if s.alive() else "server died" + s.output_note())
                        time.sleep(0.01)
            if echo:
                payload = b"0123456789abcdef"
                for sock in socks:
                    sock.sendall(payload)
                for i, sock in enumerate(socks):
                    got = b""
                    while len(got) < SIZE:
                        try:
                            chunk = sock.recv(SIZE - len(got))
                        except OSError as e:
                            raise Failed(f"echo on connection {i + 1}: {e}") from None
                        if not chunk:
                            raise Failed(f"connection {i + 1} closed before its echo")
                        got += chunk
                    if got != payload:
                        raise Failed(f"connection {i + 1}: echo mismatch")
            while fd_count(pid) < base_fds + n:
                if not s.alive() or time.monotonic() > deadline:
                    raise Failed(f"server holds {fd_count(pid) - base_fds} of {n} connections "
                                 "at the deadline" if s.alive() else "server died" +
                                 s.output_note())
                time.sleep(0.05)
            fds, rss, anon = settle(s, time.monotonic() + 10, "with the connections open")
            for sock in socks:
                sock.close()
            socks = []
            s.stop()
        return {"per_connection": (rss - base_rss) / n,
                "anon_per_connection": (anon - base_anon) / n,
                "rss": [base_rss, rss], "anon": [base_anon, anon], "fds": [base_fds, fds]}
    finally:
        for sock in socks:
            sock.close()


# ---------------------------------------------------------------------------------------------
# Plan, report


def threads_for(ctx, server):
    return ctx.plexus_threads if server.kind == "plexus" else [1]


def engine_of(server):
    argv = server.argv
    return argv[argv.index("--engine") + 1] if "--engine" in argv else None


def plan(ctx, servers):
    """[(part, server, threads, variant)] in the order they run."""
    jobs = []
    parts = ctx.parts
    for s in servers:
        for t in threads_for(ctx, s):
            if "syscalls" in parts:
                if s.kind == "plexus" and ctx.has_stats:
                    jobs.append(("syscalls", s, t, "counters"))
                jobs.append(("syscalls", s, t, "strace"))
    for s in servers:
        for t in threads_for(ctx, s):
            if "instructions" in parts:
                jobs.append(("instructions", s, t, None))
    for s in servers:
        for t in threads_for(ctx, s):
            if "memory" in parts:
                for echo in (False, True):
                    jobs.append(("memory", s, t, echo))
    return jobs


def fmt(x, digits=2):
    return f"{round(x, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00" for noise around zero


def md_row(cells, width):
    cells = list(cells) + [""] * (width - len(cells))
    return "| " + " | ".join(cells) + " |"


def target_mark(value, target):
    if target is None:
        return ""
    return f"≤ {target:g} {'✓' if round(value, 2) <= target else '✗'}"  # as shown


def report(ctx, results, meta, interrupted):
    args = ctx.args
    m = meta["machine"]
    lines = [f"# Plexus counts (timing-independent figures), {meta['date']}", ""]
    if interrupted:
        lines += ["**Interrupted: partial results.**", ""]
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Commit: `{meta['commit']}`" + (" (with uncommitted changes)" if meta["dirty"] else ""),
        f"- Machine: {m['nproc']} CPUs, {m['cpu']}; Linux {m['kernel']}; load average at start "
        f"{' '.join(map(str, m['loadavg_start']))}, at end "
        f"{' '.join(map(str, m.get('loadavg_end', [])))}",
        f"- Load: `plexus-client {' '.join(ctx.client_argv[1:])} --connections {CONNECTIONS} "
        f"--size {SIZE} --count N --threads 1`: strict ping-pong (each connection sends {SIZE} B, "
        "waits for all of it to come back, sends again), exactly N round trips per connection",
        "- Plexus `--threads T`: T sub-reactors plus the accepting main loop (0: the main loop "
        "serves everything); peers run `--threads 1`.",
        ""]

    def cell(key):
        r = results.get(key)
        if r is None:
            return None, ""
        if "error" in r:
            return None, "FAILED"
        return r, None

    names = [s for s in ctx.servers]
    if "syscalls" in ctx.parts:
        n = args.syscall_n
        lines += ["## Syscalls per echoed message", "",
                  "Runs of --count 1 and --count N round trips per connection, each against a "
                  "fresh server; (syscalls of the second − the first) / "
                  f"({CONNECTIONS}·(N − 1) "
                  "messages), so start-up and connection set-up cancel; "
                  f"{args.syscall_rounds} round(s), the round with the median total shown, "
                  "*spread*: lowest–highest total of the rounds. "
                  "*counters*: Plexus's own `--stats` line, no tracer "
                  f"(N = {args.syscall_n}); *strace*: `strace -f -c` around the server, all "
                  f"threads (N = {args.strace_n}). `other`: eventfd/timerfd for the counters; "
                  "futex, close, ... under strace. *events/wait*: from Plexus's counters. "
                  "A good epoll server does about 2.1: one read and one write per message, one "
                  "wait per 10 messages when all 10 connections are ready at once; how many are "
                  "ready at each wait depends on timing (strace slows the server, so the client "
                  "keeps all 10 ready: full batches).", "",
                  "| server | threads | method | wait | read | write | ctl | accept+other | "
                  "total | spread | events/wait | target |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
        for s in names:
            for t in threads_for(ctx, s):
                for method in ("counters", "strace"):
                    key = ("syscalls", s.name, t, method)
                    if key not in results:
                        continue
                    r, failed = cell(key)
                    if failed:
                        lines.append(md_row([s.name, str(t), method, "FAILED"], 12))
                        continue
                    p = r["per_message"]
                    target = target_mark(p["total"], SYSCALL_TARGETS.get(s.name))
                    epw = fmt(r["events_per_wait"], 1) if "events_per_wait" in r else ""
                    spread = f"{fmt(min(r['totals']))}–{fmt(max(r['totals']))}" \
                        if len(r["totals"]) > 1 else ""
                    lines.append(md_row([s.name, str(t), method, fmt(p["wait"]), fmt(p["read"]),
                                         fmt(p["write"]), fmt(p["ctl"]),
                                         fmt(p["accept"] + p["other"]), f"**{fmt(p['total'])}**",
                                         spread, epw, target], 12))
        checks = []
        for key, r in results.items():
            if key[0] == "syscalls" and key[3] == "strace" and "own_total" in r:
                p = r["per_message"]
                seen = p["wait"] + p["read"] + p["write"] + p["ctl"] + p["accept"]
                checks.append(f"{key[1]} t{key[2]}: own {fmt(r['own_total'])}, strace "
                              f"{fmt(seen)}")
        if checks:
            lines += ["", "Cross-check, the same strace runs: Plexus's own total against strace's "
                      "wait+read+write+ctl+accept per message: " + "; ".join(checks) + "."]
        lines += [""]

    if "instructions" in ctx.parts:
        n = args.callgrind_n
        lines += ["## User-space instructions per echoed message", "",
                  f"`valgrind --tool=callgrind` around the server, runs of --count {n} and "
                  f"{2 * n} per connection; (Ir of the second − the first) / {CONNECTIONS * n} "
                  "messages: the server's own code and its libraries, not the kernel. "
                  "Reference figures measured elsewhere: bare epoll loop 82, libev 151, libhv 392, "
                  "muduo 559.", "",
                  "| server | threads | instructions/msg | Ir (N) | Ir (2N) | target |",
                  "|---|---:|---:|---:|---:|---|"]
        for s in names:
            for t in threads_for(ctx, s):
                key = ("instructions", s.name, t, None)
                if key not in results:
                    continue
                r, failed = cell(key)
                if failed:
                    lines.append(md_row([s.name, str(t), "FAILED"], 6))
                    continue
                target = INSTRUCTION_TARGET if s.name.startswith("plexus-epoll") else None
                lines.append(f"| {s.name} | {t} | **{r['per_message']:.0f}** | {r['ir'][0]:,} | "
                             f"{r['ir'][1]:,} | {target_mark(r['per_message'], target)} |")
        lines += [""]

    if "memory" in ctx.parts:
        n = args.idle_connections
        lines += ["## Memory per idle connection", "",
                  f"VmRSS (and RssAnon) of the server after {n} connections are open and "
                  "accepted, minus before, over "
                  f"{n}. *idle*: connected, nothing sent; *after one echo*: each connection sent "
                  "16 B and got them back first (buffers allocated, then released). Kernel memory "
                  "(socket buffers, epoll items) is not in RSS.", "",
                  "| server | threads | idle: B/conn | idle: anon B/conn | after one echo: B/conn "
                  "| after one echo: anon B/conn | RSS before | target (idle / echo) |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for s in names:
            for t in threads_for(ctx, s):
                row, before, marks = [], "", []
                present = False
                for echo in (False, True):
                    key = ("memory", s.name, t, echo)
                    if key not in results:
                        row += ["", ""]
                        continue
                    present = True
                    r, failed = cell(key)
                    if failed:
                        row += ["FAILED", ""]
                        continue
                    row += [f"{r['per_connection']:.0f}", f"{r['anon_per_connection']:.0f}"]
                    before = before or f"{r['rss'][0] / 1048576:.1f} MiB"
                    good = round(r["per_connection"]) <= IDLE_BYTES_TARGET
                    marks.append("✓" if good else "✗")
                if not present:
                    continue
                target = f"≤ {IDLE_BYTES_TARGET} {' / '.join(marks)}" \
                    if s.kind == "plexus" and marks else ""
                lines.append(f"| {s.name} | {t} | " + " | ".join(row) + f" | {before} | {target} |")
        if ctx.memory_skipped:
            lines += ["", "Not measured: " + "; ".join(ctx.memory_skipped) + "."]
        lines += [""]

    def where(key):
        return (f"{key[0]} {key[1]} --threads {key[2]}" +
                (f" ({key[3]})" if key[0] == "syscalls" else
                 " (after one echo)" if key[0] == "memory" and key[3] else ""))
    problems = [f"- FAILED {where(key)}: {r['error']}" for key, r in results.items()
                if "error" in r]
    problems += [f"- {where(key)}: failed once, good on the retry; first try: {r['retried']}"
                 for key, r in results.items() if "retried" in r]
    if problems:
        lines += ["## Problems", ""] + problems + [""]
    lines += ["## Servers", ""]
    lines += [f"- `{s.name}`: `{ctx.run.show_argv(s.argv)}`" for s in ctx.servers] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return need
        except (ValueError, OSError):
            pass
    target = need if hard == resource.RLIM_INFINITY else min(max(soft, need), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(args, run, command):
    """bench/run --counts. `run` is bench/run's module (helpers, Server, Interrupted)."""
    ctx = run.Context()
    ctx.run, ctx.args = run, args
    ctx.ports = run.PortPicker()
    ctx.live = []
    ctx.parts = [p.strip() for p in args.counts_parts.split(",") if p.strip()]
    bad = [p for p in ctx.parts if p not in PARTS]
    if bad or not ctx.parts:
        sys.exit(f"bench/run: --counts-parts: expected some of {','.join(PARTS)}")
    try:
        ctx.plexus_threads = [int(x) for x in args.counts_threads.split(",") if x.strip()]
    except ValueError:
        sys.exit("bench/run: --counts-threads: expected integers like 0,1")
    if min(args.syscall_n, args.strace_n, args.syscall_rounds, args.callgrind_n,
           args.idle_connections) < 1:
        sys.exit("bench/run: --syscall-n, --strace-n, --syscall-rounds, --callgrind-n and "
                 "--idle-connections must be >= 1")

    missing = [tool for part, tool in (("syscalls", "strace"), ("instructions", "valgrind"))
               if part in ctx.parts and not shutil.which(tool)]
    if missing:
        sys.exit(f"bench/run --counts: {', '.join(missing)} not installed")
    help_text = run.plexus_client_bench_help()
    if not help_text or "--count" not in help_text:
        sys.exit("bench/run --counts: needs build/bin/plexus-client bench with --count")
    ctx.client_argv = [str(run.PLEXUS_CLIENT), "bench"] + \
        (["--verify"] if "--verify" in help_text else [])
    try:
        server_help = subprocess.run([str(run.PLEXUS_SERVER), "--help"], capture_output=True,
                                     text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        server_help = ""
    ctx.has_stats = "--stats" in server_help

    servers, skipped = run.select_servers(args)
    for s in skipped:
        run.log(f"bench/run --counts: skipping {s}")
    ctx.servers = servers
    ctx.memory_skipped = []
    nofile = raise_nofile(2 * args.idle_connections + 1024)
    if "memory" in ctx.parts and nofile < args.idle_connections + 256:
        run.log(f"bench/run --counts: open-file limit {nofile}: the memory table will fail")

    jobs = []
    for job in plan(ctx, servers):
        part, s = job[0], job[1]
        if part == "memory" and engine_of(s) == "select":
            note = f"{s.name} (the select engine takes no fd >= FD_SETSIZE)"
            if note not in ctx.memory_skipped:
                ctx.memory_skipped.append(note)
            continue
        jobs.append(job)

    short, full, dirty = run.git_commit()
    now = datetime.datetime.now()
    stem = f"counts-{now:%Y-%m-%d-%H%M%S}-{short}"
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"date": now.isoformat(timespec="seconds"), "command": command, "commit": short,
            "commit_full": full, "dirty": dirty, "machine": run.machine_info(),
            "plexus_stats": ctx.has_stats}
    run.log(f"bench/run --counts: {len(jobs)} measurements ({', '.join(ctx.parts)}); Plexus "
            f"syscalls by {'its --stats counters and ' if ctx.has_stats else ''}strace")

    def on_term(signum, frame):
        raise run.Interrupted()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    results = {}
    interrupted = False
    measure = {"syscalls": lambda s, t, v: syscalls(ctx, s, t, v),
               "instructions": lambda s, t, v: instructions(ctx, s, t),
               "memory": lambda s, t, v: memory(ctx, s, t, v)}
    try:
        for i, (part, s, t, variant) in enumerate(jobs, 1):
            key = (part, s.name, t, variant)
            began = time.monotonic()
            try:
                try:
                    results[key] = measure[part](s, t, variant)
                except (Failed, OSError) as e:
                    # Once more: a binary rebuilt under us, a port taken, a stray stall.
                    run.log(f"[{i}/{len(jobs)}] {part} {s.name} t={t}: {str(e)[:200]}; retrying")
                    time.sleep(2)
                    results[key] = measure[part](s, t, variant)
                    results[key]["retried"] = str(e)
                r = results[key]
                note = {"syscalls": lambda: f"{r['per_message']['total']:.2f} syscalls/msg",
                        "instructions": lambda: f"{r['per_message']:.0f} instructions/msg",
                        "memory": lambda: f"{r['per_connection']:.0f} B/connection"}[part]()
            except Failed as e:
                results[key] = {"error": str(e)}
                note = f"FAILED: {str(e)[:200]}"
            except OSError as e:
                results[key] = {"error": f"{type(e).__name__}: {e}"}
                note = f"FAILED: {e}"
            variant_text = "" if variant is None else \
                f" {variant}" if part == "syscalls" else " echo" if variant else " idle"
            run.log(f"[{i}/{len(jobs)}] {part} {s.name} t={t}{variant_text}: {note} "
                    f"({time.monotonic() - began:.1f} s)")
    except run.Interrupted:
        interrupted = True
        run.log("bench/run --counts: interrupted; stopping the children, writing partial results")
        for proc in list(ctx.live):
            run.kill_group(proc, signal.SIGKILL)
            proc.wait()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    meta["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    text = report(ctx, results, meta, interrupted)
    (out_dir / f"{stem}.md").write_text(text)
    raw = {"meta": meta,
           "results": [{"part": k[0], "server": k[1], "threads": k[2], "variant": k[3], **v}
                       for k, v in results.items()]}
    (out_dir / f"{stem}.json").write_text(json.dumps(raw, indent=1) + "\n")
    print()
    print(text)
    run.log(f"bench/run --counts: wrote {out_dir / (stem + '.md')} (and {stem}.json)")
    return 130 if interrupted else 0
