"""bench/protocols.py: the protocol runs of the suite, `bench/run --http`, `--resp`, `--protocols`.

Plexus with a protocol plugin against the reference server of that protocol, on 127.0.0.1:

- HTTP: plexus-server --plugin http against nginx, both loaded by wrk (-t1, 100 connections,
  --latency): a fixed 13-byte text/plain response (`GET /hello`) and a small static file
  (`GET /index.html`, 1 KiB), with 1 and 2 server threads (nginx: worker_processes).
- RESP: plexus-server --plugin resp against redis-server, each loaded by redis-benchmark (50
  connections; PING, SET, GET, INCR, LPUSH, HSET), without and with pipelining (-P 16); then the
  memory each holds after 1,000,000 SETs of small keys and values.

As in the echo matrix, every server runs once per round in an order shuffled per round (fixed
seed), each run against a fresh server on a free port, and the median of the rounds is kept.
Before any load, each server is asked once by this script and its reply checked byte for byte (an
HTTP response with the expected status, type and body; the RESP replies redis-server gives), so
that no server is measured while answering something else.

bench/run owns the common options, the process helpers and the machine facts; it calls
add_options() while parsing, preset() for the defaults and main() when --http, --resp or
--protocols is given. Python standard library only.
"""

import csv
import datetime
import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Defaults of the protocol runs (bench/run applies them where the command line gave nothing).
DEFAULTS = dict(threads="1,2", duration=5.0, warmup=1.0, repeat=3)
QUICK = dict(threads="1", duration=2.0, warmup=1.0, repeat=3)
RESP_DEFAULTS = dict(resp_requests=100_000, resp_requests_pipelined=500_000,
                     rss_keys=1_000_000)
RESP_QUICK = dict(resp_requests=10_000, resp_requests_pipelined=50_000, rss_keys=100_000)

HELLO = b"Hello, World!"
HTTP_SCENARIOS = {
    # name: (path, expected Content-Type, description)
    "fixed": ("/hello", "text/plain", "fixed response, 13 B text/plain"),
    "file": ("/index.html", "text/html", "static file, 1 KiB text/html"),
}
FILE_SIZE = 1024

RESP_TESTS = ["ping_mbulk", "set", "get", "incr", "lpush", "hset"]
# The command each test sends (as redis-benchmark does, with its key names), for the check made
# before the load, and the reply redis-server 7 gives it on an empty server.
RESP_CHECKS = {
    "ping_mbulk": (["PING"], ("+", "PONG")),
    "set": (["SET", "key:__rand_int__", "xxx"], ("+", "OK")),
    "get": (["GET", "key:__rand_int__"], ("$", b"xxx")),
    "incr": (["INCR", "counter:__rand_int__"], (":", 1)),
    "lpush": (["LPUSH", "mylist", "xxx"], (":", 1)),
    "hset": (["HSET", "myhash", "element:__rand_int__", "xxx"], (":", 1)),
}


class Failed(Exception):
    pass


def add_options(p):
    g = p.add_argument_group("protocol runs (bench/run --http / --resp / --protocols; "
                             "see bench/README.md)")
    g.add_argument("--http", action="store_true",
                   help="instead of the echo matrix: plexus-server --plugin http against nginx, "
                        "loaded by wrk")
    g.add_argument("--resp", action="store_true",
                   help="instead of the echo matrix: plexus-server --plugin resp against "
                        "redis-server, loaded by redis-benchmark; RSS after many SETs")
    g.add_argument("--protocols", action="store_true", help="both --http and --resp")
    g.add_argument("--plexus-build", metavar="DIR",
                   help="take plexus-server and the plugins from DIR/bin and DIR/plugins (a "
                        "build directory elsewhere; never built by bench/run) instead of build/")
    g.add_argument("--http-connections", type=int, default=100, metavar="C",
                   help="wrk connections (default 100)")
    g.add_argument("--http-scenarios", default=",".join(HTTP_SCENARIOS), metavar="LIST",
                   help="fixed (GET /hello, 13 B) and/or file (GET /index.html, 1 KiB) "
                        "(default both)")
    g.add_argument("--resp-clients", type=int, default=50, metavar="C",
                   help="redis-benchmark connections (-c; default 50)")
    g.add_argument("--resp-pipelines", default="1,16", metavar="LIST",
                   help="redis-benchmark -P values; 1 is no pipelining (default 1,16)")
    g.add_argument("--resp-requests", type=int, metavar="N",
                   help="requests per test without pipelining (-n; default 100000, --quick "
                        "10000)")
    g.add_argument("--resp-requests-pipelined", type=int, metavar="N",
                   help="requests per test with -P > 1 (default 500000, --quick 50000)")
    g.add_argument("--rss-keys", type=int, metavar="N",
                   help="SETs of the memory table (-n N -r N -d 8 -P 16; default 1000000, "
                        "--quick 100000; 0: no memory table)")


def wanted(args):
    return args.http or args.resp or args.protocols


def preset(args):
    """The defaults bench/run applies to the shared options (threads, duration, ...)."""
    for key, value in (RESP_QUICK if args.quick else RESP_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return QUICK if args.quick else DEFAULTS


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class PServer:
    name: str
    kind: str            # "plexus" or "peer"
    argv: list           # with {port}, {threads}, {dir} (a fresh temp directory per run)
    setup: object = None  # callable(run_dir, port, threads): writes a config file before start

    def command(self, port, threads, run_dir):
        return [a.replace("{port}", str(port)).replace("{threads}", str(threads))
                .replace("{dir}", str(run_dir)) for a in self.argv]


@dataclass
class PRun:
    protocol: str
    server: str
    threads: int
    variant: str              # http: scenario; resp: "P1", "P16" or "memory"
    round: int
    ok: bool = False
    reason: str = ""
    command: list = field(default_factory=list)
    client_commands: list = field(default_factory=list)
    server_exit: object = None
    wall_s: float = 0.0
    result: dict = field(default_factory=dict)


def plexus_paths(ctx, plugin):
    base = Path(ctx.args.plexus_build).resolve() if ctx.args.plexus_build else ctx.run.BUILD
    return base / "bin" / "plexus-server", base / "plugins" / f"{plugin}.so"


def plexus_server(ctx, plugin, extra):
    """The Plexus server with `plugin`, or (None, why it is skipped)."""
    server, so = plexus_paths(ctx, plugin)
    for path, what in ((server, "plexus-server"), (so, f"the {plugin} plugin")):
        if not path.is_file():
            where = path if ctx.args.plexus_build else path.relative_to(ctx.run.ROOT)
            why = f"{what} is not built: {where} is missing"
            if path == so and not ctx.args.plexus_build and \
                    not (ctx.run.ROOT / "plugins" / plugin).is_dir():
                why += f"; this tree has no plugins/{plugin} yet"
            return None, f"plexus ({why})"
    argv = [str(server), "--port", "{port}", "--threads", "{threads}", "--plugin", str(so),
            "--log-level", "warn"] + extra
    return PServer("plexus", "plexus", argv), None


def plugin_target_exists(run, plugin):
    """Whether the main CMake project builds `plugin` (plugins/CMakeLists.txt adds it)."""
    if not (run.ROOT / "plugins" / plugin / "CMakeLists.txt").is_file():
        return False
    text = (run.ROOT / "plugins" / "CMakeLists.txt").read_text()
    return re.search(rf"add_subdirectory\(\s*{re.escape(plugin)}\s*\)", text) is not None


def build(ctx, plugins):
    """Configures build/ (Release) and builds plexus-server and the plugins it has sources of."""
    run = ctx.run

    def step(cmd):
        run.log("+ " + " ".join(shlex.quote(c) for c in cmd))
        if subprocess.run(["nice", "-n", "5"] + cmd, cwd=run.ROOT).returncode != 0:
            sys.exit(f"bench/run: build step failed: {' '.join(cmd)} (use --no-build to skip)")

    cmd = ["cmake", "-S", str(run.ROOT), "-B", str(run.BUILD), "-DCMAKE_BUILD_TYPE=Release"]
    if not (run.BUILD / "CMakeCache.txt").exists() and shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    step(cmd)
    targets = ["plexus-server"]
    for plugin in plugins:
        if plugin_target_exists(run, plugin):
            targets.append(plugin)
        else:
            run.log(f"bench/run: no plugins/{plugin} in this tree: nothing to build for it")
    step(["cmake", "--build", str(run.BUILD), "-j", str(ctx.args.jobs), "--target", *targets])


def build_type(ctx):
    base = Path(ctx.args.plexus_build).resolve() if ctx.args.plexus_build else ctx.run.BUILD
    try:
        for line in (base / "CMakeCache.txt").read_text().splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                return line.split("=", 1)[1] or "(none)"
    except OSError:
        pass
    return "unknown"


def tool_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout + out.stderr).strip().splitlines()
    if not text:
        return "unknown"
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright ...", "nginx version: nginx/1.22.1"
    return re.sub(r"\s+Copyright.*$", "", text[0].strip()).replace("nginx version: ", "")


# ---------------------------------------------------------------------------------------------
# Processes


def descendants(pid):
    """pid and every process below it (nginx: the master and its workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def tree_cpu_s(run, pid):
    """User + system CPU seconds of a process, its threads and its live descendants."""
    total = None
    for p in descendants(pid):
        cpu = run.process_cpu_s(p)
        if cpu is not None:
            total = (total or 0.0) + cpu
    return total


def proc_status_kib(pid, keys=("VmRSS", "VmHWM", "RssAnon")):
    """Those /proc/PID/status fields, in KiB, summed over the process and its descendants."""
    values = {}
    for p in descendants(pid):
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name in keys:
                values[name] = values.get(name, 0) + int(rest.split()[0])
    return values


class Instance:
    """One server on a free port in a temp directory of its own; stopped (SIGTERM) on exit."""

    def __init__(self, ctx, server, threads, run):
        self.ctx, self.server, self.threads, self.run_rec = ctx, server, threads, run
        self.port = ctx.ports.take()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{server.name}-", dir=ctx.tmp))
        self.proc = None
        self.out = None

    def __enter__(self):
        r = self.ctx.run
        if self.server.setup:
            self.server.setup(self.dir, self.port, self.threads)
        self.run_rec.command = self.server.command(self.port, self.threads, self.dir)
        self.out = tempfile.TemporaryFile()
        try:
            self.proc = r.start(self.run_rec.command, self.ctx.server_cpus, self.out)
        except OSError as e:
            self.out.close()
            raise Failed(f"cannot start: {e}") from None
        self.ctx.live.append(self.proc)
        problem = r.wait_accepting(self.proc, self.port)
        if problem:
            note = self.output_note()
            self.close()
            raise Failed(problem + note)
        return self

    def alive(self):
        return self.proc.poll() is None

    def output_note(self):
        text = ""
        if self.out and not self.out.closed:
            text = self.ctx.run.tail(self.out)
        # nginx writes its complaints to the error log of its directory.
        log_file = self.dir / "error.log"
        if log_file.is_file():
            text = (text + " " + log_file.read_text(errors="replace")[-300:]).strip()
        return f"; server output: {text[-400:]!r}" if text else ""

    def stop(self):
        self.run_rec.server_exit = self.ctx.run.stop(self.proc, self.ctx.args.stop_timeout)

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.ctx.run.kill_group(self.proc, signal.SIGKILL)
                self.proc.wait()
            if self.proc in self.ctx.live:
                self.ctx.live.remove(self.proc)
        if self.out and not self.out.closed:
            self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __exit__(self, *exc):
        self.close()
        return False


def client(ctx, argv, timeout):
    """Runs a load client pinned to the client CPUs; (exit status, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        def pin():
            if ctx.client_cpus:
                os.sched_setaffinity(0, ctx.client_cpus)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                preexec_fn=pin, start_new_session=True, cwd=ctx.run.ROOT)
        ctx.live.append(proc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            ctx.run.kill_group(proc, signal.SIGKILL)
            proc.wait()
            raise Failed(f"{Path(argv[0]).name} did not finish within {timeout:g} s")
        finally:
            if proc.poll() is None:  # interrupted
                ctx.run.kill_group(proc, signal.SIGKILL)
                proc.wait()
            if proc in ctx.live:
                ctx.live.remove(proc)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))


def one_run(ctx, record, server, body):
    """Runs body(instance) against a fresh server; fills record.ok/reason/server_exit."""
    began = time.monotonic()
    try:
        with Instance(ctx, server, record.threads, record) as inst:
            try:
                body(inst)
                if not inst.alive():
                    raise Failed(f"server died during the run (status {inst.proc.returncode})")
                inst.stop()
                if record.server_exit != 0:
                    raise Failed(f"server exit status after SIGTERM: {record.server_exit}")
                record.ok = True
            except (Failed, OSError) as e:  # OSError: a socket of the checks
                record.reason = str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}"
                if inst.alive():
                    inst.stop()
                record.reason += inst.output_note()
    except Failed as e:
        record.reason = str(e)
    except OSError as e:
        record.reason = f"{type(e).__name__}: {e}"
    record.wall_s = round(time.monotonic() - began, 3)


# ---------------------------------------------------------------------------------------------
# HTTP


def http_get(port, path, timeout=5.0):
    """One GET over a fresh connection: (status, headers (lower-case names), body, bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise Failed(f"GET {path}: connection closed after {len(data)} bytes: {data!r}")
            data += chunk
            if len(data) > 65536:
                raise Failed(f"GET {path}: no end of the header in 64 KiB")
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.[01] (\d{3})(?: .*)?", lines[0])
        if not m:
            raise Failed(f"GET {path}: bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise Failed(f"GET {path}: bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers or not headers["content-length"].isdigit():
            raise Failed(f"GET {path}: no Content-Length (headers {headers})")
        length = int(headers["content-length"])
        if length > 1 << 20:
            raise Failed(f"GET {path}: Content-Length {length} is more than expected")
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise Failed(f"GET {path}: connection closed {len(body)} bytes into the body")
            body += chunk
        if len(body) > length:
            raise Failed(f"GET {path}: {len(body) - length} bytes after the body")
        return int(m.group(1)), headers, body, len(head) + 4 + length


def http_check(port, scenario, file_bytes):
    path, ctype, _ = HTTP_SCENARIOS[scenario]
    expected = HELLO if scenario == "fixed" else file_bytes
    status, headers, body, size = http_get(port, path)
    problems = []
    if status != 200:
        problems.append(f"status {status}")
    if headers.get("content-type", "").split(";")[0].strip() != ctype:
        problems.append(f"Content-Type {headers.get('content-type')!r}, expected {ctype}")
    if body != expected:
        problems.append(f"body {body[:60]!r}... ({len(body)} B), expected {len(expected)} B")
    if problems:
        raise Failed(f"GET {path}: " + ", ".join(problems))
    return {"response_bytes": size, "header_bytes": size - len(body),
            "headers": sorted(headers)}


def file_body():
    """The static file: 1 KiB of HTML, the same bytes on every run."""
    head = b"<!DOCTYPE html>\n<html><head><title>Plexus bench</title></head><body>\n"
    tail = b"</body></html>\n"
    line = b"<p>The quick brown fox jumps over the lazy dog.</p>\n"
    body = head
    while len(body) + len(line) + len(tail) + 8 <= FILE_SIZE:
        body += line
    body += b"<!--" + b"-" * (FILE_SIZE - len(body) - len(tail) - 8) + b"-->\n"
    body += tail
    assert len(body) == FILE_SIZE, len(body)
    return body


def nginx_config(run_dir, port, threads, www):
    d = str(run_dir)
    return f"""# Generated by bench/run --http for one run.
worker_processes {threads};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    sendfile on;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ text/html html; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location = /hello {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
    }}
}}
"""


def http_servers(ctx, www):
    servers, skipped = [], []
    s, why = plexus_server(ctx, "http", [
        "--plugin-arg", "return:/hello=200 " + HELLO.decode(), "--plugin-arg", f"root={www}"])
    if s:
        servers.append(s)
    else:
        skipped.append(why)
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                      else None)
    if nginx:
        def setup(run_dir, port, threads):
            (run_dir / "nginx.conf").write_text(nginx_config(run_dir, port, threads, www))
        servers.append(PServer("nginx", "peer",
                               [nginx, "-p", "{dir}", "-c", "{dir}/nginx.conf",
                                "-e", "{dir}/error.log"], setup))
    else:
        skipped.append("nginx (not installed: apt-get install nginx-light)")
    return servers, skipped


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise Failed(f"wrk: cannot read the time {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(text):
    """requests, requests/s, latency percentiles (ms), errors from wrk's --latency output."""
    r = {}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", text, re.M)
    m2 = re.search(r"^Requests/sec:\s*([\d.]+)", text, re.M)
    if not m or not m2:
        raise Failed(f"wrk: no result in its output: {text.strip()[-300:]!r}")
    r["requests"] = int(m.group(1))
    r["seconds"] = wrk_ms(m.group(2)) / 1e3
    r["requests_per_sec"] = float(m2.group(1))
    r["latency_ms"] = {f"p{p}": wrk_ms(v) for p, v in
                       re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M)}
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        r["latency_ms"]["mean"] = wrk_ms(m.group(1))
        r["latency_ms"]["max"] = wrk_ms(m.group(3))
    errors = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups())
                  if int(v)}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m and int(m.group(1)):
        errors["non-2xx"] = int(m.group(1))
    r["errors"] = errors
    return r


def http_run(ctx, record, server, file_bytes):
    args = ctx.args
    path = HTTP_SCENARIOS[record.variant][0]

    def body(inst):
        url = f"http://127.0.0.1:{inst.port}{path}"
        record.result.update(http_check(inst.port, record.variant, file_bytes))
        # One wrk thread (bench/scale gives it more: its client has several CPUs).
        base = ["wrk", f"-t{getattr(args, 'wrk_threads', 1)}", f"-c{args.http_connections}"]
        if args.warmup > 0:
            warm = base + [f"-d{args.warmup:g}s", url]
            record.client_commands.append(warm)
            rc, out, err = client(ctx, warm, args.warmup + 30)
            if rc != 0:
                raise Failed(f"wrk warm-up: exit {rc}: {(out + err).strip()[-300:]!r}")
        cmd = base + [f"-d{args.duration:g}s", "--latency", url]
        record.client_commands.append(cmd)
        cpu_start = tree_cpu_s(ctx.run, inst.proc.pid)
        rc, out, err = client(ctx, cmd, args.duration + 60)
        cpu_end = tree_cpu_s(ctx.run, inst.proc.pid)
        if rc != 0:
            raise Failed(f"wrk: exit {rc}: {(out + err).strip()[-300:]!r}")
        result = parse_wrk(out)
        record.result.update(result)
        if result["errors"]:
            raise Failed("wrk reported " + ", ".join(f"{v} {k} errors" if k != "non-2xx" else
                                                    f"{v} non-2xx/3xx responses"
                                                    for k, v in result["errors"].items()))
        if not result["requests"]:
            raise Failed("no request was answered")
        if cpu_start is not None and cpu_end is not None:
            record.result["cpu_us_per_request"] = round(
                (cpu_end - cpu_start) * 1e6 / result["requests"], 3)
        # The response once more after the load: still the same bytes.
        http_check(inst.port, record.variant, file_bytes)

    one_run(ctx, record, server, body)


def http_phase(ctx, st):
    """Fills st: servers, skipped, runs (as they are made), missing (a tool is missing)."""
    args = ctx.args
    scenarios = [s.strip() for s in args.http_scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in HTTP_SCENARIOS]
    if bad or not scenarios:
        sys.exit(f"bench/run: --http-scenarios: expected some of {','.join(HTTP_SCENARIOS)}")
    www = Path(ctx.tmp) / "www"
    www.mkdir()
    file_bytes = file_body()
    (www / "index.html").write_bytes(file_bytes)
    # A static file as a site has them: written a while ago, not seconds before the run (the http
    # plugin keeps a small file in memory only once it has stopped changing).
    hour_ago = time.time() - 3600
    os.utime(www / "index.html", (hour_ago, hour_ago))
    os.chmod(ctx.tmp, 0o755)  # nginx's workers may run as nobody; they read the root
    servers, skipped = http_servers(ctx, www)
    st.update(servers=servers, skipped=skipped)
    if not shutil.which("wrk"):
        st["missing"] = "wrk is not installed (apt-get install wrk)"
        return
    jobs = []
    for t in args.threads:
        for scenario in scenarios:
            for rnd in range(args.repeat):
                order = list(servers)
                random.Random(f"{args.seed}/http/{t}/{scenario}/{rnd}").shuffle(order)
                jobs += [(s, t, scenario, rnd) for s in order]
    est = len(jobs) * (args.warmup + args.duration + 0.8)
    ctx.run.log(f"bench/run --http: {', '.join(s.name for s in servers) or 'no server'}; "
                f"{len(jobs)} runs, about {est / 60:.1f} min")
    for s in skipped:
        ctx.run.log(f"bench/run --http: skipping {s}")
    ctx.meta["http"] = {"scenarios": scenarios, "connections": args.http_connections,
                        "file_bytes": FILE_SIZE,
                        "versions": {"wrk": tool_version(["wrk", "--version"]),
                                     "nginx": tool_version(["nginx", "-v"])}}
    runs = st["runs"]
    for i, (s, t, scenario, rnd) in enumerate(jobs, 1):
        rec = PRun("http", s.name, t, scenario, rnd)
        runs.append(rec)
        http_run(ctx, rec, s, file_bytes)
        if rec.ok:
            lat = rec.result["latency_ms"]
            cpu = rec.result.get("cpu_us_per_request")
            note = (f"{rec.result['requests_per_sec']:,.0f} req/s, p50 {lat.get('p50', 0):.2f} "
                    f"ms, p99 {lat.get('p99', 0):.2f} ms"
                    + (f", {cpu:.1f} µs CPU/req" if cpu is not None else ""))
        else:
            note = f"FAILED: {rec.reason[:200]}"
        ctx.run.log(f"[{i}/{len(jobs)}] http t={t} {scenario} r={rnd + 1} {s.name}: {note}")


# ---------------------------------------------------------------------------------------------
# RESP


def resp_encode(words):
    out = [f"*{len(words)}\r\n".encode()]
    for w in words:
        b = w if isinstance(w, bytes) else str(w).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def resp_read(f):
    """One reply as (type character, value); arrays as ("*", [replies])."""
    try:
        return resp_read_one(f)
    except ValueError:
        raise Failed("RESP: a length or an integer reply is not a number") from None


def resp_read_one(f):
    line = f.readline(65538)
    if not line.endswith(b"\r\n"):
        raise Failed(f"RESP: incomplete reply line {line[:80]!r}")
    kind, rest = chr(line[0]), line[1:-2]
    if kind in "+-":
        return kind, rest.decode(errors="replace")
    if kind == ":":
        return kind, int(rest)
    if kind == "$":
        n = int(rest)
        if n < 0:
            return kind, None
        if n > 1 << 20:
            raise Failed(f"RESP: bulk of {n} bytes is more than expected")
        data = f.read(n + 2)
        if len(data) != n + 2 or not data.endswith(b"\r\n"):
            raise Failed("RESP: truncated bulk reply")
        return kind, data[:-2]
    if kind == "*":
        n = int(rest)
        if n > 1 << 16:
            raise Failed(f"RESP: array of {n} is more than expected")
        return kind, [resp_read_one(f) for _ in range(max(n, 0))]
    raise Failed(f"RESP: unexpected reply {line[:80]!r}")


def resp_call(port, words_list, timeout=10.0):
    """Sends the commands on one connection and returns their replies in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(resp_encode(w) for w in words_list))
        with s.makefile("rb") as f:
            return [resp_read(f) for _ in words_list]


def resp_check(port):
    """{test: None if the reply is redis-server's, else what came instead}."""
    tests = list(RESP_CHECKS)
    replies = resp_call(port, [RESP_CHECKS[t][0] for t in tests])
    out = {}
    for t, got in zip(tests, replies):
        want = RESP_CHECKS[t][1]
        out[t] = None if got == want else f"{' '.join(RESP_CHECKS[t][0])} -> {got!r}"
    # The check's keys go again, so that the load starts from an empty server.
    resp_call(port, [["DEL", "key:__rand_int__", "counter:__rand_int__", "mylist", "myhash"]])
    return out


def parse_benchmark_csv(text):
    """{test (lower case): {rps, p50_ms, p99_ms, ...}} from redis-benchmark --csv."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows or rows[0][:2] != ["test", "rps"]:
        raise Failed(f"redis-benchmark: no CSV in its output: {text.strip()[-300:]!r}")
    header = rows[0]
    out = {}
    for r in rows[1:]:
        values = dict(zip(header, r))
        try:
            out[values["test"].lower()] = {
                "rps": float(values["rps"]),
                "avg_ms": float(values.get("avg_latency_ms", "nan")),
                "p50_ms": float(values.get("p50_latency_ms", "nan")),
                "p99_ms": float(values.get("p99_latency_ms", "nan"))}
        except (KeyError, ValueError):
            raise Failed(f"redis-benchmark: unreadable CSV row {r!r}") from None
    return out


def resp_servers(ctx):
    servers, skipped = [], []
    s, why = plexus_server(ctx, "resp", [])
    if s:
        servers.append(s)
    else:
        skipped.append(why)
    redis = shutil.which("redis-server")
    if redis:
        servers.append(PServer("redis-server", "peer", [
            redis, "--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", "{dir}", "--loglevel", "warning"]))
    else:
        skipped.append("redis-server (not installed: apt-get install redis-server)")
    return servers, skipped


def resp_run(ctx, record, server, pipeline):
    args = ctx.args
    n = args.resp_requests if pipeline == 1 else args.resp_requests_pipelined

    def body(inst):
        checks = resp_check(inst.port)
        record.result["check"] = {t: v for t, v in checks.items() if v}
        tests = {}
        # One redis-benchmark per test, so that a command the server refuses (redis-benchmark
        # stops at the first error reply) costs only its own row.
        for test in RESP_TESTS:
            if checks[test]:
                tests[test] = {"error": f"unexpected reply: {checks[test]}"}
                continue
            cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(inst.port),
                   "-c", str(args.resp_clients), "-n", str(n), "-t", test, "--csv"] + (
                       ["-P", str(pipeline)] if pipeline > 1 else [])
            record.client_commands.append(cmd)
            cpu_start = tree_cpu_s(ctx.run, inst.proc.pid)
            rc, out, err = client(ctx, cmd, 120 + n / 2000)
            cpu_end = tree_cpu_s(ctx.run, inst.proc.pid)
            if rc != 0 or not inst.alive():
                tests[test] = {"error": f"redis-benchmark exit {rc}: "
                                        f"{(out + err).strip()[-300:]!r}"}
                if not inst.alive():
                    break
                continue
            try:
                got = parse_benchmark_csv(out).get(test)
            except Failed as e:
                tests[test] = {"error": str(e)}
                continue
            if got and cpu_start is not None and cpu_end is not None:
                got["cpu_us_per_request"] = round((cpu_end - cpu_start) * 1e6 / n, 3)
            tests[test] = got if got else {"error": f"no row for {test}: {out.strip()[-200:]!r}"}
        record.result["tests"] = tests
        failed = [t for t, v in tests.items() if "error" in v]
        if len(failed) == len(RESP_TESTS):
            raise Failed(f"every test failed; {failed[0]}: {tests[failed[0]]['error']}")

    one_run(ctx, record, server, body)


def resp_memory_run(ctx, record, server):
    args = ctx.args

    def body(inst):
        # The replies first (SET must store what GET gives back); the check's keys are deleted.
        wrong = {t: v for t, v in resp_check(inst.port).items() if v and t in ("set", "get")}
        if wrong:
            raise Failed("; ".join(f"unexpected reply: {v}" for v in wrong.values()))
        empty = proc_status_kib(inst.proc.pid)
        cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(inst.port),
               "-c", str(args.resp_clients), "-n", str(args.rss_keys), "-r", str(args.rss_keys),
               "-d", "8", "-P", "16", "-t", "set", "--csv"]
        record.client_commands.append(cmd)
        rc, out, err = client(ctx, cmd, 120 + args.rss_keys / 2000)
        if rc != 0:
            raise Failed(f"redis-benchmark exit {rc}: {(out + err).strip()[-300:]!r}")
        kind, keys = resp_call(inst.port, [["DBSIZE"]])[0]
        loaded = proc_status_kib(inst.proc.pid)
        if "VmRSS" not in empty or "VmRSS" not in loaded:
            raise Failed("no VmRSS in /proc/PID/status")
        if kind == ":":
            if not 0 < keys <= args.rss_keys:
                raise Failed(f"DBSIZE {keys} after {args.rss_keys} SETs")
            record.result["keys"] = keys
            record.result["keys_counted"] = "DBSIZE"
        else:
            # -r R picks each key uniformly out of R: R (1 - (1 - 1/R)^n) distinct keys expected.
            r = args.rss_keys
            record.result["keys"] = round(r * (1 - (1 - 1 / r) ** args.rss_keys))
            record.result["keys_counted"] = f"expected (DBSIZE -> {keys!r})"
        record.result["rss_empty_kib"] = empty["VmRSS"]
        record.result["rss_kib"] = loaded["VmRSS"]
        record.result["hwm_kib"] = loaded.get("VmHWM")
        record.result["rss_anon_kib"] = loaded.get("RssAnon")
        if record.result["keys"] > 0:
            record.result["bytes_per_key"] = round(
                (loaded["VmRSS"] - empty["VmRSS"]) * 1024 / record.result["keys"], 1)

    one_run(ctx, record, server, body)


def resp_phase(ctx, st):
    """Fills st as http_phase does."""
    args = ctx.args
    try:
        pipelines = sorted({int(x) for x in args.resp_pipelines.split(",") if x.strip()})
    except ValueError:
        pipelines = []
    if not pipelines or min(pipelines) < 1:
        sys.exit("bench/run: --resp-pipelines: expected positive integers like 1,16")
    servers, skipped = resp_servers(ctx)
    st.update(servers=servers, skipped=skipped)
    if not shutil.which("redis-benchmark"):
        st["missing"] = "redis-benchmark is not installed (apt-get install redis-tools)"
        return
    jobs = []
    for p in pipelines:
        for rnd in range(args.repeat):
            order = list(servers)
            random.Random(f"{args.seed}/resp/{p}/{rnd}").shuffle(order)
            jobs += [(s, f"P{p}", rnd) for s in order]
    if args.rss_keys > 0:
        for rnd in range(args.repeat):
            order = list(servers)
            random.Random(f"{args.seed}/resp/memory/{rnd}").shuffle(order)
            jobs += [(s, "memory", rnd) for s in order]
    ctx.run.log(f"bench/run --resp: {', '.join(s.name for s in servers) or 'no server'}; "
                f"{len(jobs)} runs")
    for s in skipped:
        ctx.run.log(f"bench/run --resp: skipping {s}")
    ctx.meta["resp"] = {"pipelines": pipelines, "clients": args.resp_clients,
                        "requests": args.resp_requests,
                        "requests_pipelined": args.resp_requests_pipelined,
                        "rss_keys": args.rss_keys, "tests": RESP_TESTS,
                        "versions": {"redis-server": tool_version(["redis-server", "--version"]),
                                     "redis-benchmark": tool_version(["redis-benchmark",
                                                                      "--version"])}}
    runs = st["runs"]
    for i, (s, variant, rnd) in enumerate(jobs, 1):
        rec = PRun("resp", s.name, 1, variant, rnd)
        runs.append(rec)
        if variant == "memory":
            resp_memory_run(ctx, rec, s)
            note = (f"{rec.result['rss_kib'] / 1024:.1f} MiB RSS, {rec.result['keys']} keys, "
                    f"{rec.result.get('bytes_per_key', 0):.0f} B/key") if rec.ok else ""
        else:
            resp_run(ctx, rec, s, int(variant[1:]))
            tests = rec.result.get("tests", {})
            note = ", ".join(f"{t} {v['rps']:,.0f}" if "rps" in v else f"{t} FAILED"
                             for t, v in tests.items())
        if not rec.ok:
            note = f"FAILED: {rec.reason[:200]}"
        ctx.run.log(f"[{i}/{len(jobs)}] resp {variant} r={rnd + 1} {s.name}: {note}")


# ---------------------------------------------------------------------------------------------
# Report


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [v for v in values if v is not None]
    if len(values) < 2 or not statistics.median(values):
        return None
    return (max(values) - min(values)) / statistics.median(values)


def fmt_rate(x, sp=None):
    if x is None:
        return "FAILED"
    return f"{x:,.0f}" + (f" ±{sp * 100:.0f}%" if sp is not None else "")


def fmt_ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else ""


def fmt_ms(x):
    if x is None:
        return ""
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def gnuplot_bars(ctx, stem, name, title, ylabel, series, rows, logy=False):
    """A clustered bar chart: rows of (label, [value per series or None]); (title, file)."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot or not rows or all(v is None for _, vals in rows for v in vals):
        return None
    terminal = "pngcairo size 960,600 font ',10' noenhanced"
    if subprocess.run([gnuplot, "-e", "set terminal pngcairo"], capture_output=True).returncode:
        terminal = "png size 960,600 noenhanced"
    file_name = f"{stem}-{name}.png"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.dat"
        data.write_text("label " + " ".join(f'"{s}"' for s in series) + "\n" + "".join(
            f'"{label}" ' + " ".join("NaN" if v is None else f"{v:.6g}" for v in vals) + "\n"
            for label, vals in rows))
        script = (f"set terminal {terminal}\nset output '{ctx.out_dir / file_name}'\n"
                  f"set title '{title}'\nset ylabel '{ylabel}'\n"
                  + ("set logscale y\n" if logy else "set yrange [0:*]\n") +
                  "set datafile missing 'NaN'\nset style data histograms\n"
                  "set style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
                  "set key top right\nset grid ytics\nset xtics rotate by -20\n"
                  f"plot for [i=2:{len(series) + 1}] '{data}' using i:xtic(1) "
                  "title columnheader(i)\n")
        path = Path(tmp) / "chart.gp"
        path.write_text(script)
        done = subprocess.run([gnuplot, str(path)], capture_output=True, text=True)
    if done.returncode != 0 or not (ctx.out_dir / file_name).exists():
        ctx.run.log(f"bench/run: gnuplot failed for {file_name}: {done.stderr.strip()[-300:]}")
        return None
    return title, file_name


def header_lines(ctx, title, skipped, extra):
    m, meta, args = ctx.meta["machine"], ctx.meta, ctx.args
    lines = [f"# {title}, {meta['date']}", ""]
    if args.quick:
        lines += ["**Smoke run (`--quick`): short runs to check that everything works; not a "
                  "measurement.**", ""]
    if ctx.interrupted:
        lines += ["**Interrupted: partial results.**", ""]
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Commit: `{meta['commit']}`" + (" (with uncommitted changes)" if meta["dirty"] else ""),
        f"- Plexus: `{meta['plexus_server']}` ({meta['plexus_version']}), build type "
        f"{meta['build_type']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpus_allowed']} allowed), {m['cpu']}; Linux "
        f"{m['kernel']}; {m['memory']} memory; load average at start "
        f"{' '.join(map(str, m['loadavg_start']))}, at end "
        f"{' '.join(map(str, m.get('loadavg_end', [])))}",
        f"- CPUs: {meta['pinning']}",
        *extra,
        f"- Rounds: {args.repeat}, median kept; server order shuffled per round (seed "
        f"{args.seed}); each run against a fresh server on a free port",
        ""]
    if m["loadavg_start"][0] >= max(1, m["cpus_allowed"]) / 2:
        lines += [f"**Busy machine:** load average {m['loadavg_start'][0]} on "
                  f"{m['cpus_allowed']} CPUs at the start; other work shared the CPUs, so expect "
                  "noise (see the ± spreads).", ""]
    if meta["build_type"] not in ("Release", "RelWithDebInfo"):
        lines += [f"**Plexus build type {meta['build_type']}**, not an optimized build: its "
                  "figures are not comparable.", ""]
    if skipped:
        lines += ["Skipped: " + "; ".join(skipped), ""]
    return lines


def problem_lines(runs):
    out = []
    for r in runs:
        where = f"{r.server}, {r.variant}, {r.threads} thread(s), round {r.round + 1}"
        if not r.ok:
            out.append(f"- FAILED {where}: {r.reason}")
            continue
        for test, v in r.result.get("tests", {}).items():
            if "error" in v:
                out.append(f"- {where}: {test}: {v['error']}")
    return (["## Problems", ""] + out + [""]) if out else []


def server_lines(ctx, servers):
    """The commands, with {port}, {threads}, {dir} (the run's temp directory) and TMP (the
    temp directory of the whole bench/run) for what changes from run to run."""
    lines = ["## Servers", ""]
    for s in servers:
        words = [a if re.fullmatch(r"[\w{}@%+=:,./-]+", a) else shlex.quote(a) for a in s.argv]
        text = " ".join(words).replace(str(ctx.run.ROOT) + "/", "").replace(ctx.tmp, "TMP")
        lines.append(f"- `{s.name}`: `{text}`")
    return lines + [""]


def write_files(ctx, stem, latest, text, raw):
    (ctx.out_dir / f"{stem}.md").write_text(text)
    shutil.copyfile(ctx.out_dir / f"{stem}.md", ctx.out_dir / latest)
    (ctx.out_dir / f"{stem}.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")


def http_report(ctx, runs, servers, skipped, stem):
    args = ctx.args
    scenarios = ctx.meta.get("http", {}).get("scenarios", [])
    names = [s.name for s in servers]
    cells = {}
    for r in runs:
        cells.setdefault((r.variant, r.threads, r.server), []).append(r)
    summary = {}
    for key, rs in cells.items():
        good = [r for r in rs if r.ok]
        rps = [r.result["requests_per_sec"] for r in good]
        summary[key] = {
            "runs": len(rs), "good": len(good),
            "requests_per_sec": median_or_none(rps), "spread": spread(rps),
            "cpu_us_per_request": median_or_none(
                [r.result.get("cpu_us_per_request") for r in good]),
            "latency_ms": {k: median_or_none([r.result["latency_ms"].get(k) for r in good])
                           for k in ("p50", "p75", "p90", "p99", "mean", "max")},
            "response_bytes": median_or_none([r.result.get("response_bytes") for r in rs])}
    keys = [(sc, t) for sc in scenarios for t in args.threads]
    versions = ctx.meta.get("http", {}).get("versions", {})
    warm = (f"after an unmeasured `wrk -t1 -c{args.http_connections} -d{args.warmup:g}s` "
            "warm-up" if args.warmup > 0 else "no warm-up")
    extra = [f"- Client: `wrk -t1 -c{args.http_connections} -d{args.duration:g}s --latency` "
             f"({versions.get('wrk', '?')}), {warm}; keep-alive connections",
             f"- nginx: {versions.get('nginx', '?')}, `worker_processes` = threads, master "
             "process on, access log off, keepalive_requests 1000000, sendfile on (config "
             "below)",
             "- Plexus: `--threads T` is T sub-reactors plus the main (accepting) loop"]
    lines = header_lines(ctx, "Plexus HTTP against nginx", skipped, extra)

    def label(sc, t):
        return f"{HTTP_SCENARIOS[sc][2]}, {t} thread{'s' if t != 1 else ''}"

    ratio_head = "plexus/nginx" if {"plexus", "nginx"} <= set(names) else None
    lines += ["## Requests per second", "",
              "Median of the rounds (±: spread max-min over the median); plexus/nginx: ratio of "
              "the medians (above 1: Plexus served more).", "",
              "| case | " + " | ".join(names) + (f" | {ratio_head}" if ratio_head else "") + " |",
              "|---|" + "---:|" * (len(names) + (1 if ratio_head else 0))]
    for sc, t in keys:
        vals = [summary.get((sc, t, n), {}) for n in names]
        row = [fmt_rate(v.get("requests_per_sec"), v.get("spread")) if v else "" for v in vals]
        if ratio_head:
            row.append(fmt_ratio(summary.get((sc, t, "plexus"), {}).get("requests_per_sec"),
                                 summary.get((sc, t, "nginx"), {}).get("requests_per_sec")))
        lines.append(f"| {label(sc, t)} | " + " | ".join(row) + " |")
    lines += ["", "## Latency", "",
              f"wrk's latency percentiles, p50 / p99 in ms (median of the rounds), "
              f"{args.http_connections} connections each with one request in flight.", "",
              "| case | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for sc, t in keys:
        row = []
        for n in names:
            lat = summary.get((sc, t, n), {}).get("latency_ms", {})
            row.append(f"{fmt_ms(lat.get('p50'))} / {fmt_ms(lat.get('p99'))}"
                       if lat.get("p50") is not None else "")
        lines.append(f"| {label(sc, t)} | " + " | ".join(row) + " |")
    lines += ["", "## Server CPU per request", "",
              "User + system CPU of the server (Plexus: all its threads; nginx: master and "
              "workers) from /proc/PID/stat over the measured wrk run, over the requests wrk "
              "counted, in µs (median of the rounds); plexus/nginx below 1: Plexus is cheaper.",
              "", "| case | " + " | ".join(names) + (f" | {ratio_head}" if ratio_head else "")
              + " |", "|---|" + "---:|" * (len(names) + (1 if ratio_head else 0))]
    for sc, t in keys:
        row = []
        for n in names:
            v = summary.get((sc, t, n), {}).get("cpu_us_per_request")
            row.append(f"{v:.2f}" if v is not None else "")
        if ratio_head:
            row.append(fmt_ratio(summary.get((sc, t, "plexus"), {}).get("cpu_us_per_request"),
                                 summary.get((sc, t, "nginx"), {}).get("cpu_us_per_request")))
        lines.append(f"| {label(sc, t)} | " + " | ".join(row) + " |")
    lines += ["", "## Responses", "",
              "Bytes of one response (status line, headers and body), as checked before and "
              "after each load; the servers send different headers (below), so these sizes "
              "differ.", "",
              "| case | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for sc in scenarios:
        row = []
        for n in names:
            sizes = [summary.get((sc, t, n), {}).get("response_bytes") for t in args.threads]
            sizes = [s for s in sizes if s is not None]
            row.append(f"{sizes[0]:.0f} B" if sizes else "")
        lines.append(f"| {HTTP_SCENARIOS[sc][2]} | " + " | ".join(row) + " |")
    lines.append("")
    for sc in scenarios:
        for n in names:
            heads = next((r.result["headers"] for r in runs if r.variant == sc and
                          r.server == n and "headers" in r.result), None)
            if heads:
                lines.append(f"- {n}, {sc}: headers {', '.join(heads)}")
    lines.append("")

    def short(sc, t):
        return f"{sc}, {t} thread{'s' if t != 1 else ''}"

    charts = []
    rows = [(short(sc, t), [summary.get((sc, t, n), {}).get("requests_per_sec") for n in names])
            for sc, t in keys]
    charts.append(gnuplot_bars(ctx, stem, "rps", "HTTP requests per second (median)",
                               "requests/s", names, rows))
    rows = [(short(sc, t), [summary.get((sc, t, n), {}).get("cpu_us_per_request") for n in names])
            for sc, t in keys]
    charts.append(gnuplot_bars(ctx, stem, "cpu", "Server CPU per HTTP request (median)",
                               "microseconds (user+sys)", names, rows))
    series = [f"{n} {p}" for n in names for p in ("p50", "p99")]
    rows = [(short(sc, t), [summary.get((sc, t, n), {}).get("latency_ms", {}).get(p)
                            for n in names for p in ("p50", "p99")]) for sc, t in keys]
    charts.append(gnuplot_bars(ctx, stem, "latency", "HTTP latency, wrk percentiles (median)",
                               "milliseconds", series, rows))
    charts = [c for c in charts if c]
    if charts:
        lines += ["## Charts", ""] + [f"![{t}]({f})" for t, f in charts] + [""]
    lines += problem_lines(runs)
    lines += server_lines(ctx, servers)
    if any(s.name == "nginx" for s in servers):
        lines += ["nginx's configuration, written for each run (`{dir}/nginx.conf`) with the "
                  "run's port, threads and directory:", "",
                  "```nginx", nginx_config("{dir}", "{port}", "{threads}", "TMP/www").strip(),
                  "```", ""]
    text = "\n".join(lines)
    write_files(ctx, stem, "latest-http.md", text, {
        "meta": ctx.meta, "servers": [vars(s) | {"setup": None} for s in servers],
        "runs": [vars(r) for r in runs],
        "cells": [{"scenario": k[0], "threads": k[1], "server": k[2], **v}
                  for k, v in summary.items()]})
    return text


def resp_report(ctx, runs, servers, skipped, stem):
    args = ctx.args
    info = ctx.meta.get("resp", {})
    names = [s.name for s in servers]
    ratio_head = "plexus/redis" if {"plexus", "redis-server"} <= set(names) else None
    versions = info.get("versions", {})
    extra = [f"- Client: `redis-benchmark -c {args.resp_clients} -n N -t TEST --csv [-P P]`, "
             f"one invocation per test ({versions.get('redis-benchmark', '?')}); N = "
             f"{args.resp_requests:,} without pipelining, {args.resp_requests_pipelined:,} with",
             f"- redis-server: {versions.get('redis-server', '?')}, `--save '' --appendonly no`",
             "- Plexus: `--threads 1`: one sub-reactor plus the main (accepting) loop"]
    lines = header_lines(ctx, "Plexus RESP against redis-server", skipped, extra)
    summary = {}
    for p in info.get("pipelines", []):
        for n in names:
            good = [r for r in runs if r.variant == f"P{p}" and r.server == n and r.ok]
            for test in RESP_TESTS:
                vals = [r.result["tests"].get(test, {}) for r in good]
                rps = [v["rps"] for v in vals if "rps" in v]
                summary[(p, test, n)] = {
                    "rps": median_or_none(rps), "spread": spread(rps),
                    "p50_ms": median_or_none([v.get("p50_ms") for v in vals if "rps" in v]),
                    "p99_ms": median_or_none([v.get("p99_ms") for v in vals if "rps" in v]),
                    "cpu_us_per_request": median_or_none(
                        [v.get("cpu_us_per_request") for v in vals if "rps" in v]),
                    "good": len(rps)}
    for p in info.get("pipelines", []):
        lines += [f"## Requests per second, {'no pipelining' if p == 1 else f'-P {p}'}", "",
                  "Median of the rounds (±: spread max-min over the median); plexus/redis: ratio "
                  "of the medians (above 1: Plexus served more). Latency p50 / p99 in ms.", "",
                  "| test | " + " | ".join(names) + (f" | {ratio_head}" if ratio_head else "")
                  + " | " + " | ".join(f"{n} p50 / p99" for n in names) + " |",
                  "|---|" + "---:|" * (2 * len(names) + (1 if ratio_head else 0))]
        for test in RESP_TESTS:
            row = [fmt_rate(summary[(p, test, n)]["rps"], summary[(p, test, n)]["spread"])
                   for n in names]
            if ratio_head:
                row.append(fmt_ratio(summary[(p, test, "plexus")]["rps"],
                                     summary[(p, test, "redis-server")]["rps"]))
            row += [f"{fmt_ms(summary[(p, test, n)]['p50_ms'])} / "
                    f"{fmt_ms(summary[(p, test, n)]['p99_ms'])}"
                    if summary[(p, test, n)]["p50_ms"] is not None else "" for n in names]
            lines.append(f"| {test.upper()} | " + " | ".join(row) + " |")
        lines.append("")

    pipelines = info.get("pipelines", [])
    if pipelines:
        heads = [(p, n) for p in pipelines for n in names + ([None] if ratio_head else [])]
        lines += ["## Server CPU per request", "",
                  "User + system CPU of the server (all its threads) from /proc/PID/stat over "
                  "each redis-benchmark run, over its requests, in µs (median of the rounds); "
                  "plexus/redis below 1: Plexus is cheaper.", "",
                  "| test | " + " | ".join(
                      (f"{n}" if n else ratio_head) + (f" -P {p}" if p > 1 else "")
                      for p, n in heads) + " |",
                  "|---|" + "---:|" * len(heads)]
        for test in RESP_TESTS:
            row = []
            for p, n in heads:
                if n is None:
                    row.append(fmt_ratio(summary[(p, test, "plexus")]["cpu_us_per_request"],
                                         summary[(p, test, "redis-server")]["cpu_us_per_request"]))
                else:
                    v = summary[(p, test, n)]["cpu_us_per_request"]
                    row.append(f"{v:.2f}" if v is not None else "")
            lines.append(f"| {test.upper()} | " + " | ".join(row) + " |")
        lines.append("")

    mem = {}
    if args.rss_keys > 0:
        for n in names:
            good = [r for r in runs if r.variant == "memory" and r.server == n and r.ok]
            if good:
                mem[n] = {k: median_or_none([r.result.get(k) for r in good])
                          for k in ("rss_empty_kib", "rss_kib", "hwm_kib", "rss_anon_kib",
                                    "keys", "bytes_per_key")}
                mem[n]["keys_counted"] = good[0].result.get("keys_counted")
        lines += ["## Memory", "",
                  f"VmRSS from /proc/PID/status of a fresh server, empty (after the checked "
                  f"commands, their keys deleted) and "
                  f"after `redis-benchmark -c {args.resp_clients} -t set -n {args.rss_keys:,} "
                  f"-r {args.rss_keys:,} -d 8 -P 16` (keys `key:` + 12 digits, 8-byte values; "
                  "-r draws each key at random, so fewer distinct keys than SETs: counted with "
                  "DBSIZE, or where DBSIZE fails, the expected count). Bytes per key: (RSS after "
                  "- RSS empty) / keys. Median of the rounds. "
                  "Kernel memory (socket buffers) is not in RSS.", "",
                  "| server | RSS empty | RSS after | peak (VmHWM) | keys | bytes per key |"
                  + (" vs redis |" if ratio_head else ""),
                  "|---|---:|---:|---:|---:|---:|" + ("---:|" if ratio_head else "")]
        for n in names:
            v = mem.get(n)
            if not v:
                lines.append(f"| {n} | FAILED | | | | |" + (" |" if ratio_head else ""))
                continue
            mib = lambda k: f"{v[k] / 1024:.1f} MiB" if v.get(k) is not None else ""  # noqa: E731
            keys = f"{v['keys']:,.0f}" + ("" if v["keys_counted"] == "DBSIZE" else " (expected)")
            row = [mib("rss_empty_kib"), mib("rss_kib"), mib("hwm_kib"), keys,
                   f"{v['bytes_per_key']:.0f}" if v.get("bytes_per_key") is not None else ""]
            if ratio_head:
                row.append(fmt_ratio(v.get("bytes_per_key"),
                                     mem.get("redis-server", {}).get("bytes_per_key")))
            lines.append(f"| {n} | " + " | ".join(row) + " |")
        lines.append("")

    charts = []
    for p in info.get("pipelines", []):
        rows = [(t.upper(), [summary[(p, t, n)]["rps"] for n in names]) for t in RESP_TESTS]
        charts.append(gnuplot_bars(
            ctx, stem, f"rps-P{p}",
            f"RESP requests per second, {'no pipelining' if p == 1 else f'-P {p}'} (median)",
            "requests/s", names, rows))
    if mem:
        charts.append(gnuplot_bars(
            ctx, stem, "memory", f"RSS after {args.rss_keys:,} SETs (median)", "MiB", names,
            [("empty", [mem.get(n, {}).get("rss_empty_kib") and mem[n]["rss_empty_kib"] / 1024
                        for n in names]),
             ("loaded", [mem.get(n, {}).get("rss_kib") and mem[n]["rss_kib"] / 1024
                         for n in names])]))
    charts = [c for c in charts if c]
    if charts:
        lines += ["## Charts", ""] + [f"![{t}]({f})" for t, f in charts] + [""]
    lines += problem_lines(runs)
    lines += server_lines(ctx, servers)
    text = "\n".join(lines)
    write_files(ctx, stem, "latest-resp.md", text, {
        "meta": ctx.meta, "servers": [vars(s) | {"setup": None} for s in servers],
        "runs": [vars(r) for r in runs],
        "cells": [{"pipeline": k[0], "test": k[1], "server": k[2], **v}
                  for k, v in summary.items()],
        "memory": mem})
    return text


# ---------------------------------------------------------------------------------------------
# Main


def main(args, run, command):
    """bench/run --http / --resp / --protocols. `run` is bench/run's module."""
    protocols = [p for p, on in (("http", args.http or args.protocols),
                                 ("resp", args.resp or args.protocols)) if on]
    for opt in ("duration", "warmup"):
        value = getattr(args, opt)
        if value != int(value):
            sys.exit(f"bench/run --http: --{opt} must be whole seconds (wrk takes no fractions)")
    if "http" in protocols and (args.duration < 1 or args.http_connections < 1):
        sys.exit("bench/run --http: --duration >= 1 and --http-connections >= 1")
    if min(args.resp_clients, args.resp_requests, args.resp_requests_pipelined) < 1 or \
            args.rss_keys < 0:
        sys.exit("bench/run --resp: --resp-clients and --resp-requests* >= 1, --rss-keys >= 0")

    ctx = run.Context()
    ctx.run, ctx.args = run, args
    ctx.ports = run.PortPicker()
    ctx.live = []
    ctx.interrupted = False

    def on_term(signum, frame):
        raise run.Interrupted()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        if not args.no_build and not args.plexus_build:
            build(ctx, protocols)
    except run.Interrupted:
        run.log("bench/run: interrupted during the build")
        return 130

    ctx.server_cpus, ctx.client_cpus, _ = run.split_cpus(args.no_pin)
    pinning = (f"server on CPU {','.join(map(str, ctx.server_cpus))}, client on CPU "
               f"{','.join(map(str, ctx.client_cpus))} (sched_setaffinity, as taskset -c; "
               "threads and workers of a server share its CPUs)"
               if ctx.server_cpus else "not pinned")
    run.raise_fd_limit([max(args.http_connections, args.resp_clients)])
    server_bin = plexus_paths(ctx, "http")[0]
    short, full, dirty = run.git_commit()
    now = datetime.datetime.now()
    ctx.out_dir = Path(args.out).resolve()
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    ctx.meta = {"date": now.isoformat(timespec="seconds"), "command": command, "commit": short,
                "commit_full": full, "dirty": dirty, "machine": run.machine_info(),
                "pinning": pinning, "quick": args.quick,
                "plexus_server": str(server_bin).replace(str(run.ROOT) + "/", ""),
                "plexus_version": tool_version([str(server_bin), "--version"])
                if server_bin.is_file() else "not built",
                "build_type": build_type(ctx),
                "options": {k: getattr(args, k) for k in ("threads", "duration", "warmup",
                                                          "repeat", "seed")}}
    smoke = "-smoke" if args.quick else ""
    stems = {p: f"{now:%Y-%m-%d-%H%M%S}-{short}-{p}{smoke}" for p in protocols}
    run.log(f"bench/run: {' and '.join(protocols)}; CPUs: {pinning}")

    results = {}
    ctx.tmp = tempfile.mkdtemp(prefix="plexus-bench-")
    try:
        for p in protocols:
            st = results[p] = {"runs": [], "servers": [], "skipped": [], "missing": None}
            try:
                (http_phase if p == "http" else resp_phase)(ctx, st)
            except run.Interrupted:
                ctx.interrupted = True
                run.log("bench/run: interrupted; stopping the children and writing partial "
                        "results")
                for proc in list(ctx.live):
                    run.kill_group(proc, signal.SIGKILL)
                    proc.wait()
                if st["runs"] and not st["runs"][-1].ok and not st["runs"][-1].reason:
                    st["runs"].pop()  # the run in flight
                break
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shutil.rmtree(ctx.tmp, ignore_errors=True)

    ctx.meta["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    ctx.meta["interrupted"] = ctx.interrupted
    status = 130 if ctx.interrupted else 0
    for p, st in results.items():
        if st["missing"]:
            run.log(f"bench/run --{p}: skipped: {st['missing']}")
            continue
        if not st["servers"]:
            run.log(f"bench/run --{p}: skipped: no server to run: {'; '.join(st['skipped'])}")
            continue
        report = http_report if p == "http" else resp_report
        text = report(ctx, st["runs"], st["servers"], st["skipped"], stems[p])
        print()
        print(text)
        run.log(f"bench/run: wrote {ctx.out_dir / (stems[p] + '.md')} (and latest-{p}.md, "
                f"{stems[p]}.json, charts)")
    return status
