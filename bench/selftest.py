#!/usr/bin/env python3
"""bench/selftest.py: checks of bench/latency.py and bench/scale that start no server.

The CPU plans of bench/scale, the server lists, and both reports written from made-up runs
(a failed run among them), compared with the figures they must show. Registered with ctest as
bench.selftest; run by hand with `python3 bench/selftest.py`. Python standard library only.
"""

import importlib.machinery
import importlib.util
import sys
import tempfile
import unittest
from pathlib import Path
from types import SimpleNamespace

sys.dont_write_bytecode = True
BENCH = Path(__file__).resolve().parent


def load(name, file_name):
    loader = importlib.machinery.SourceFileLoader(name, str(BENCH / file_name))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


scale = load("bench_scale", "scale")  # loads bench/run too, and puts bench/ on sys.path
run = scale.run
import latency  # noqa: E402


def machine():
    return {"nproc": 2, "cpus_allowed": 2, "cpu": "test", "kernel": "test", "memory": "1 GiB",
            "loadavg_start": [0.0, 0.0, 0.0], "loadavg_end": [0.0, 0.0, 0.0]}


def echo_run(server, threads, rnd, msgs=None, latency_us=None, reason="", **extra):
    r = run.Run(server, threads, 16, 100, rnd)
    if msgs is not None:
        r.ok = True
        r.result = {"msgs_per_sec": msgs, "latency_us": latency_us or {}, "unanswered": 0}
        r.server_exit = 0
    else:
        r.reason = reason
    for k, v in extra.items():
        setattr(r, k, v)
    return r


class CpuPlan(unittest.TestCase):
    def test_enough_cpus_pins_apart(self):
        server, client, warning = scale.cpu_plan(8, list(range(16)), False)
        self.assertEqual(server, list(range(8)))
        self.assertEqual(client, list(range(8, 16)))
        self.assertIsNone(warning)
        server, client, warning = scale.cpu_plan(1, list(range(16)), False)
        self.assertEqual((server, client, warning), ([0], list(range(1, 16)), None))

    def test_too_few_cpus_warns_and_splits(self):
        server, client, warning = scale.cpu_plan(2, [0, 1], False)
        self.assertEqual((server, client), ([0], [1]))
        self.assertIn("2 threads need 4 CPUs", warning)

    def test_default_threads_are_those_that_fit(self):
        args = SimpleNamespace(no_pin=False, threads=None)
        self.assertEqual(scale.choose_threads(args, [0, 1]), [1])
        self.assertEqual(scale.choose_threads(args, list(range(16))), [1, 2, 4, 8])
        self.assertEqual(scale.choose_threads(args, list(range(8))), [1, 2, 4])
        args.threads = [1, 2]
        self.assertEqual(scale.choose_threads(args, [0, 1]), [1, 2])

    def test_one_cpu_is_refused(self):
        with self.assertRaises(SystemExit):
            scale.choose_threads(SimpleNamespace(no_pin=False, threads=[1]), [0])


class Servers(unittest.TestCase):
    def test_names_and_globs_in_order(self):
        with tempfile.TemporaryDirectory() as tmp:
            old = run.BUILD
            run.use_build(tmp)  # nothing built there: every server is skipped, by name
            try:
                chosen, skipped = latency.servers(run, "plexus,libev,plexus-epoll-*")
            finally:
                run.use_build(old)
        self.assertEqual(chosen, [])
        names = [s.split(" ")[0] for s in skipped]
        self.assertEqual(names, ["plexus", "libev", "plexus-epoll-oneshot", "plexus-epoll-level",
                                 "plexus-epoll-edge"])

    def test_unknown_name_is_refused(self):
        with self.assertRaises(SystemExit):
            latency.servers(run, "plexus,nosuchserver")


class LatencyReport(unittest.TestCase):
    def test_table_ratios_and_verdict(self):
        servers = [run.Server("plexus", "plexus", ["plexus-server"]),
                   run.Server("libev", "peer", ["libev_echo"]),
                   run.Server("asio", "peer", ["asio_echo"])]
        lat = lambda p999: {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": p999, "max": 2 * p999}
        peaks = {"plexus": 100000.0, "libev": 80000.0, "asio": None}
        peak_runs = [echo_run("plexus", 1, 0, 100000.0), echo_run("libev", 1, 0, 80000.0),
                     echo_run("asio", 1, 0, reason="server died")]
        open_runs = []
        for rnd, (a, b) in enumerate([(300.0, 400.0), (500.0, 380.0), (320.0, 390.0)]):
            open_runs.append(echo_run("plexus", 1, rnd, 50000.0, lat(a), load_pct=50.0,
                                      rate=50000.0))
            open_runs.append(echo_run("libev", 1, rnd, 40000.0, lat(b), load_pct=50.0,
                                      rate=40000.0))
        open_runs.append(echo_run("plexus", 1, 0, 90000.0, lat(900.0), load_pct=90.0,
                                  rate=90000.0))
        open_runs.append(echo_run("libev", 1, 0, 72000.0, lat(600.0), load_pct=90.0,
                                  rate=72000.0))
        meta = {"date": "today", "command": "bench/run --latency", "commit": "abc",
                "dirty": False, "machine": machine(), "client": "plexus-client bench",
                "client_threads": 1, "pinning": "server on 0, client on 1", "build": "build",
                "quick": False, "interrupted": False,
                "options": {"threads": 1, "connections": 100, "size": 16, "loads_pct": [50, 90],
                            "duration": 4, "warmup": 1, "peak_duration": 2, "peak_warmup": 0.5,
                            "repeat": 3, "seed": 1}}
        with tempfile.TemporaryDirectory() as tmp:
            text = latency.write_report(run, servers, [], peaks, peak_runs, open_runs,
                                        [50.0, 90.0], meta, Path(tmp), "t")
            self.assertTrue((Path(tmp) / "latest-latency.md").is_file())
            self.assertTrue((Path(tmp) / "t.json").is_file())
        # Medians: plexus p99.9 320 (300, 320, 500), libev 390; at 90 %: 900 against 600.
        self.assertIn("| plexus | 50,000 | 100 % | 50.0 | 99.0 | 320 | ±62% | 0.82× | 0 |", text)
        self.assertIn("| libev | 40,000 | 100 % | 50.0 | 99.0 | 390 | ±5% | 1.00× | 0 |", text)
        self.assertIn("plexus at 50 %: p99.9 320 µs against libev's 390 µs: 0.82× — target "
                      "p99.9 <= the best peer's: met", text)
        self.assertIn("plexus at 90 %: p99.9 900 µs against libev's 600 µs: 1.50× — target "
                      "p99.9 <= the best peer's: missed", text)
        self.assertIn("| asio | FAILED |", text)
        self.assertIn("FAILED asio, peak, round 1: server died", text)


class ScaleReport(unittest.TestCase):
    def test_ratios_and_speedups(self):
        plexus = run.Server("plexus", "plexus", ["plexus-server"])
        libev = run.Server("libev", "peer", ["libev_echo"])
        jobs = []
        for t, (p, l) in {1: (100.0, 90.0), 2: (190.0, 200.0)}.items():
            for rnd in range(3):
                for s, rate in ((plexus, p + rnd), (libev, l - rnd)):
                    j = scale.Job("echo", t, s, rnd)
                    j.rec = echo_run(s.name, t, rnd, rate)
                    jobs.append(j)
        failed = scale.Job("echo", 2, libev, 3)
        failed.rec = echo_run("libev", 2, 3, reason="exited")
        jobs.append(failed)
        args = SimpleNamespace(parts=["echo"])
        meta = {"date": "today", "command": "bench/scale", "commit": "abc", "dirty": False,
                "machine": machine(), "build": "build", "quick": False, "interrupted": False,
                "wall_s": 60.0, "tmp": "/nonexistent",
                "cpus": {1: {"server": [0], "client": [1], "warning": None},
                         2: {"server": [0], "client": [1], "warning": "too few"}},
                "versions": {"wrk": "wrk", "nginx": "nginx"},
                "options": {"connections": 400, "size": 16, "http_connections": 400,
                            "duration": 3, "warmup": 1, "repeat": 3, "seed": 1}}
        with tempfile.TemporaryDirectory() as tmp:
            text = scale.write_report(args, jobs, {"echo": [plexus, libev]}, [], [1, 2], meta,
                                      Path(tmp), "t")
        # plexus: 101 at 1 thread, 191 at 2; libev: 89, then 199 (3 good runs of 4).
        self.assertIn("| plexus | 101 ±2% (1.13×) | 191 ±1% (0.96×) [1.89×] |", text)
        self.assertIn("| libev | 89 ±2% (1.00×) | 199 ±1% (1.00×) [2.24×] [1 failed] |", text)
        self.assertIn("Echo, plexus at 2 threads: 0.96× the best peer", text)
        self.assertIn("server on 0, client on 1 — **too few**", text)


if __name__ == "__main__":
    unittest.main(verbosity=1)
