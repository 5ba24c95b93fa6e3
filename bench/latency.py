"""bench/latency.py: tail latency under open-loop load, `bench/run --latency`.

For every server (Plexus with its default engine, any other Plexus variant named, and the peers
libev, libuv and Asio), in one run:

1. the closed-loop peak: `plexus-client bench` ping-pong, 100 connections, 16 B, --repeat rounds,
   the median msgs/s kept as that server's peak;
2. open loop at 50 % and 90 % of THAT server's peak (`plexus-client bench --rate`), 100
   connections, 16 B: p50, p99 and p99.9 of the latency measured from each message's scheduled
   send time (so a stall delays every message due during it: no coordinated omission), with the
   messages still unanswered at the end counted at the time they had waited.

Every phase runs in rounds, the servers in an order shuffled per round (fixed seed), and the
median of the rounds is kept. The report (latency-<date>-<commit>.md, .json, a chart per load
level, latest-latency.md) goes to --out with the command that made it.

bench/run owns the options, the process helpers and the one-run function; it calls add_options()
while parsing, preset() for the defaults and main() when --latency is given. bench/scale reuses
servers() for its echo servers. Python standard library only.
"""

import copy
import datetime
import fnmatch
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULTS = dict(threads="1", connections="100", sizes="16", duration=4.0, warmup=1.0, repeat=3)
QUICK = dict(threads="1", connections="100", sizes="16", duration=1.0, warmup=0.5, repeat=1)
DEFAULT_SERVERS = "plexus,libev,libuv,asio"
PERCENTILES = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")]
SHOWN = ("p50", "p99", "p999")


def add_options(p):
    g = p.add_argument_group("tail latency (bench/run --latency; see bench/README.md)")
    g.add_argument("--latency", action="store_true",
                   help="instead of the echo matrix: each server's closed-loop peak, then open "
                        "loop at --latency-loads of it; p50/p99/p99.9 (about 3-4 minutes)")
    g.add_argument("--latency-loads", default="50,90", metavar="PCTS",
                   help="open-loop rates, in percent of each server's own peak (default 50,90)")
    g.add_argument("--peak-duration", type=float, default=None, metavar="S",
                   help="measured seconds of each closed-loop peak run (default 2; --quick 1)")


def preset(args):
    """The defaults bench/run applies to the shared options for --latency."""
    if args.servers is None:
        args.servers = DEFAULT_SERVERS
    if args.peak_duration is None:
        args.peak_duration = 1.0 if args.quick else 2.0
    return QUICK if args.quick else DEFAULTS


def plexus_default(run):
    """plexus-server with its default engine (no --engine): the figure the issue asks about."""
    return run.Server("plexus", "plexus",
                      [str(run.PLEXUS_SERVER), "--port", "{port}", "--threads", "{threads}",
                       "--plugin", "echo", "--log-level", "warn"])


def servers(run, patterns_text, prog="bench/run"):
    """The echo servers named by a comma list of names or globs, in that order: `plexus` (the
    default engine) and every server of bench/run (its PLEXUS_ENGINES variants, the peers).
    Returns (servers, skipped)."""
    known = [plexus_default(run)] + run.builtin_servers()
    patterns = [x.strip() for x in patterns_text.split(",") if x.strip()]
    chosen, skipped = [], []
    for pat in patterns:
        matches = [s for s in known if fnmatch.fnmatchcase(s.name, pat)]
        if not matches:
            sys.exit(f"{prog}: no server matches {pat} (known: "
                     f"{', '.join(s.name for s in known)})")
        for s in matches:
            if any(c.name == s.name for c in chosen) or any(s.name in x for x in skipped):
                continue
            binary = Path(s.argv[0])
            if binary.is_file() and os.access(binary, os.X_OK):
                chosen.append(s)
            else:
                skipped.append(f"{s.name} (not built: {binary})")
    return chosen, skipped


def percent_list(text):
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0 or max(values) > 100:
        sys.exit(f"bench/run --latency: --latency-loads expects percentages in (0, 100]: {text!r}")
    return values


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_us(x):
    if x is None:
        return ""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def load_label(pct):
    return f"{pct:g} %"


# ---------------------------------------------------------------------------------------------
# Runs


def run_one(run, ctx, rec, server, client_prefix, args_view):
    """bench/run's one_run with other options (duration, warm-up) for this phase."""
    view = copy.copy(ctx)
    view.args = args_view
    run.one_run(rec, server, client_prefix, view)


def note(run, rec):
    if not rec.ok:
        return f"FAILED: {rec.reason[:160]}"
    lat = rec.result.get("latency_us", {})
    text = (f"{run.fmt_rate(rec.result['msgs_per_sec'])} msg/s, p50 {fmt_us(lat.get('p50'))} "
            f"p99 {fmt_us(lat.get('p99'))} p99.9 {fmt_us(lat.get('p999'))} µs")
    if rec.result.get("unanswered"):
        text += f", {rec.result['unanswered']} unanswered"
    return text


def main(args, run, command):
    """bench/run --latency. `run` is bench/run's module."""
    loads = percent_list(args.latency_loads)
    if args.peak_duration <= 0:
        sys.exit("bench/run --latency: --peak-duration must be > 0")
    if len(args.threads) != 1 or len(args.connections) != 1 or len(args.sizes) != 1:
        sys.exit("bench/run --latency: one --threads, one --connections and one --sizes value")
    threads, conns, size = args.threads[0], args.connections[0], args.sizes[0]
    try:
        if not args.no_build:
            run.build(args)
    except run.Interrupted:
        run.log("bench/run: interrupted during the build")
        return 130
    chosen, skipped = servers(run, args.servers)
    for s in skipped:
        run.log(f"bench/run --latency: skipping {s}")
    if not chosen:
        sys.exit("bench/run --latency: no server to run")
    help_text = run.plexus_client_bench_help()
    if help_text is None or "--rate" not in help_text:
        sys.exit(f"bench/run --latency: needs {run.PLEXUS_CLIENT} with 'bench --rate' (build "
                 "plexus-client)")
    client_prefix = [str(run.PLEXUS_CLIENT), "bench"] + \
        (["--verify"] if "--verify" in help_text else [])

    ctx = run.Context()
    ctx.args = args
    ctx.ports = run.PortPicker()
    ctx.live = []
    ctx.server_cpus, ctx.client_cpus, client_cpu_count = run.split_cpus(args.no_pin)
    ctx.client_threads = args.client_threads or max(1, client_cpu_count)
    nofile = run.raise_fd_limit([conns])
    pinning = (f"server on {','.join(map(str, ctx.server_cpus))}, client on "
               f"{','.join(map(str, ctx.client_cpus))} (sched_setaffinity)"
               if ctx.server_cpus else "not pinned")
    peak_args = copy.copy(args)
    peak_args.duration = args.peak_duration
    peak_args.warmup = min(args.warmup, 0.5)

    short, full, dirty = run.git_commit()
    now = datetime.datetime.now()
    stem = f"latency-{now:%Y-%m-%d-%H%M%S}-{short}" + ("-smoke" if args.quick else "")
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"date": now.isoformat(timespec="seconds"), "command": command, "commit": short,
            "commit_full": full, "dirty": dirty, "machine": run.machine_info(),
            "client": " ".join(["plexus-client"] + client_prefix[1:]),
            "client_threads": min(ctx.client_threads, conns), "pinning": pinning,
            "nofile": nofile, "build": str(run.BUILD), "quick": args.quick,
            "options": {"threads": threads, "connections": conns, "size": size,
                        "loads_pct": loads, "duration": args.duration, "warmup": args.warmup,
                        "peak_duration": peak_args.duration, "peak_warmup": peak_args.warmup,
                        "repeat": args.repeat, "seed": args.seed}}
    per_run = 0.8  # start, connect, stop
    est = args.repeat * len(chosen) * (peak_args.warmup + peak_args.duration + per_run +
                                       len(loads) * (args.warmup + args.duration + per_run))
    run.log(f"bench/run --latency: {', '.join(s.name for s in chosen)}; {len(chosen)} servers "
            f"x {args.repeat} rounds x (peak + {len(loads)} loads), about {est / 60:.1f} min; "
            f"CPUs: {pinning}")

    def on_term(signum, frame):
        raise run.Interrupted()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    peak_runs, open_runs = [], []
    interrupted = False
    peaks = {}
    try:
        total = args.repeat * len(chosen)
        for rnd in range(args.repeat):
            order = list(chosen)
            random.Random(f"{args.seed}/latency/peak/{rnd}").shuffle(order)
            for s in order:
                rec = run.Run(s.name, threads, size, conns, rnd)
                peak_runs.append(rec)
                run_one(run, ctx, rec, s, client_prefix, peak_args)
                run.log(f"[peak {len(peak_runs)}/{total}] r={rnd + 1} {s.name}: "
                        f"{note(run, rec)}")
        for s in chosen:
            peaks[s.name] = median(r.result["msgs_per_sec"] for r in peak_runs
                                   if r.server == s.name and r.ok)
        summary = ", ".join(f"{n} {run.fmt_rate(p)}" if p else f"{n} FAILED"
                            for n, p in peaks.items())
        run.log(f"bench/run --latency: peaks (median msg/s): {summary}")
        todo = [s for s in chosen if peaks[s.name]]
        total = args.repeat * len(loads) * len(todo)
        for rnd in range(args.repeat):
            for pct in loads:
                order = list(todo)
                random.Random(f"{args.seed}/latency/{pct:g}/{rnd}").shuffle(order)
                for s in order:
                    rate = peaks[s.name] * pct / 100
                    rec = run.Run(s.name, threads, size, conns, rnd)
                    rec.load_pct = pct
                    rec.rate = round(rate, 1)
                    open_runs.append(rec)
                    run_one(run, ctx, rec, s, client_prefix + ["--rate", f"{rate:.1f}"], args)
                    run.log(f"[open {len(open_runs)}/{total}] r={rnd + 1} {load_label(pct)} "
                            f"({run.fmt_rate(rate)}/s) {s.name}: {note(run, rec)}")
    except run.Interrupted:
        interrupted = True
        run.log("bench/run: interrupted; stopping the children and writing partial results")
        for proc in list(ctx.live):
            run.kill_group(proc, signal.SIGKILL)
            proc.wait()
        for runs in (peak_runs, open_runs):
            if runs and not runs[-1].ok and not runs[-1].reason:
                runs.pop()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for s in chosen:
        if s.name not in peaks:
            peaks[s.name] = median(r.result["msgs_per_sec"] for r in peak_runs
                                   if r.server == s.name and r.ok)

    meta["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    meta["interrupted"] = interrupted
    text = write_report(run, chosen, skipped, peaks, peak_runs, open_runs, loads, meta,
                        out_dir, stem)
    print()
    print(text)
    run.log(f"bench/run: wrote {out_dir / (stem + '.md')} (and latest-latency.md, {stem}.json, "
            "charts)")
    return 130 if interrupted else 0


# ---------------------------------------------------------------------------------------------
# Report


def summarize(chosen, open_runs, loads):
    """(server, load) -> medians of the good runs: latency_us by percentile, achieved rate,
    target rate, unanswered (sum), runs, good."""
    cells = {}
    for s in chosen:
        for pct in loads:
            mine = [r for r in open_runs if r.server == s.name and r.load_pct == pct]
            if not mine:
                continue
            good = [r for r in mine if r.ok]
            cell = {"runs": len(mine), "good": len(good), "rate": median(r.rate for r in mine)}
            if good:
                cell["latency_us"] = {
                    k: median(r.result.get("latency_us", {}).get(k) for r in good)
                    for k, _ in PERCENTILES}
                cell["achieved"] = median(r.result.get("msgs_per_sec") for r in good)
                cell["unanswered"] = sum(r.result.get("unanswered", 0) for r in good)
                p999 = [r.result.get("latency_us", {}).get("p999") for r in good]
                cell["p999_spread"] = ((max(p999) - min(p999)) / median(p999)
                                       if len(p999) > 1 and median(p999) else None)
            cells[(s.name, pct)] = cell
    return cells


def best_peer_p999(cells, chosen, pct):
    values = [(cells[(s.name, pct)]["latency_us"]["p999"], s.name) for s in chosen
              if s.kind != "plexus" and "latency_us" in cells.get((s.name, pct), {})]
    return min(values) if values else (None, None)


def charts(run, chosen, cells, loads, out_dir, stem):
    """One latency-percentile chart per load: p50 .. max on the x axis, log µs, a line per
    server. Returns [(title, file name)]."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        run.log("bench/run: gnuplot not found (apt-get install gnuplot-nox): no charts")
        return []
    terminal = "pngcairo size 960,600 font ',10' noenhanced"
    if subprocess.run([gnuplot, "-e", "set terminal pngcairo"], capture_output=True).returncode:
        terminal = "png size 960,600 noenhanced"
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        for pct in loads:
            names = [s.name for s in chosen if "latency_us" in cells.get((s.name, pct), {})]
            if not names:
                continue
            rows = []
            for i, (key, label) in enumerate(PERCENTILES):
                vals = [cells[(n, pct)]["latency_us"].get(key) for n in names]
                rows.append(f'{i} "{label}" ' + " ".join(
                    "NaN" if v is None else f"{max(v, 0.1):.2f}" for v in vals))
            data = Path(tmp) / f"lat-{pct:g}.dat"
            data.write_text("x label " + " ".join(f'"{n}"' for n in names) + "\n" +
                            "\n".join(rows) + "\n")
            name = f"{stem}-{pct:g}pct.png"
            title = f"Open-loop latency, each server at {load_label(pct)} of its own peak"
            script = (f"set terminal {terminal}\nset output '{out_dir / name}'\n"
                      f"set title '{title}'\nset ylabel 'microseconds (log), from the scheduled "
                      "send'\nset xlabel 'percentile'\nset logscale y\nset grid\n"
                      "set key outside right\nset datafile missing 'NaN'\n"
                      "set offsets graph 0.05, graph 0.05, 0, 0\n"
                      f"plot for [i=3:{len(names) + 2}] '{data}' using 1:i:xtic(2) "
                      "with linespoints lw 2 title columnheader(i)\n")
            path = Path(tmp) / "chart.gp"
            path.write_text(script)
            done = subprocess.run([gnuplot, str(path)], capture_output=True, text=True)
            if done.returncode == 0 and (out_dir / name).exists():
                made.append((title, name))
            else:
                run.log(f"bench/run: gnuplot failed for {name}: {done.stderr.strip()[-300:]}")
    return made


def write_report(run, chosen, skipped, peaks, peak_runs, open_runs, loads, meta, out_dir, stem):
    cells = summarize(chosen, open_runs, loads)
    made = charts(run, chosen, cells, loads, out_dir, stem)
    m, o = meta["machine"], meta["options"]
    lines = [f"# Plexus tail latency (open loop), {meta['date']}", ""]
    if meta["quick"]:
        lines += ["**Smoke run (`--quick`): short runs, one round; not a measurement.**", ""]
    if meta["interrupted"]:
        lines += ["**Interrupted: partial results.**", ""]
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Commit: `{meta['commit']}`" + (" (with uncommitted changes)" if meta["dirty"] else ""),
        f"- Build: `{meta['build'].replace(str(run.ROOT) + '/', '')}`",
        f"- Machine: {m['nproc']} CPUs ({m['cpus_allowed']} allowed), {m['cpu']}; Linux "
        f"{m['kernel']}; {m['memory']} memory; load average at start "
        f"{' '.join(map(str, m['loadavg_start']))}, at end {' '.join(map(str, m['loadavg_end']))}",
        f"- Client: {meta['client']}, {run.threads_label(meta['client_threads'])}; CPUs: "
        f"{meta['pinning']}",
        f"- Load: {o['connections']} connections, {run.size_label(o['size'])} messages, server "
        f"{run.threads_label(o['threads'])}",
        f"- Peak: closed loop (ping-pong), {o['peak_warmup']:g} s warm-up + "
        f"{o['peak_duration']:g} s, median of {o['repeat']} round(s)",
        f"- Open loop: `--rate` = {', '.join(load_label(x) for x in o['loads_pct'])} of that "
        f"server's own peak, spread evenly over the connections; {o['warmup']:g} s warm-up + "
        f"{o['duration']:g} s measured; median of {o['repeat']} round(s) of each figure",
        "- Latency: from each message's **scheduled** send time to the last byte of its echo, so "
        "a stall delays every message due during it (no coordinated omission); a measured "
        "message still unanswered 2 s after the window counts with the time it had waited",
        f"- Server order shuffled per round (seed {o['seed']}); every run against a fresh server "
        f"on a free port; raw runs: [{stem}.json]({stem}.json)",
        ""]
    if m["loadavg_start"][0] >= max(1, m["cpus_allowed"]) / 2:
        lines += [f"**Busy machine:** load average {m['loadavg_start'][0]} on "
                  f"{m['cpus_allowed']} CPUs at the start: other work shared the CPUs, which "
                  "shows first in the tail.", ""]
    if skipped:
        lines += ["Skipped: " + "; ".join(skipped), ""]

    lines += ["## Peak (closed loop)", "",
              "| server | msgs/s (median) | ± | ratio to best peer |", "|---|---:|---:|---:|"]
    best = max((p for n, p in peaks.items() if p and
                next(s for s in chosen if s.name == n).kind != "plexus"), default=None)
    for s in chosen:
        rates = [r.result["msgs_per_sec"] for r in peak_runs if r.server == s.name and r.ok]
        p = peaks.get(s.name)
        sp = f"±{(max(rates) - min(rates)) / p * 100:.0f}%" if p and len(rates) > 1 else ""
        lines.append(f"| {s.name} | {run.fmt_rate(p) if p else 'FAILED'} | {sp} | "
                     f"{f'{p / best:.2f}×' if p and best else ''} |")
    lines += ["", "On loopback the closed-loop peak is bound by whichever side is slower, "
              "client or server; each server's open-loop rates are fractions of its own peak.", ""]

    lines += ["## Open-loop latency", "",
              "µs from the scheduled send time, median of the rounds. *×best*: p99.9 over the "
              "best (lowest) peer p99.9 at the same load (at or below 1.00: at least as good). "
              "*achieved*: measured round trips per second against the target rate.", ""]
    for pct in loads:
        bp, bname = best_peer_p999(cells, chosen, pct)
        lines += [f"### {load_label(pct)} of peak", "",
                  "| server | target msgs/s | achieved | p50 | p99 | p99.9 | ± p99.9 | ×best | "
                  "unanswered |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in chosen:
            cell = cells.get((s.name, pct))
            if cell is None:
                continue
            if "latency_us" not in cell:
                lines.append(f"| {s.name} | {run.fmt_rate(cell['rate'] or 0)} | FAILED | | | | "
                             "| | |")
                continue
            lat = cell["latency_us"]
            ach = cell["achieved"] / cell["rate"] if cell["rate"] else None
            sp = f"±{cell['p999_spread'] * 100:.0f}%" if cell["p999_spread"] is not None else ""
            ratio = f"{lat['p999'] / bp:.2f}×" if bp and lat.get("p999") is not None else ""
            failed = f" [{cell['runs'] - cell['good']} failed]" if cell["good"] < cell["runs"] \
                else ""
            lines.append(f"| {s.name} | {run.fmt_rate(cell['rate'])} | "
                         f"{ach * 100:.0f} %{failed} | {fmt_us(lat['p50'])} | "
                         f"{fmt_us(lat['p99'])} | {fmt_us(lat['p999'])} | {sp} | {ratio} | "
                         f"{cell['unanswered']} |")
        if bname:
            lines.append("")
            lines.append(f"Best peer p99.9 at {load_label(pct)}: {bname}, {fmt_us(bp)} µs.")
        behind = [s.name for s in chosen if cells.get((s.name, pct), {}).get("achieved") and
                  cells[(s.name, pct)]["achieved"] < 0.97 * cells[(s.name, pct)]["rate"]]
        if behind:
            lines.append("")
            lines.append(f"**Below the target rate** ({', '.join(behind)}): the client or the "
                         "server did not keep up, and the latency grew with the backlog.")
        lines.append("")

    verdict = []
    for s in chosen:
        if s.kind != "plexus":
            continue
        for pct in loads:
            bp, bname = best_peer_p999(cells, chosen, pct)
            lat = cells.get((s.name, pct), {}).get("latency_us")
            if not lat or not bp:
                verdict.append(f"- {s.name} at {load_label(pct)}: no figure")
                continue
            r = lat["p999"] / bp
            verdict.append(f"- {s.name} at {load_label(pct)}: p99.9 {fmt_us(lat['p999'])} µs "
                           f"against {bname}'s {fmt_us(bp)} µs: {r:.2f}× — target p99.9 <= the "
                           f"best peer's: {'met' if r <= 1.0 else 'missed'}")
    if verdict:
        lines += ["## Against the target", ""] + verdict + [""]

    if made:
        lines += ["## Charts", ""] + [f"![{t}]({n})" for t, n in made] + [""]

    problems = []
    for r in peak_runs + open_runs:
        what = (f"open loop {load_label(r.load_pct)}" if hasattr(r, "load_pct") else "peak")
        if not r.ok:
            problems.append(f"- FAILED {r.server}, {what}, round {r.round + 1}: {r.reason}")
        elif r.server_exit not in (0, None):
            problems.append(f"- {r.server}, {what}, round {r.round + 1}: server exit status "
                            f"after SIGTERM: {r.server_exit}")
    if problems:
        lines += ["## Problems", ""] + problems + [""]
    lines += ["## Servers", ""] + [f"- `{s.name}`: `{run.show_argv(s.argv)}`" for s in chosen]
    lines += ["", f"Client: `{run.show_argv(client_example(open_runs, peak_runs))}`", ""]

    text = "\n".join(lines)
    (out_dir / f"{stem}.md").write_text(text)
    shutil.copyfile(out_dir / f"{stem}.md", out_dir / "latest-latency.md")
    raw = {"meta": meta, "peaks": peaks,
           "servers": [{"name": s.name, "kind": s.kind, "argv": s.argv} for s in chosen],
           "peak_runs": [vars(r) for r in peak_runs], "open_runs": [vars(r) for r in open_runs],
           "cells": [{"server": k[0], "load_pct": k[1], **v} for k, v in cells.items()]}
    (out_dir / f"{stem}.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    return text


def client_example(open_runs, peak_runs):
    for r in open_runs + peak_runs:
        if r.client_command:
            return r.client_command
    return []
