#!/usr/bin/env python3
"""deploy.haproxy_failover: plexus-server on 3 namespace hosts behind HAProxy, echo and HTTP.

    haproxy_failover_test.py --bin-dir build/bin [--plugin-dir build/plugins]

Network namespaces of a prefix unique to this run (deploy/netns-hosts.sh): PREFIX-lb holds
HAProxy (deploy/haproxy/haproxy.cfg) and this test's clients, PREFIX-h1..h3 one plexus-server each,
with an echo listener (:7000) and an http listener (:8080, GET /whoami answers the host's name,
GET /healthz on each backend's admin listener (--admin-listen) for HAProxy's check, files from a directory of random data). Steps, each asserted:

1. load: 50 connections echo random sizes through HAProxy, every byte checked, beside
   `plexus-client bench --verify` on 50 more; HTTP GETs of files and of /whoami through HAProxy,
   byte-exact; every host served some of each;
2. kill: h2's server gets SIGKILL while 60 connections stream and new ones keep coming: exactly
   the streams HAProxy had put on h2 fail (its `show sess` says which), every other stream goes
   on byte-exact, every new connection and HTTP request succeeds, HAProxy marks h2 DOWN;
3. restart: h2's server again: HAProxy marks it UP, new connections are put on it and echoed,
   GET /whoami reaches it;
4. SIGHUP to every server while all of that runs: nothing is lost, every server keeps running
   (whether it ignores SIGHUP or reloads its plugins);
5. every server exits 0 on SIGTERM, and no server log holds a sanitizer's report.

Exit status 0 pass, 1 fail, 77 skipped (not root, no haproxy or ip, namespaces not allowed).
Python standard library only.
"""

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(SOURCE_DIR / "deploy"))
import plexus_deploy as pd  # noqa: E402

SKIP = 77
ECHO_BE, HTTP_BE = "echo_back", "http_back"
FILES = {"small.bin": 1000, "medium.bin": 64 * 1024, "large.bin": 700 * 1024}


class Failure(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    log(f"ok: {msg}")


# ------------------------------------------------------------------ load clients (asyncio)

BLOB = random.Random(7).randbytes(1 << 20)


class Stream:
    """One long-lived echo connection through HAProxy, streaming random sizes until stopped."""

    def __init__(self, idx, max_size=16384):
        self.idx = idx
        self.max_size = max_size
        self.rng = random.Random(idx)
        self.port = None  # the client port, as HAProxy's `show sess` shows it
        self.rounds = 0
        self.bytes = 0
        self.error = None
        self.first = asyncio.Event()

    async def run(self, addr, port, stop):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), 5)
        except (OSError, asyncio.TimeoutError) as e:
            self.error = f"connect: {e!r}"
            self.first.set()
            return
        self.port = writer.get_extra_info("sockname")[1]
        try:
            while not stop.is_set():
                n = self.rng.randint(1, self.max_size)
                off = self.rng.randrange(len(BLOB) - n)
                chunk = BLOB[off:off + n]
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 10)
                try:
                    got = await asyncio.wait_for(reader.readexactly(n), 10)
                except asyncio.IncompleteReadError as e:
                    if e.partial != chunk[:len(e.partial)]:
                        self.error = "MISMATCH in a partial reply"
                    else:
                        self.error = f"closed after {len(e.partial)} of {n} bytes"
                    break
                if got != chunk:
                    self.error = "MISMATCH"
                    break
                self.rounds += 1
                self.bytes += n
                self.first.set()
        except (OSError, asyncio.TimeoutError) as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.first.set()
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 5)
            except (OSError, asyncio.TimeoutError):
                pass


class ShortConnections:
    """Workers that each loop: connect through HAProxy, echo one random message, close.
    failed: (monotonic time the connection began, what went wrong)."""

    def __init__(self):
        self.ok = 0
        self.failed = []

    def failed_since(self, t):
        return [why for began, why in self.failed if began >= t]

    async def worker(self, addr, port, stop, seed):
        rng = random.Random(seed)
        while not stop.is_set():
            n = rng.randint(1, 8192)
            off = rng.randrange(len(BLOB) - n)
            chunk = BLOB[off:off + n]
            writer = None
            began = time.monotonic()
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), 5)
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 10)
                got = await asyncio.wait_for(reader.readexactly(n), 10)
                if got != chunk:
                    self.failed.append((began, "MISMATCH"))
                else:
                    self.ok += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                self.failed.append((began, f"{type(e).__name__}: {e}"))
                await asyncio.sleep(0.01)  # no busy loop while failing
            finally:
                if writer is not None:
                    writer.close()


async def http_get(reader, writer, path):
    """One GET on a kept-alive connection: (status, headers, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: plexus-lb\r\n\r\n".encode())
    await asyncio.wait_for(writer.drain(), 10)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
    if not m:
        raise Failure(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "-1"))
    if length < 0:
        raise Failure(f"GET {path}: no Content-Length in {headers}")
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    return int(m.group(1)), headers, body


class HttpLoad:
    """Workers that GET the files and /whoami through HAProxy over kept-alive connections and
    compare each body with what it must be."""

    def __init__(self, files):
        self.files = files  # name -> bytes
        self.ok = 0
        self.failed = []
        self.whoami = {}  # host name -> count

    async def worker(self, addr, port, stop, seed):
        rng = random.Random(seed)
        names = sorted(self.files)
        conn = None
        while not stop.is_set():
            path = "/whoami" if rng.random() < 0.3 else "/" + rng.choice(names)
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(addr, port), 5)
                status, _, body = await http_get(*conn, path)
                if path == "/whoami":
                    good = status == 200 and re.fullmatch(rb"h\d+", body) is not None
                    if good:
                        self.whoami[body.decode()] = self.whoami.get(body.decode(), 0) + 1
                else:
                    good = status == 200 and body == self.files[path[1:]]
                if good:
                    self.ok += 1
                else:
                    self.failed.append(f"GET {path}: status {status}, {len(body)} bytes")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, Failure) as e:
                self.failed.append(f"GET {path}: {type(e).__name__}: {e}")
                if conn is not None:
                    conn[1].close()
                conn = None
                await asyncio.sleep(0.01)  # no busy loop while failing
        if conn is not None:
            conn[1].close()


# ------------------------------------------------------------------ the deployment


class Deployment:
    def __init__(self, args, net, work):
        self.args = args
        self.net = net
        self.work = work
        self.www = work / "www"
        self.servers = {}  # host -> Popen
        self.haproxy = None
        self.stats = pd.Stats(work / "haproxy.sock")
        self.files = {}

    def make_files(self):
        self.www.mkdir()
        rng = random.Random(11)
        for name, size in FILES.items():
            data = rng.randbytes(size)
            (self.www / name).write_bytes(data)
            self.files[name] = data

    def start_server(self, host):
        b = next(b for b in self.net.backends() if b.name == host)
        argv = [str(self.args.bin_dir / "plexus-server"), "--threads", "1", "--log-level", "info",
                "--admin-listen", f":{b.admin_port}", "--listen", f":{b.echo_port} echo",
                "--listen", f":{b.http_port} http root={self.www} "
                            f"'return:/whoami=200 {host}'"]
        if self.args.plugin_dir:
            argv[1:1] = ["--plugin-dir", str(self.args.plugin_dir)]
        out = open(self.work / f"{host}.log", "ab")
        self.servers[host] = subprocess.Popen(self.net.exec_args(host, argv), stdout=out,
                                              stderr=subprocess.STDOUT)
        out.close()
        for port in (b.echo_port, b.http_port, b.admin_port):
            pd.wait_until(lambda: self.servers[host].poll() is not None or
                          pd.connectable(b.addr, port), 10, f"{host}'s plexus-server on {port}")
        if self.servers[host].poll() is not None:
            raise Failure(f"{host}'s plexus-server exited with status "
                          f"{self.servers[host].returncode} (see {host}.log)")

    def start_haproxy(self):
        cfg = self.work / "haproxy.cfg"
        cfg.write_text(pd.render_config(self.net.lb_addr, self.stats.path, self.net.backends()))
        r = subprocess.run([self.args.haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise Failure(f"haproxy -c rejects the rendered config: {r.stderr.strip()}")
        out = open(self.work / "haproxy.log", "ab")
        # -db: in the foreground, as this test's child.
        self.haproxy = subprocess.Popen([self.args.haproxy, "-db", "-f", str(cfg)], stdout=out,
                                        stderr=subprocess.STDOUT)
        out.close()
        pd.wait_until(lambda: self.haproxy.poll() is not None or
                      os.path.exists(self.stats.path), 10, "HAProxy's stats socket")
        if self.haproxy.poll() is not None:
            raise Failure(f"haproxy exited with status {self.haproxy.returncode}")

    def all_servers(self):
        return {(be, h) for be in (ECHO_BE, HTTP_BE) for h in self.net.host_names()}

    def stop_servers_cleanly(self):
        """SIGTERM to every server: each must exit 0, and no log may hold a sanitizer's report
        (the ASan/UBSan CI stage runs this test with its own build)."""
        for p in self.servers.values():
            p.terminate()
        for host, p in sorted(self.servers.items()):
            try:
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                raise Failure(f"{host}'s plexus-server did not stop within 10 s of SIGTERM")
            check(rc == 0, f"{host}'s plexus-server exited with status {rc} on SIGTERM")
        for f in (self.work / f"{host}.log" for host in sorted(self.servers)):
            text = f.read_text(errors="replace")
            found = re.search(r"^.*(Sanitizer|runtime error:).*$", text, re.M)
            check(not found, f"no sanitizer report in {f.name}"
                             + (f" -- {found.group(0)}" if found else ""))

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

    def dump_logs(self):
        for f in sorted(self.work.glob("*.log")):
            text = f.read_text(errors="replace").splitlines()
            print(f"--- {f.name} (last 15 lines)")
            print("\n".join(text[-15:]))


def servers_of(stats, streams):
    """{stream idx: server name} for the streams, by their client ports in HAProxy's `show sess`
    (sessions of the echo frontend); None for a stream HAProxy does not list."""
    by_port = {port: srv for _, port, fe, _, srv in stats.sessions() if fe == "echo"}
    return {s.idx: by_port.get(s.port) for s in streams}


async def scenario(d):
    lb = d.net.lb_addr
    stop_all = asyncio.Event()

    # 1. load ---------------------------------------------------------------------------------
    log("step 1: load through HAProxy (50 echo streams, HTTP files and /whoami, plexus-client)")
    # plexus-client bench --verify beside the Python streams: 50 more connections, 4 KiB messages.
    bench = await asyncio.create_subprocess_exec(
        str(d.args.bin_dir / "plexus-client"), "bench", "-s", lb, "-p", str(pd.LB_ECHO_PORT),
        "-c", "50", "--size", "4096", "-d", "2", "--warmup", "0.5", "--threads", "1", "--verify",
        "--json", "--quiet", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stop = asyncio.Event()
    streams = [Stream(i, max_size=65536) for i in range(50)]
    http = HttpLoad(d.files)
    tasks = [asyncio.create_task(s.run(lb, pd.LB_ECHO_PORT, stop)) for s in streams]
    tasks += [asyncio.create_task(http.worker(lb, pd.LB_HTTP_PORT, stop, 100 + i))
              for i in range(6)]
    await asyncio.wait_for(asyncio.gather(*(s.first.wait() for s in streams)), 15)
    placed = servers_of(d.stats, streams)
    await asyncio.sleep(2.0)  # the load itself: what is measured is what it carries
    stop.set()
    await asyncio.gather(*tasks)
    errors = [f"stream {s.idx}: {s.error}" for s in streams if s.error]
    check(not errors, f"50 echo streams through HAProxy, {sum(s.rounds for s in streams)} "
                      f"messages, {sum(s.bytes for s in streams)} bytes, every byte as sent"
                      + (f" -- {errors[:5]}" if errors else ""))
    spread = {h: list(placed.values()).count(h) for h in d.net.host_names()}
    check(all(spread.values()), f"HAProxy spread the echo streams over every host: {spread}")
    check(not http.failed and http.ok > 0,
          f"{http.ok} HTTP GETs through HAProxy byte-exact, {len(http.failed)} failed"
          + (f" -- {http.failed[:5]}" if http.failed else ""))
    check(set(http.whoami) == set(d.net.host_names()),
          f"GET /whoami reached every host: {dict(sorted(http.whoami.items()))}")
    out, err = await asyncio.wait_for(bench.communicate(), 30)
    try:
        j = json.loads(out)
    except ValueError:
        raise Failure(f"plexus-client bench: exit {bench.returncode}: {err.decode().strip()}")
    bad = {k: j[k] for k in ("connect_errors", "mismatches", "disconnects", "unanswered")
           if j.get(k)}
    check(bench.returncode == 0 and not bad and j["messages"] > 0,
          f"plexus-client bench --verify through HAProxy: {j['messages']} messages of 4 KiB on "
          f"{j['connected']} connections, {bad or 'no error'}")

    # 2. kill h2 mid-run -------------------------------------------------------------------------
    log("step 2: SIGKILL h2's server while 60 streams, new connections and HTTP run")
    streams = [Stream(1000 + i) for i in range(60)]
    stream_tasks = [asyncio.create_task(s.run(lb, pd.LB_ECHO_PORT, stop_all)) for s in streams]
    await asyncio.wait_for(asyncio.gather(*(s.first.wait() for s in streams)), 15)
    check(not [s for s in streams if s.error], "60 streams opened through HAProxy")
    placed = servers_of(d.stats, streams)
    check(all(placed.values()), "HAProxy's `show sess` names the server of every stream")
    on_h2 = {i for i, srv in placed.items() if srv == "h2"}
    check(on_h2, f"{len(on_h2)} of the streams are on h2")

    stop = asyncio.Event()
    short = ShortConnections()
    http = HttpLoad(d.files)
    load = [asyncio.create_task(short.worker(lb, pd.LB_ECHO_PORT, stop, 200 + i))
            for i in range(8)]
    load += [asyncio.create_task(http.worker(lb, pd.LB_HTTP_PORT, stop, 300 + i))
             for i in range(4)]
    await asyncio.sleep(0.5)
    killed_at = time.monotonic()
    d.servers["h2"].kill()
    d.servers["h2"].wait()
    log("h2's plexus-server killed")

    def h2_down():
        return (d.stats.status(ECHO_BE, "h2") == "DOWN" and
                d.stats.status(HTTP_BE, "h2") == "DOWN")
    await asyncio.to_thread(pd.wait_until, h2_down, 10, "HAProxy to mark h2 DOWN", 0.05)
    down_after = time.monotonic() - killed_at
    check(True, f"HAProxy marked h2 DOWN (echo and http) {down_after:.2f} s after the kill")
    await asyncio.sleep(1.0)  # traffic with h2 down
    stop.set()
    await asyncio.gather(*load)

    failed = {s.idx for s in streams if s.error}
    check(failed == on_h2, f"exactly the {len(on_h2)} streams on h2 failed, the other "
                           f"{len(streams) - len(on_h2)} go on"
                           + ("" if failed == on_h2 else
                              f" -- failed but not on h2: {sorted(failed - on_h2)}, "
                              f"on h2 but not failed: {sorted(on_h2 - failed)}"))
    mism = [s.idx for s in streams if s.error and "MISMATCH" in s.error]
    check(not mism, "no stream saw a byte other than it sent (those on h2 were cut, not garbled)")
    # A short connection in flight on h2 at the kill is one of h2's: it may fail. Every one that
    # began after the kill must succeed (HAProxy retries a refused connect on another server).
    after = short.failed_since(killed_at)
    check(not after and short.ok > 0,
          f"{short.ok} short echo connections succeeded during the failover; of those begun after "
          f"the kill {len(after)} failed (must be 0)" + (f" -- {after[:5]}" if after else ""))
    check(len(short.failed) <= 8, f"{len(short.failed)} short connections in flight at the kill "
                                  "were cut (at most one per worker, 8)")
    check(not http.failed and http.ok > 0,
          f"{http.ok} HTTP GETs during the failover, {len(http.failed)} failed"
          + (f" -- {http.failed[:5]}" if http.failed else ""))
    survivors = [s for s in streams if not s.error]
    rounds_before = {s.idx: s.rounds for s in survivors}

    # 3. restart h2 --------------------------------------------------------------------------------
    log("step 3: h2's server restarted")
    started_at = time.monotonic()
    d.start_server("h2")
    await asyncio.to_thread(d.stats.wait_all_up, {(ECHO_BE, "h2"), (HTTP_BE, "h2")}, 15)
    check(True, f"HAProxy marked h2 UP again (echo and http) "
                f"{time.monotonic() - started_at:.2f} s after its restart")
    fresh = [Stream(2000 + i) for i in range(30)]
    fresh_tasks = [asyncio.create_task(s.run(lb, pd.LB_ECHO_PORT, stop_all)) for s in fresh]
    await asyncio.wait_for(asyncio.gather(*(s.first.wait() for s in fresh)), 15)
    placed = servers_of(d.stats, fresh)
    new_on_h2 = [i for i, srv in placed.items() if srv == "h2"]
    check(new_on_h2, f"{len(new_on_h2)} of 30 new streams went to h2 (leastconn: it had none)")
    await asyncio.sleep(0.5)
    check(all(s.rounds > 0 and not s.error for s in fresh if s.idx in new_on_h2),
          "the streams on the restarted h2 echo byte-exact")
    stop = asyncio.Event()
    http = HttpLoad(d.files)
    hl = [asyncio.create_task(http.worker(lb, pd.LB_HTTP_PORT, stop, 400 + i)) for i in range(3)]
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*hl)
    check(not http.failed and "h2" in http.whoami,
          f"GET /whoami reaches h2 again: {dict(sorted(http.whoami.items()))}"
          + (f" -- failed: {http.failed[:5]}" if http.failed else ""))

    # 4. SIGHUP every server mid-run -------------------------------------------------------------
    log("step 4: SIGHUP to every server while streams, new connections and HTTP run")
    stop = asyncio.Event()
    short = ShortConnections()
    http = HttpLoad(d.files)
    load = [asyncio.create_task(short.worker(lb, pd.LB_ECHO_PORT, stop, 500 + i))
            for i in range(6)]
    load += [asyncio.create_task(http.worker(lb, pd.LB_HTTP_PORT, stop, 600 + i))
             for i in range(3)]
    live = survivors + fresh
    rounds_before = {s.idx: s.rounds for s in live}
    await asyncio.sleep(0.3)
    for host in d.net.host_names():
        d.servers[host].send_signal(signal.SIGHUP)
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*load)
    check(all(p.poll() is None for p in d.servers.values()),
          "every plexus-server still runs after SIGHUP")
    errors = [f"stream {s.idx}: {s.error}" for s in live if s.error]
    check(not errors, f"all {len(live)} streams went on across the SIGHUPs"
                      + (f" -- {errors[:5]}" if errors else ""))
    stalled = [s.idx for s in live if s.rounds == rounds_before[s.idx]]
    check(not stalled, "every stream kept echoing across the SIGHUPs"
                       + (f" -- stalled: {stalled[:10]}" if stalled else ""))
    check(not short.failed and short.ok > 0,
          f"{short.ok} short echo connections across the SIGHUPs, {len(short.failed)} failed"
          + (f" -- {[why for _, why in short.failed[:5]]}" if short.failed else ""))
    check(not http.failed and http.ok > 0,
          f"{http.ok} HTTP GETs across the SIGHUPs, {len(http.failed)} failed"
          + (f" -- {http.failed[:5]}" if http.failed else ""))
    await asyncio.to_thread(d.stats.wait_all_up, d.all_servers(), 5)
    check(True, "HAProxy sees all 6 servers UP at the end")

    stop_all.set()
    await asyncio.gather(*stream_tasks, *fresh_tasks)
    errors = [f"stream {s.idx}: {s.error}" for s in live if s.error]
    check(not errors, f"{len(live)} streams closed cleanly, "
                      f"{sum(s.bytes for s in live)} bytes echoed byte-exact in all")


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def remove_stale_sets():
    """Namespaces of earlier runs of this test whose process is gone (a crash, a ctest kill), or
    that carry this process's pid (reused since)."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for pid in sorted(set(re.findall(r"^plxt(\d+)-", r.stdout, re.M))):
        if int(pid) == os.getpid() or not Path(f"/proc/{pid}").exists():
            pd.Network(prefix=f"plxt{pid}").down()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", type=Path, required=True, help="where plexus-server is")
    p.add_argument("--plugin-dir", type=Path, help="where echo.so and http.so are")
    p.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    p.add_argument("--keep", action="store_true", help="leave the work directory (logs, config)")
    args = p.parse_args()

    if os.geteuid() != 0:
        skip("needs root (network namespaces)")
    if not shutil.which("ip"):
        skip("ip (iproute2) not found")
    if not os.access(args.haproxy, os.X_OK):
        skip("haproxy not found (apt-get install haproxy)")
    for program in ("plexus-server", "plexus-client"):
        if not (args.bin_dir / program).exists():
            print(f"FAIL: no {program} in {args.bin_dir}")
            return 1

    remove_stale_sets()
    net = pd.Network(prefix=f"plxt{os.getpid()}", hosts=3)
    work = Path(tempfile.mkdtemp(prefix="plexus-haproxy-"))
    # SIGTERM (ctest's timeout, a Ctrl-C's relatives) still cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    d = Deployment(args, net, work)
    started = time.monotonic()
    rc = 1
    try:
        try:
            net.up()
        except pd.DeployError as e:
            skip(f"cannot create network namespaces: {e}")
        log(f"namespaces {net.prefix}-lb, -h1..h3; work directory {work}")
        d.make_files()
        # This process and its children (haproxy) in the load balancer's namespace from here on;
        # the servers in theirs (ip netns exec), reached from here as from HAProxy.
        net.enter("lb")
        for host in net.host_names():
            d.start_server(host)
        d.start_haproxy()
        d.stats.wait_all_up(d.all_servers(), 15)
        log("haproxy up, 6 servers UP")
        asyncio.run(asyncio.wait_for(scenario(d), 120))
        d.stop_servers_cleanly()
        log(f"PASS in {time.monotonic() - started:.1f} s")
        rc = 0
    except (Failure, pd.DeployError, asyncio.TimeoutError) as e:
        print(f"FAIL: {e or 'the scenario took over 120 s'}")
        d.dump_logs()
    finally:
        d.stop()
        net.down()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                      text=True).stdout.split() if n.startswith(net.prefix + "-")]
    if left:
        print(f"FAIL: netns-hosts.sh down left namespaces behind: {left}")
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
