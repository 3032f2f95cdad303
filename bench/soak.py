"""Memory over a long run: the gateway's RSS at every 100k requests of one
scenario (non-streamed chat at concurrency 64 by default) up to --requests,
with the same pinning, fake upstream and production settings as run.py. At the
end the gateway is stopped and its ledger counted, to show nothing was lost.

    python bench/soak.py                        # 1M requests, about 4 minutes
    python bench/soak.py --requests 300000 --every 50000
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from loadgen import SCENARIOS, check_target, find_wrk, run_wrk, write_lua
from procs import BenchError, ProcessGroup, rss_mb
from run import choose_cores, terminate_as_interrupt
from systems import Gateway, Upstream

SEGMENT_MAX_S = 30


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--every", type=int, default=100_000, help="RSS sample interval (requests)")
    p.add_argument("--scenario", default="chat", choices=sorted(SCENARIOS))
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    args = p.parse_args(argv)
    if args.requests < args.every or args.every < 1:
        p.error("--requests must be at least --every, and --every positive")
    return args


def soak(args: argparse.Namespace, group: ProcessGroup, workdir: Path) -> int:
    wrk = find_wrk()
    cores, warning = choose_cores(args.no_pin)
    if warning:
        print(f"note: {warning}")
    upstream = Upstream(group, workdir, cores, pace_ms=2.0)
    upstream.start()
    gateway = Gateway(group, workdir, cores, upstream)
    gateway.start()
    scenario = SCENARIOS[args.scenario]
    target = gateway.target(scenario)
    why = check_target(target, scenario)
    if why is not None:
        raise BenchError(f"the gateway answered wrongly: {why}")
    script = write_lua(target, workdir / "soak.lua")
    print(f"{'requests':>10}  {'RSS MB':>7}  {'RPS':>7}  errors")
    print(f"{0:>10,}  {rss_mb(gateway.pids()):7.1f}  {'-':>7}  -")
    total = errors = 0
    mark = args.every
    samples: list[float] = []
    rate = 2000.0
    while total < args.requests:
        seconds = max(1, min(SEGMENT_MAX_S, round((mark - total) / rate)))
        res = run_wrk(
            wrk,
            script,
            target.url,
            connections=args.concurrency,
            seconds=seconds,
            core=cores.load,
        )
        total += res.requests
        errors += res.errors + res.status_errors
        rate = max(res.rps, 1.0)
        if total >= mark:
            rss = rss_mb(gateway.pids())
            samples.append(rss)
            print(f"{total:>10,}  {rss:7.1f}  {res.rps:7,.0f}  {errors}", flush=True)
            while mark <= total:
                mark += args.every
    gateway.stop()
    db = workdir / "gateway-data" / "gateway.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]
    print(
        f"\nRSS from the first sample to the last: {samples[0]:.1f} -> {samples[-1]:.1f} MB "
        f"(max {max(samples):.1f}); ledger rows {rows:,} for {total:,} requests wrk "
        "completed (plus the check request and any cut off when a segment ended)"
    )
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tokgw-soak-"))
    group = ProcessGroup()
    code = 1
    with terminate_as_interrupt():
        try:
            code = soak(args, group, workdir)
        except KeyboardInterrupt:
            code = 130
        except BenchError as exc:
            print(f"soak: {exc}", file=sys.stderr)
        finally:
            group.stop_all()
            if code != 0 or args.keep:
                print(f"logs and configs kept in {workdir}", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
