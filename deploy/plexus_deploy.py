"""deploy/plexus_deploy.py: plexus-server hosts behind HAProxy in network namespaces.

The pieces the HAProxy test (tests/deploy) and the throughput report (bench/haproxy.sh) share,
and a command line for running the same by hand (deploy/README.md):

    python3 deploy/plexus_deploy.py render --hosts 3 --stats-socket /run/plx-haproxy.sock
    python3 deploy/plexus_deploy.py stats --stats-socket /run/plx-haproxy.sock

- Network: deploy/netns-hosts.sh (namespaces PREFIX-lb, PREFIX-h1..hN) driven from Python, and
  enter(): this process into a namespace (setns), so that its sockets are made there.
- render_config(): deploy/haproxy/haproxy.cfg with its @NAME@ fields filled.
- Stats: HAProxy's admin socket: `show stat` (servers' state) and `show sess` (which server
  each client connection went to).

Python standard library only. Not thread-safe: one thread drives a Network and its processes.
"""

import argparse
import ctypes
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent
NETNS_SCRIPT = DEPLOY_DIR / "netns-hosts.sh"
HAPROXY_TEMPLATE = DEPLOY_DIR / "haproxy" / "haproxy.cfg"

# The ports inside the namespaces: each namespace is a host of its own, so nothing else uses them.
BACKEND_ECHO_PORT = 7000
BACKEND_HTTP_PORT = 8080
# Each backend's admin listener (--admin-listen): HAProxy's HTTP check asks its /healthz.
BACKEND_ADMIN_PORT = 9100
LB_ECHO_PORT = 17000
LB_HTTP_PORT = 18080

CLONE_NEWNET = 0x40000000


class DeployError(Exception):
    pass


def wait_until(condition, timeout, what, interval=0.02):
    """Polls condition() until it returns something true, and returns that; raises after
    timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DeployError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise DeployError(f"setns: {os.strerror(err)}")


@dataclass
class Backend:
    name: str  # h1, h2, ...
    addr: str
    echo_port: int = BACKEND_ECHO_PORT
    http_port: int = BACKEND_HTTP_PORT
    admin_port: int = BACKEND_ADMIN_PORT


class Network:
    """The namespaces of one prefix: PREFIX-lb (SUBNET.1) and PREFIX-h1..hN (SUBNET.11..)."""

    def __init__(self, prefix="plx", hosts=3, subnet="10.77.0"):
        self.prefix = prefix
        self.hosts = hosts
        self.subnet = subnet
        self._home_fd = None  # this process's own namespace while enter()ed elsewhere

    @property
    def lb_addr(self):
        return f"{self.subnet}.1"

    def host_addr(self, i):
        return f"{self.subnet}.{10 + i}"

    def host_names(self):
        return [f"h{i}" for i in range(1, self.hosts + 1)]

    def backends(self):
        return [Backend(f"h{i}", self.host_addr(i)) for i in range(1, self.hosts + 1)]

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def _script(self, *args, check=True):
        env = dict(os.environ, PLX_NETNS_PREFIX=self.prefix, PLX_SUBNET=self.subnet)
        r = subprocess.run(["bash", str(NETNS_SCRIPT), *args], env=env, capture_output=True,
                           text=True)
        if check and r.returncode != 0:
            raise DeployError(r.stderr.strip() or f"netns-hosts.sh {' '.join(args)} failed")
        return r

    def up(self):
        self._script("up", str(self.hosts))

    def down(self):
        """Leaves any namespace entered first: `down` ends every process in the namespaces."""
        self.leave()
        self._script("down", check=False)

    def exec_args(self, host, argv):
        """The command line that runs argv in host's namespace (ip netns exec execs argv: the
        process started is argv's own, with its pid)."""
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def enter(self, host):
        """Moves this process (its current thread: call before starting threads) into host's
        namespace; its new sockets and children are there. leave() comes back."""
        if self._home_fd is None:
            self._home_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/var/run/netns/{self.ns(host)}", os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)

    def leave(self):
        if self._home_fd is None:
            return
        try:
            _setns(self._home_fd)
        finally:
            os.close(self._home_fd)
            self._home_fd = None


def render_config(lb_addr, stats_socket, backends, echo_port=LB_ECHO_PORT, http_port=LB_HTTP_PORT,
                  template=HAPROXY_TEMPLATE):
    text = Path(template).read_text()
    echo = "\n".join(f"    server {b.name} {b.addr}:{b.echo_port} check" for b in backends)
    http = "\n".join(f"    server {b.name} {b.addr}:{b.http_port} check port {b.admin_port}"
                     for b in backends)
    fields = {"LB_ADDR": lb_addr, "ECHO_PORT": str(echo_port), "HTTP_PORT": str(http_port),
              "STATS_SOCKET": str(stats_socket), "ECHO_SERVERS": echo, "HTTP_SERVERS": http}
    for name, value in fields.items():
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise DeployError(f"haproxy.cfg template: unknown fields {sorted(set(left))}")
    return text


class Stats:
    """HAProxy's admin socket (`stats socket ... level admin`)."""

    def __init__(self, path):
        self.path = str(path)

    def command(self, line, timeout=5.0):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.path)
            s.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def servers(self):
        """{(backend, server): row} from `show stat`, each row a dict by CSV column name
        (status: UP, DOWN, MAINT, ...; check_status: L4OK, L7OK, L4CON, ...)."""
        lines = self.command("show stat").splitlines()
        if not lines or not lines[0].startswith("# "):
            raise DeployError(f"unexpected 'show stat' output: {lines[:1]}")
        header = lines[0][2:].split(",")
        rows = {}
        for line in lines[1:]:
            if not line:
                continue
            row = dict(zip(header, line.split(",")))
            if row.get("svname") in ("FRONTEND", "BACKEND"):
                continue
            rows[(row["pxname"], row["svname"])] = row
        return rows

    def status(self, backend, server):
        try:
            row = self.servers().get((backend, server))
        except OSError:
            return None
        return row["status"] if row else None

    def sessions(self):
        """[(client_addr, client_port, frontend, backend, server)] from `show sess`."""
        out = []
        for m in re.finditer(r"src=([0-9.]+):(\d+) fe=(\S+) be=(\S+) srv=(\S+)",
                             self.command("show sess")):
            out.append((m.group(1), int(m.group(2)), m.group(3), m.group(4), m.group(5)))
        return out

    def wait_all_up(self, names, timeout=15.0):
        """Waits until every (backend, server) in names is UP after a passed check."""
        def all_up():
            try:
                rows = self.servers()
            except OSError:
                return False
            return all(rows.get(n, {}).get("status") == "UP" and
                       rows[n].get("check_status") in ("L4OK", "L6OK", "L7OK") for n in names)
        wait_until(all_up, timeout, f"HAProxy to see {sorted(names)} UP", interval=0.05)


def connectable(addr, port, timeout=0.5):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


def main(argv=None):
    p = argparse.ArgumentParser(description="plexus-server behind HAProxy: helpers "
                                            "(deploy/README.md)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="print deploy/haproxy/haproxy.cfg filled in")
    r.add_argument("--hosts", type=int, default=3)
    r.add_argument("--subnet", default="10.77.0")
    r.add_argument("--stats-socket", required=True)
    r.add_argument("--echo-port", type=int, default=LB_ECHO_PORT)
    r.add_argument("--http-port", type=int, default=LB_HTTP_PORT)
    s = sub.add_parser("stats", help="the servers' state from HAProxy's admin socket")
    s.add_argument("--stats-socket", required=True)
    a = p.parse_args(argv)
    try:
        if a.cmd == "render":
            net = Network(hosts=a.hosts, subnet=a.subnet)
            sys.stdout.write(render_config(net.lb_addr, a.stats_socket, net.backends(),
                                           a.echo_port, a.http_port))
        else:
            for (px, sv), row in sorted(Stats(a.stats_socket).servers().items()):
                print(f"{px:10} {sv:4} {row['status']:6} check {row.get('check_status', ''):6} "
                      f"sessions now {row['scur']:>5}, total {row['stot']:>8}")
    except (DeployError, OSError) as e:
        print(f"plexus_deploy: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
