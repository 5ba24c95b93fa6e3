#!/usr/bin/env python3
"""bench/haproxy.py: throughput through HAProxy against direct to one backend (bench/haproxy.sh).

Network namespaces as deploy/netns-hosts.sh makes them: PREFIX-lb (10.77.0.1) holds HAProxy
(deploy/haproxy/haproxy.cfg) and the load clients, PREFIX-h1..h3 one plexus-server each (echo on
:7000, http on :8080). Each case is measured two ways in one run, from PREFIX-lb:

- direct:   the client to h1's plexus-server (10.77.0.11), one backend, no proxy;
- haproxy:  the client to HAProxy (10.77.0.1), which spreads the connections over h1..h3.

Echo: `plexus-client bench --verify` (closed loop, 50 connections, 16 B and 4 KiB); HTTP: `wrk -t1
-c50` on a fixed response (GET /hello, 13 B) and a 1 KiB static file. Every round runs every
(case, target) once in an order shuffled per round (fixed seed); the median of the rounds is
kept. CPU time of HAProxy and of the backends is read from /proc over each run.

Writes bench/results/haproxy-<date>-<commit>.md (copied to latest-haproxy.md) and .json. Needs
root, ip, haproxy and wrk. Python standard library only.
"""

import argparse
import datetime
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(ROOT / "deploy"))
import plexus_deploy as pd  # noqa: E402

HELLO = "Hello, World!"
CASES = {
    # name: (kind, parameter, description)
    "echo-16": ("echo", 16, "echo, 16 B messages"),
    "echo-4k": ("echo", 4096, "echo, 4 KiB messages"),
    "http-fixed": ("http", "/hello", "HTTP fixed response, 13 B text/plain"),
    "http-file": ("http", "/index.html", "HTTP static file, 1 KiB text/html"),
}
TARGETS = ("direct", "haproxy")


class Failed(Exception):
    pass


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads), or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(cmd, timeout):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def wrk_ms(text):
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise Failed(f"wrk: cannot read the time {text!r}")
    return float(m.group(1)) * units[m.group(2)]


def parse_wrk(text):
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    m2 = re.search(r"^Requests/sec:\s*([\d.]+)", text, re.M)
    if not m or not m2:
        raise Failed(f"wrk: no result in its output: {text.strip()[-300:]!r}")
    r = {"requests": int(m.group(1)), "per_sec": float(m2.group(1))}
    r["latency_ms"] = {f"p{p}": wrk_ms(v) for p, v in
                       re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.M)}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(m.group(1)) if m else 0
    r["errors"] = errors
    return r


class Bench:
    def __init__(self, args, net, work):
        self.args = args
        self.net = net
        self.work = work
        self.servers = {}
        self.haproxy = None
        self.stats = pd.Stats(work / "haproxy.sock")

    def start(self):
        www = self.work / "www"
        www.mkdir()
        (www / "index.html").write_bytes(bytes((i * 7 + 13) % 95 + 32 for i in range(1024)))
        self.index = (www / "index.html").read_bytes()
        server = self.args.bin_dir / "plexus-server"
        for b in self.net.backends():
            argv = [str(server), "--threads", str(self.args.threads), "--log-level", "warn",
                    "--admin-listen", f":{b.admin_port}", "--listen", f":{b.echo_port} echo",
                    "--listen", f":{b.http_port} http root={www} "
                                f"'return:/hello=200 {HELLO}'"]
            log = open(self.work / f"{b.name}.log", "ab")
            self.servers[b.name] = subprocess.Popen(self.net.exec_args(b.name, argv), stdout=log,
                                                    stderr=subprocess.STDOUT)
            log.close()
            for port in (b.echo_port, b.http_port, b.admin_port):
                pd.wait_until(lambda: self.servers[b.name].poll() is not None or
                              pd.connectable(b.addr, port), 10, f"{b.name} on {port}")
            if self.servers[b.name].poll() is not None:
                raise Failed(f"{b.name}'s plexus-server exited: {self.log_tail(b.name)}")
        cfg = self.work / "haproxy.cfg"
        cfg.write_text(pd.render_config(self.net.lb_addr, self.stats.path, self.net.backends()))
        log = open(self.work / "haproxy.log", "ab")
        self.haproxy = subprocess.Popen([self.args.haproxy, "-db", "-f", str(cfg)], stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        pd.wait_until(lambda: self.haproxy.poll() is not None or
                      os.path.exists(self.stats.path), 10, "HAProxy's stats socket")
        if self.haproxy.poll() is not None:
            raise Failed(f"haproxy exited: {self.log_tail('haproxy')}")
        names = {(be, b.name) for be in ("echo_back", "http_back") for b in self.net.backends()}
        self.stats.wait_all_up(names, 15)

    def log_tail(self, name):
        return (self.work / f"{name}.log").read_text(errors="replace").strip()[-300:]

    def stop(self):
        procs = list(self.servers.values()) + ([self.haproxy] if self.haproxy else [])
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def address(self, target, kind):
        if target == "direct":
            b = self.net.backends()[0]
            return b.addr, (b.echo_port if kind == "echo" else b.http_port)
        return self.net.lb_addr, (pd.LB_ECHO_PORT if kind == "echo" else pd.LB_HTTP_PORT)

    def check_http(self, addr, port, path):
        """One GET before the load: the response the load will count, byte for byte."""
        import http.client
        c = http.client.HTTPConnection(addr, port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        want = HELLO.encode() if path == "/hello" else self.index
        if r.status != 200 or body != want:
            raise Failed(f"GET http://{addr}:{port}{path}: status {r.status}, "
                         f"{len(body)} bytes, not the expected {len(want)}")

    def measure(self, case, target):
        kind, param, _ = CASES[case]
        addr, port = self.address(target, kind)
        a = self.args
        pids = {"haproxy": [self.haproxy.pid], "backends": [p.pid for p in self.servers.values()]}
        if kind == "echo":
            cmd = [str(a.bin_dir / "plexus-client"), "bench", "-s", addr, "-p", str(port),
                   "-c", str(a.connections), "--size", str(param), "-d", f"{a.duration:g}",
                   "--warmup", f"{a.warmup:g}", "--threads", "1", "--verify", "--json", "--quiet"]
        else:
            self.check_http(addr, port, param)
            url = f"http://{addr}:{port}{param}"
            if a.warmup > 0:
                run(["wrk", "-t1", f"-c{a.connections}", f"-d{max(1, round(a.warmup))}s", url],
                    a.warmup + 30)
            cmd = ["wrk", "-t1", f"-c{a.connections}", f"-d{max(1, round(a.duration))}s",
                   "--latency", url]
        before = {k: [cpu_seconds(p) for p in v] for k, v in pids.items()}
        t0 = time.monotonic()
        rc, out, err = run(cmd, a.duration + a.warmup + 60)
        wall = time.monotonic() - t0
        after = {k: [cpu_seconds(p) for p in v] for k, v in pids.items()}
        if rc != 0:
            raise Failed(f"{cmd[0]}: exit {rc}: {(out + err).strip()[-300:]}")
        if kind == "echo":
            j = json.loads(out)
            bad = {k: j[k] for k in ("connect_errors", "mismatches", "disconnects") if j.get(k)}
            if bad or not j["messages"]:
                raise Failed(f"plexus-client bench: {bad or 'no message'}")
            r = {"per_sec": j["msgs_per_sec"], "count": j["messages"],
                 "latency_ms": {"p50": j["latency_us"]["p50"] / 1e3,
                                "p99": j["latency_us"]["p99"] / 1e3}}
            measured = a.duration + a.warmup  # CPU is read over warm-up and measurement
        else:
            w = parse_wrk(out)
            if w["errors"] or not w["requests"]:
                raise Failed(f"wrk: {w['errors']} errors, {w['requests']} requests")
            r = {"per_sec": w["per_sec"], "count": w["requests"], "latency_ms": w["latency_ms"]}
            measured = wall
        # CPU share over the client's run (a fraction of one CPU; 2.0 = both CPUs busy).
        for k in pids:
            if target == "direct" and k == "haproxy":
                continue
            used = sum((b2 or 0) - (b1 or 0) for b1, b2 in zip(before[k], after[k]))
            r[f"cpu_{k}"] = round(used / measured, 2)
        r["command"] = " ".join(cmd)
        return r


def machine():
    cpus = os.cpu_count()
    model = "?"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = m.group(1).strip() if m else "?"
    except OSError:
        pass
    load = os.getloadavg()
    return cpus, model, load


def tool_version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def report(args, results, meta):
    """Markdown: per case, direct and through HAProxy side by side, and their ratio."""
    lines = [f"# plexus-server behind HAProxy against direct, {meta['date']}", "",
             f"- Command: `{meta['command']}`",
             f"- Commit: `{meta['commit']}`",
             f"- Plexus: `{args.bin_dir}/plexus-server` ({meta['plexus']}), `--threads "
             f"{args.threads}` per backend, build type Release",
             f"- HAProxy: {meta['haproxy']}, `deploy/haproxy/haproxy.cfg` (echo: mode tcp, "
             "leastconn; HTTP: mode http, roundrobin, keep-alive to the backends), default "
             "nbthread (one thread per CPU)",
             f"- Machine: {meta['cpus']} CPUs ({meta['model']}); load average at start "
             f"{meta['load_start']}, at end {meta['load_end']}",
             "- Network: namespaces joined by veth pairs and a bridge (deploy/netns-hosts.sh); "
             "the clients run in the load balancer's namespace, so both targets are one veth hop "
             "away from them (through HAProxy: two hops and a proxy)",
             f"- Load: {args.connections} connections; echo: `plexus-client bench --verify` "
             f"(closed loop, 1 client thread, every byte checked), HTTP: `wrk -t1` "
             f"({meta['wrk']}); {args.duration:g} s measured after {args.warmup:g} s of warm-up",
             f"- Rounds: {args.rounds}, median kept; (case, target) order shuffled per round "
             f"(seed {args.seed})",
             "", "**A 2-CPU machine.** The client, HAProxy and the three backends all share "
             f"the same {meta['cpus']} CPUs: what HAProxy spends is taken from the backends and "
             "the client, and three backends cannot serve more than one could. The ratio "
             "below is what the proxy costs on a saturated machine, not the capacity of three "
             "hosts; on real hosts each backend and HAProxy would have CPUs of their own. A "
             "ratio above 1 is possible all the same: direct, one backend process with one "
             "sub-reactor serves; through HAProxy, three, and HAProxy's own threads, can use "
             "CPU time that one process left idle.",
             ""]
    busy = float(meta["load_start"].split()[0])
    if busy > 0.5 * meta["cpus"]:
        lines += [f"**Busy machine:** load average {busy:.2f} on {meta['cpus']} CPUs at the "
                  "start; other work shared the CPUs, so expect noise (see the ± spreads) and "
                  "read the ratios as rough.", ""]
    lines += ["## Throughput", "",
             "Messages (echo) or requests (HTTP) per second, median of the rounds (±: spread "
             "max-min over the median); haproxy/direct: ratio of the medians.", "",
             "| case | direct (h1) | through HAProxy (h1-h3) | haproxy/direct |",
             "|---|---:|---:|---:|"]

    def med(case, target, key="per_sec"):
        vals = [r[key] for r in results[case][target]]
        return statistics.median(vals), (max(vals) - min(vals)) / statistics.median(vals)

    for case in results:
        d, ds = med(case, "direct")
        h, hs = med(case, "haproxy")
        lines.append(f"| {CASES[case][2]} | {d:,.0f} ±{ds:.0%} | {h:,.0f} ±{hs:.0%} | "
                     f"{h / d:.2f}× |")
    lines += ["", "## Latency", "", "p50 / p99 in ms (median of the rounds).", "",
              "| case | direct | through HAProxy |", "|---|---:|---:|"]
    for case in results:
        cell = []
        for t in TARGETS:
            p50 = statistics.median(r["latency_ms"].get("p50", 0) for r in results[case][t])
            p99 = statistics.median(r["latency_ms"].get("p99", 0) for r in results[case][t])
            cell.append(f"{p50:.3g} / {p99:.3g}")
        lines.append(f"| {CASES[case][2]} | {cell[0]} | {cell[1]} |")
    lines += ["", "## Where the CPU went", "",
              "CPU seconds per second of the run (1.0: one CPU busy), median of the rounds, read "
              "from /proc/PID/stat: the backends together, and HAProxy.", "",
              "| case | direct: backends | haproxy: backends | haproxy: HAProxy |",
              "|---|---:|---:|---:|"]
    for case in results:
        db = statistics.median(r["cpu_backends"] for r in results[case]["direct"])
        hb = statistics.median(r["cpu_backends"] for r in results[case]["haproxy"])
        hh = statistics.median(r["cpu_haproxy"] for r in results[case]["haproxy"])
        lines.append(f"| {CASES[case][2]} | {db:.2f} | {hb:.2f} | {hh:.2f} |")
    lines += ["", "## CPU per message", "",
              "CPU time per message or request in µs (the CPU shares above over the rate, median "
              "of the rounds): what serving one costs the machine, the figure that depends least "
              "on what else the CPUs were doing. Through HAProxy: the backends' and HAProxy's "
              "together; haproxy/direct above 1: the proxy's cost.", "",
              "| case | direct | through HAProxy (backends + HAProxy) | haproxy/direct |",
              "|---|---:|---:|---:|"]
    for case in results:
        d = statistics.median(r["cpu_backends"] / r["per_sec"] * 1e6
                              for r in results[case]["direct"])
        hb = [r["cpu_backends"] / r["per_sec"] * 1e6 for r in results[case]["haproxy"]]
        hh = [r["cpu_haproxy"] / r["per_sec"] * 1e6 for r in results[case]["haproxy"]]
        h = statistics.median(b + x for b, x in zip(hb, hh))
        lines.append(f"| {CASES[case][2]} | {d:.1f} | {h:.1f} ({statistics.median(hb):.1f} + "
                     f"{statistics.median(hh):.1f}) | {h / d:.2f}× |")
    lines += ["", "## Commands", ""]
    for case in results:
        for t in TARGETS:
            lines.append(f"- {case}, {t}: `{results[case][t][0]['command']}`")
    lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", type=Path, default=ROOT / "build-release" / "bin")
    p.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    p.add_argument("--threads", type=int, default=1, help="sub-reactors per backend (1)")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--command", default="bench/haproxy.sh", help=argparse.SUPPRESS)
    p.add_argument("--from-json", type=Path,
                   help="write the report again from the .json of an earlier run, measuring "
                        "nothing")
    args = p.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        for k, v in saved.get("args", {}).items():
            if k in ("threads", "connections", "duration", "warmup", "rounds", "seed"):
                setattr(args, k, v)
        args.bin_dir = Path(saved.get("args", {}).get("bin_dir", args.bin_dir))
        args.from_json.with_suffix(".md").write_text(
            report(args, saved["results"], saved["meta"]))
        print(f"bench/haproxy: wrote {args.from_json.with_suffix('.md')}")
        return 0
    cases = [c for c in args.cases.split(",") if c]
    if os.geteuid() != 0:
        sys.exit("bench/haproxy: needs root (network namespaces)")
    for tool in ("ip", "wrk", args.haproxy):
        if not shutil.which(tool):
            sys.exit(f"bench/haproxy: {tool} not found")
    if not all(c in CASES for c in cases):
        sys.exit(f"bench/haproxy: --cases: expected some of {','.join(CASES)}")

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    cpus, model, load_start = machine()
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {"date": now.strftime("%Y-%m-%dT%H:%M:%S"), "commit": commit, "cpus": cpus,
            "model": model, "load_start": " ".join(f"{x:.2f}" for x in load_start),
            "command": args.command,
            "plexus": tool_version([str(args.bin_dir / "plexus-server"), "--version"]),
            "haproxy": tool_version([args.haproxy, "-v"]),
            "wrk": tool_version(["wrk", "--version"])}
    net = pd.Network(prefix=f"plxb{os.getpid()}", hosts=3)
    work = Path(tempfile.mkdtemp(prefix="plexus-haproxy-bench-"))
    b = Bench(args, net, work)
    results = {c: {t: [] for t in TARGETS} for c in cases}
    try:
        net.up()
        net.enter("lb")
        b.start()
        rng = random.Random(args.seed)
        for rnd in range(1, args.rounds + 1):
            order = [(c, t) for c in cases for t in TARGETS]
            rng.shuffle(order)
            for case, target in order:
                r = b.measure(case, target)
                results[case][target].append(r)
                print(f"round {rnd}: {case:10} {target:8} {r['per_sec']:>12,.0f}/s", flush=True)
    except (Failed, pd.DeployError, subprocess.TimeoutExpired) as e:
        print(f"bench/haproxy: error: {e}", file=sys.stderr)
        return 1
    finally:
        b.stop()
        net.down()
        shutil.rmtree(work, ignore_errors=True)
    meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    stem = f"haproxy-{now.strftime('%Y-%m-%d-%H%M%S')}-{commit}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    md = report(args, results, meta)
    (args.out_dir / f"{stem}.md").write_text(md)
    (args.out_dir / "latest-haproxy.md").write_text(md)
    saved_args = {k: getattr(args, k) for k in ("threads", "connections", "duration", "warmup",
                                                 "rounds", "seed")}
    saved_args["bin_dir"] = str(args.bin_dir)
    (args.out_dir / f"{stem}.json").write_text(
        json.dumps({"meta": meta, "args": saved_args, "results": results}, indent=1) + "\n")
    print(md)
    print(f"bench/haproxy: wrote {args.out_dir / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
