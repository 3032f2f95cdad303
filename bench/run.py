"""Gateway benchmark: latency and throughput added by the gateway over a fake
upstream that costs nothing, per scenario and concurrency, with the gateway's
CPU time and memory. See bench/README.md.

    python bench/run.py                       # direct + gateway (+ litellm if installed)
    python bench/run.py --duration 10 --json out.json
    python bench/run.py --systems direct,gateway,litellm --scenarios chat
    python bench/run.py --profile /tmp/profile.txt   # py-spy on the gateway, chat c=64
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from loadgen import (
    DEFAULT_SCENARIOS,
    SCENARIOS,
    Scenario,
    check_target,
    find_wrk,
    probe_ttfb,
    run_wrk,
    write_lua,
)
from procs import (
    BenchError,
    CpuAudit,
    ProcessGroup,
    cpu_seconds,
    pin_prefix,
    rss_mb,
    wait_quiet,
)
from profile_summary import summarize
from systems import (
    DEFAULT_LITELLM_VENV,
    Cores,
    Direct,
    Gateway,
    LiteLLM,
    LiteLLMInstall,
    Nginx,
    System,
    Upstream,
    litellm_ready,
)

KNOWN_SYSTEMS = ("direct", "nginx", "baseline", "gateway", "gateway-w2", "litellm")
LITELLM_INSTALL_TIMEOUT = 900.0
# Above this share of the system core used by other processes, a cell is flagged.
FOREIGN_LOAD_PCT = 10.0


@dataclass
class Cell:
    system: str
    scenario: str
    concurrency: int
    rps: float = math.nan
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    added_p50_ms: float = math.nan
    rss_mb: float = math.nan
    cpu_ms_per_req: float = math.nan
    cpu_pct: float = math.nan
    other_pct: float = math.nan
    requests: int = 0
    errors: int = 0
    note: str = ""


@dataclass
class Run:
    """Everything one invocation needs while it measures."""

    args: argparse.Namespace
    wrk: str
    workdir: Path
    cores: Cores
    group: ProcessGroup
    cells: list[Cell]
    ttfb: list[dict[str, Any]]
    notes: list[str]
    load_pids: list[int] = field(default_factory=list)  # ours on the load core (upstream)

    def say(self, text: str) -> None:
        print(text, flush=True)


# -- arguments --------------------------------------------------------------------------
def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the gateway against a fake upstream (and optionally LiteLLM).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--systems",
        default=None,
        help="comma list of direct,nginx,baseline,gateway,gateway-w2,litellm; gateway-w2 is "
        "`gateway run --workers 2` on the same one core; baseline is the gateway of "
        "another checkout (--baseline-bin) "
        "(default: direct,gateway,gateway-w2, plus nginx when installed and litellm "
        "when its virtualenv exists)",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma list of {','.join(SCENARIOS)}",
    )
    p.add_argument("--concurrency", default="1,16,64", help="comma list of connection counts")
    p.add_argument("--duration", type=int, default=5, help="seconds measured per cell")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load per cell")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    p.add_argument(
        "--ttfb-requests",
        type=int,
        default=200,
        help="sequential requests per time-to-first-byte probe (0: skip the probes)",
    )
    p.add_argument(
        "--pace-ms", type=float, default=2.0, help="gap between events of the paced streams"
    )
    p.add_argument(
        "--no-access-log", action="store_true", help="run the gateway with its access log off"
    )
    p.add_argument(
        "--log-level", default="info", help="gateway log level (the access log needs info)"
    )
    p.add_argument(
        "--noisy-retries",
        type=int,
        default=1,
        help="measure a cell again (keeping the least disturbed) when other processes "
        "took more than 10%% of a core during it",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="before each cell, wait up to this many seconds for other load on the cores to end",
    )
    p.add_argument(
        "--profile",
        metavar="OUT",
        help="record the gateway with py-spy during an extra pass of the profile cell; "
        "OUT.svg: flame graph, OUT.json: speedscope, anything else: collapsed stacks + summary",
    )
    p.add_argument(
        "--profile-scenario", default=None, help="default: chat, or the first scenario run"
    )
    p.add_argument(
        "--profile-concurrency", type=int, default=None, help="default: the highest level"
    )
    p.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV)
    p.add_argument(
        "--baseline-bin",
        type=Path,
        default=None,
        help="bin dir of another checkout's venv (e.g. ../old/.venv/bin): its `gateway` is "
        "the `baseline` system, measured in the same run as this one",
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, configs)")
    args = p.parse_args(argv)

    if args.systems is None:
        systems = ["direct", "gateway", "gateway-w2"]
        if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
            systems.append("nginx")
        if litellm_ready(args.litellm_venv):
            systems.append("litellm")
    else:
        systems = _csv(args.systems)
    unknown = [s for s in systems if s not in KNOWN_SYSTEMS]
    if unknown or not systems:
        p.error(f"--systems: unknown {', '.join(unknown)} (known: {', '.join(KNOWN_SYSTEMS)})")
    args.systems = [s for s in KNOWN_SYSTEMS if s in systems]
    if "baseline" in args.systems:
        if args.baseline_bin is None:
            p.error("--systems baseline needs --baseline-bin DIR")
        if not (args.baseline_bin / "gateway").exists():
            p.error(f"--baseline-bin: no `gateway` executable in {args.baseline_bin}")
    args.scenarios = _csv(args.scenarios)
    bad = [s for s in args.scenarios if s not in SCENARIOS]
    if bad or not args.scenarios:
        p.error(f"--scenarios: unknown {', '.join(bad)} (known: {', '.join(SCENARIOS)})")
    try:
        args.concurrency = [int(c) for c in _csv(args.concurrency)]
    except ValueError:
        p.error("--concurrency: expected integers, e.g. 1,16,64")
    if not args.concurrency or min(args.concurrency) < 1:
        p.error("--concurrency: expected positive integers")
    if args.duration < 1 or args.warmup < 0:
        p.error("--duration must be >= 1 and --warmup >= 0 (whole seconds)")
    if args.profile_concurrency is None:
        args.profile_concurrency = max(args.concurrency)
    if args.profile_scenario is None:
        args.profile_scenario = "chat" if "chat" in args.scenarios else args.scenarios[0]
    if args.profile and (
        args.profile_scenario not in args.scenarios
        or args.profile_concurrency not in args.concurrency
        or "gateway" not in args.systems
    ):
        p.error(
            "--profile: the profile cell (gateway, --profile-scenario, --profile-concurrency)"
            " must be one the run measures"
        )
    return args


# -- measuring --------------------------------------------------------------------------
def measure_cell(run: Run, system: System, scenario: Scenario, concurrency: int) -> Cell:
    cell = Cell(system.name, scenario.name, concurrency)
    cores = run.cores.pinned()
    if cores and run.args.quiet_wait > 0:
        wait_quiet(cores, run.args.quiet_wait, FOREIGN_LOAD_PCT)
    target = system.target(scenario)
    script = write_lua(target, run.workdir / f"{system.name}-{scenario.name}.lua")
    load_core = run.cores.load
    if run.args.warmup:
        run_wrk(
            run.wrk,
            script,
            target.url,
            connections=concurrency,
            seconds=run.args.warmup,
            core=load_core,
        )
    pids = system.pids()
    cpu_before = cpu_seconds(pids) if pids else 0.0
    audit = None
    if run.cores.system is not None and run.cores.load is not None:
        audit = CpuAudit(run.cores.system, run.cores.load)
        audit.begin(pids, run.load_pids)
    res = run_wrk(
        run.wrk,
        script,
        target.url,
        connections=concurrency,
        seconds=run.args.duration,
        core=load_core,
    )
    if audit is not None:
        cell.other_pct = audit.end(system.pids(), run.load_pids)
    if pids:
        cpu = cpu_seconds(system.pids()) - cpu_before
        cell.rss_mb = rss_mb(system.pids())
        cell.cpu_pct = 100.0 * cpu / res.duration_s if res.duration_s else math.nan
        cell.cpu_ms_per_req = 1000.0 * cpu / res.requests if res.requests else math.nan
    cell.rps = res.rps
    cell.p50_ms = res.p50_ms
    cell.p99_ms = res.p99_ms
    cell.requests = res.requests
    cell.errors = res.errors + res.status_errors
    notes = []
    if cell.errors:
        notes.append(f"{res.status_errors} bad status, {res.errors} socket errors")
    if cell.other_pct > FOREIGN_LOAD_PCT:
        notes.append(f"other processes took {cell.other_pct:.0f}% of a core")
    cell.note = "; ".join(notes)
    return cell


def find_pyspy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def profile_pass(run: Run, system: System, scenario: Scenario, concurrency: int) -> None:
    out = Path(run.args.profile).expanduser().resolve()
    pyspy = find_pyspy()
    if pyspy is None:
        run.notes.append("profile skipped: py-spy is not installed (`uv pip install py-spy`)")
        return
    pids = system.pids()
    if not pids:
        return
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(out.suffix, "raw")
    seconds = run.args.duration
    argv = [
        *pin_prefix(run.cores.load),
        pyspy,
        "record",
        "--pid",
        str(pids[0]),
        "--rate",
        "250",
        "--duration",
        str(seconds + 1),
        "--format",
        fmt,
        "--output",
        str(out),
        "--nonblocking",
        "--threads",
    ]
    run.say(f"profiling {system.name} {scenario.name} c={concurrency} with py-spy -> {out}")
    spy = run.group.start("py-spy", argv, log_path=run.workdir / "py-spy.log")
    try:
        time.sleep(0.5)
        target = system.target(scenario)
        script = write_lua(target, run.workdir / f"profile-{scenario.name}.lua")
        run_wrk(
            run.wrk,
            script,
            target.url,
            connections=concurrency,
            seconds=seconds,
            core=run.cores.load,
        )
        spy.popen.wait(seconds + 60)
        run.group.forget(spy)
    except subprocess.TimeoutExpired:
        run.notes.append("profile: py-spy did not finish")
    finally:
        run.group.stop(spy)
    if spy.popen.returncode != 0 or not out.exists():
        run.notes.append(f"profile failed (py-spy exit {spy.popen.returncode}):\n{spy.log_tail()}")
        return
    if fmt == "raw":
        text = summarize(out.read_text(errors="replace"), top=20, main_thread=str(pids[0]))
        summary = out.with_name(out.name + ".summary.txt")
        summary.write_text(text + "\n", encoding="utf-8")
        run.say(text)
        run.notes.append(f"profile: {out} (summary in {summary})")
    else:
        run.notes.append(f"profile: {out}")


def bench_system(run: Run, system: System) -> None:
    args = run.args
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        if scenario.limited and not getattr(system, "limited_key", ""):
            continue  # keys with limits exist on the gateway only
        levels = [c for c in args.concurrency if c in scenario.concurrency]
        levels = levels or (list(args.concurrency) if not scenario.concurrency else [])
        if not levels:
            continue
        why = check_target(system.target(scenario), scenario)
        if why is not None:
            run.say(f"  {system.name} {name}: SKIPPED, a test request failed: {why}")
            for c in levels:
                run.cells.append(Cell(system.name, name, c, note=f"failed: {why[:200]}"))
            continue
        for c in levels:
            cell = measure_cell(run, system, scenario, c)
            for _ in range(args.noisy_retries):
                if not cell.other_pct > FOREIGN_LOAD_PCT:  # also when not measured (nan)
                    break
                run.say(f"  ({cell.note}; measuring {system.name} {name} c={c} again)")
                again = measure_cell(run, system, scenario, c)
                cell = again if again.other_pct < cell.other_pct else cell
            run.cells.append(cell)
            run.say(
                f"  {cell.system:<8} {cell.scenario:<16} c={c:<4} {cell.rps:9.0f} rps  "
                f"p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms"
                + (f"  cpu {cell.cpu_ms_per_req:.3f} ms/req" if pids_known(cell) else "")
                + (f"  ({cell.note})" if cell.note else "")
            )
            if (
                args.profile
                and system.name == "gateway"
                and name == args.profile_scenario
                and c == args.profile_concurrency
            ):
                profile_pass(run, system, scenario, c)
    if args.ttfb_requests > 0:
        for name in args.scenarios:
            scenario = SCENARIOS[name]
            if not scenario.stream:
                continue
            if run.cores.pinned() and args.quiet_wait > 0:
                wait_quiet(run.cores.pinned(), args.quiet_wait, FOREIGN_LOAD_PCT)
            res = probe_ttfb(
                system.target(scenario, paced=True), scenario.expect, args.ttfb_requests
            )
            row = {"system": system.name, "scenario": name, **res.summary()}
            run.ttfb.append(row)
            run.say(
                f"  {system.name:<8} {name:<16} ttfb p50 {row['ttfb_p50_ms']:.2f} ms "
                f"p99 {row['ttfb_p99_ms']:.2f} ms  (paced stream, {row['errors']} errors)"
            )


def pids_known(cell: Cell) -> bool:
    return not math.isnan(cell.cpu_ms_per_req)


# -- reporting --------------------------------------------------------------------------
def fill_added(cells: list[Cell]) -> None:
    direct = {(c.scenario, c.concurrency): c.p50_ms for c in cells if c.system == "direct"}
    for c in cells:
        base = direct.get((c.scenario, c.concurrency))
        if c.system != "direct" and base is not None and not math.isnan(base):
            c.added_p50_ms = c.p50_ms - base


def _fmt(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    left = {0, 1}
    lines = []
    for row in [headers, *rows]:
        cells = [
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def results_table(cells: Sequence[Cell]) -> str:
    headers = (
        "system",
        "scenario",
        "conc",
        "RPS",
        "p50 ms",
        "p99 ms",
        "+p50 ms",
        "RSS MB",
        "CPU ms/req",
        "CPU %",
        "other %",
        "errors",
    )
    order = {s: i for i, s in enumerate(SCENARIOS)}
    ranked = sorted(
        cells,
        key=lambda c: (order[c.scenario], c.concurrency, KNOWN_SYSTEMS.index(c.system)),
    )
    rows = [
        (
            c.system,
            c.scenario,
            str(c.concurrency),
            _fmt(c.rps, 0),
            _fmt(c.p50_ms, 2),
            _fmt(c.p99_ms, 2),
            _fmt(c.added_p50_ms, 2),
            _fmt(c.rss_mb, 0),
            _fmt(c.cpu_ms_per_req, 3),
            _fmt(c.cpu_pct, 0),
            _fmt(c.other_pct, 0),
            ("FAILED" if c.note.startswith("failed") else str(c.errors)),
        )
        for c in ranked
    ]
    return render_table(headers, rows)


def ttfb_table(rows: Sequence[dict[str, Any]]) -> str:
    direct = {r["scenario"]: r["ttfb_p50_ms"] for r in rows if r["system"] == "direct"}
    headers = ("system", "scenario", "n", "TTFB p50 ms", "TTFB p99 ms", "+TTFB p50", "total p50")
    out = []
    for r in rows:
        base = direct.get(r["scenario"], math.nan)
        added = math.nan if r["system"] == "direct" else r["ttfb_p50_ms"] - base
        out.append(
            (
                r["system"],
                r["scenario"],
                str(r["requests"] - r["errors"]),
                _fmt(r["ttfb_p50_ms"], 2),
                _fmt(r["ttfb_p99_ms"], 2),
                _fmt(added, 2),
                _fmt(r["total_p50_ms"], 1),
            )
        )
    return render_table(headers, out)


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("tokgateway", "uvicorn", "httptools", "starlette", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    for info in args.litellm_venv.glob("lib/python*/site-packages/litellm-*.dist-info"):
        versions["litellm"] = info.name.removesuffix(".dist-info").split("-")[1]
    return {
        "commit": _git_commit(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "access_log": not args.no_access_log,
        "pinned": not args.no_pin,
        "pace_ms": args.pace_ms,
    }


def _git_commit() -> str:
    """HEAD of the repository being measured, with ``-dirty`` when it has changes."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("-dirty" if dirty else "")


# -- the run ----------------------------------------------------------------------------
@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP all unwind as KeyboardInterrupt, so every
    ``finally`` stops its children (SIGINT too: a shell starting the run in the
    background leaves it ignored)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def choose_cores(no_pin: bool) -> tuple[Cores, str | None]:
    if no_pin:
        return Cores(None, None), None
    if shutil.which("taskset") is None:
        return Cores(None, None), "taskset not found: processes are not pinned"
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return Cores(None, None), "fewer than 2 cores: processes are not pinned"
    cores = Cores(system=available[0], load=available[1])
    os.sched_setaffinity(0, {available[1]})  # this runner and its probes stay off the system core
    return cores, None


def build_system(name: str, run: Run, upstream: Upstream) -> System:
    if name == "direct":
        return Direct(upstream)
    if name == "nginx":
        return Nginx(run.group, run.workdir, run.cores, upstream)
    if name in ("gateway", "gateway-w2"):
        # gateway-w2: `--workers 2` on the same single core, to show what a
        # second worker costs per request (the load needs the other core)
        return Gateway(
            run.group,
            run.workdir,
            run.cores,
            upstream,
            access_log=not run.args.no_access_log,
            log_level=run.args.log_level,
            name=name,
            workers=2 if name == "gateway-w2" else 1,
        )
    if name == "baseline":
        # Another checkout's gateway: an older one may not know the limit flags,
        # so it gets one plain key (chat_limited then measures it unlimited).
        return Gateway(
            run.group,
            run.workdir,
            run.cores,
            upstream,
            access_log=not run.args.no_access_log,
            log_level=run.args.log_level,
            bin_dir=run.args.baseline_bin,
            name=name,
            limits=False,
        )
    return LiteLLM(run.group, run.workdir, run.cores, upstream, run.args.litellm_venv)


def execute(run: Run) -> int:
    args = run.args
    failed = 0
    installer: LiteLLMInstall | None = None
    if "litellm" in args.systems and not litellm_ready(args.litellm_venv):
        installer = LiteLLMInstall(
            run.group, args.litellm_venv, run.workdir / "litellm-install.log"
        )
        run.say(f"installing litellm[proxy] into {args.litellm_venv} in the background ...")
        installer.begin()
    upstream = Upstream(run.group, run.workdir, run.cores, args.pace_ms)
    upstream.start()
    if upstream.child is not None:
        run.load_pids.append(upstream.child.pid)
    run.say(f"fake upstream on 127.0.0.1:{upstream.port}; work dir {run.workdir}")
    for name in args.systems:
        if name == "litellm" and installer is not None:
            run.say("waiting for the litellm install to finish ...")
            why = installer.wait(LITELLM_INSTALL_TIMEOUT)
            if why is not None:
                run.notes.append(f"litellm skipped: {why}")
                run.say(f"litellm skipped: {why}")
                continue
        system = build_system(name, run, upstream)
        run.say(f"{name}: starting")
        try:
            system.start()
        except BenchError as exc:
            run.notes.append(f"{name} skipped: {exc}")
            run.say(f"{name} could not start, skipped: {exc}")
            failed += name not in ("litellm", "nginx")  # optional comparisons
            system.stop()
            continue
        try:
            bench_system(run, system)
        finally:
            system.stop()
    return 1 if failed else 0


def report(run: Run) -> None:
    fill_added(run.cells)
    print()
    print(results_table(run.cells))
    if run.ttfb:
        print()
        print(
            f"Time to first byte, streams paced {run.args.pace_ms:g} ms per event, "
            f"{run.args.ttfb_requests} sequential requests:"
        )
        print(ttfb_table(run.ttfb))
    for note in run.notes:
        print(f"\nnote: {note}")
    if run.args.json:
        data = {
            "machine": machine_info(run.args),
            "cells": [asdict(c) for c in run.cells],
            "ttfb": run.ttfb,
            "notes": run.notes,
        }
        Path(run.args.json).write_bytes(
            orjson.dumps(_no_nan(data), option=orjson.OPT_INDENT_2) + b"\n"
        )
        print(f"\nresults written to {run.args.json}")


def _no_nan(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk = find_wrk()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    cores, warning = choose_cores(args.no_pin)
    workdir = Path(tempfile.mkdtemp(prefix="tokgw-bench-"))
    run = Run(args, wrk, workdir, cores, ProcessGroup(), [], [], [])
    if warning:
        run.notes.append(warning)
    code = 1
    with terminate_as_interrupt():
        try:
            code = execute(run)
        except KeyboardInterrupt:
            print("\ninterrupted; stopping everything", file=sys.stderr)
            code = 130
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            code = 1
        finally:
            run.group.stop_all()
            if code != 0 or args.keep:
                print(f"logs and configs kept in {workdir}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    if run.cells or run.ttfb:
        report(run)
    return code


if __name__ == "__main__":
    sys.exit(main())
