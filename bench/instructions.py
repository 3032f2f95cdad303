"""Instructions per request: the gateway's cost counted, not timed.

On a shared or virtual machine the CPU time of a request moves by tens of
percent from one minute to the next (other guests, stolen time), so two
gateways, or one gateway with and without a feature, cannot be told apart
within 10 % by timing them. This runs each gateway under valgrind's callgrind,
which counts the instructions its process executes, whatever else the machine
is doing: start it with counting off, warm it up, count exactly N chat
requests at a fixed concurrency, stop counting. The same binary, inputs and
load give the same count to a fraction of a percent.

    .venv/bin/python bench/instructions.py    # this checkout: plain key, limited key
    .venv/bin/python bench/instructions.py --baseline-bin ../old/.venv/bin

Needs valgrind (``apt-get install -y valgrind``). A run takes a minute or two
per row: the gateway is some 50 times slower under callgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from procs import BenchError, ProcessGroup, free_port, read_ready_line, wait_http  # noqa: E402
from systems import LIMITED_KEY_FLAGS, gateway_ini  # noqa: E402

BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello in twenty tokens."}],
        "max_tokens": 32,
    }
)


@dataclass
class Row:
    system: str
    key: str
    requests: int
    instructions: int

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests


async def _fire(port: int, key: str, count: int, concurrency: int) -> int:
    """Send ``count`` chat requests over ``concurrency`` keep-alive
    connections; the number that did not answer 200."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\n"
        b"content-type: application/json\r\nauthorization: Bearer " + key.encode() + b"\r\n"
        b"content-length: %d\r\n\r\n" % len(BODY)
    )
    request = head + BODY
    left = count
    failed = 0

    async def worker() -> None:
        nonlocal left, failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left > 0:
                left -= 1
                writer.write(request)
                answer = await reader.readuntil(b"\r\n\r\n")
                failed += not answer.startswith(b"HTTP/1.1 200")
                length = 0
                for line in answer.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


def _fire_sync(port: int, key: str, count: int, concurrency: int) -> None:
    failed = asyncio.run(_fire(port, key, count, concurrency))
    if failed:
        raise BenchError(f"{failed} of {count} requests did not answer 200")


def _create_key(bin_dir: Path, env: dict[str, str], name: str, *flags: str) -> str:
    proc = subprocess.run(
        [str(bin_dir / "gateway"), "keys", "create", "--name", name, "--json", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"`gateway keys create` failed: {proc.stderr.strip()}")
    return str(orjson.loads(proc.stdout)["key"])


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True)


def _totals(out_dir: Path) -> int:
    """The instruction total of the dump that counting produced."""
    best = 0
    for path in out_dir.glob("callgrind.*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                best = max(best, int(line.split()[1]))
    if not best:
        raise BenchError(f"no callgrind totals in {out_dir}")
    return best


def measure(
    group: ProcessGroup,
    workdir: Path,
    name: str,
    bin_dir: Path,
    upstream_port: int,
    args: argparse.Namespace,
    *,
    limited: bool,
) -> list[Row]:
    """One gateway under callgrind: the plain key, then (``limited``) a key
    with rpm, tpm and a budget that never binds."""
    base = workdir / name
    (base / "config").mkdir(parents=True)
    (base / "config" / "setting.ini").write_text(gateway_ini(upstream_port, "info"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    for var in ("PRIMARY_PROVIDER", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        env.pop(var, None)
    env.update(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATEWAY_DATA_DIR=str(base / "data"),
        GATEWAY_CONFIG_DIR=str(base / "config"),
        GATEWAY_ENV="dev",
        GATEWAY_ACCESS_LOG="true",
    )
    rows: list[Row] = []
    for kind in ("plain", "limited") if limited else ("plain",):
        out_dir = base / kind
        out_dir.mkdir()
        child = group.start(
            f"{name} under callgrind",
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out_dir}/callgrind.%p",
                str(bin_dir / "python"),
                str(bin_dir / "gateway"),
                "run",
                "--workers",
                "1",
            ],
            env=env,
            log_path=out_dir / "gateway.log",
        )
        try:
            wait_http(child, f"http://127.0.0.1:{port}/readyz", timeout=300)
            flags = LIMITED_KEY_FLAGS if kind == "limited" else ()
            key = _create_key(bin_dir, env, f"bench-{kind}", *flags)
            _fire_sync(port, key, args.warmup, args.concurrency)
            _control(child.pid, "-i", "on")
            _fire_sync(port, key, args.requests, args.concurrency)
            _control(child.pid, "-i", "off")
            _control(child.pid, "-d")
            time.sleep(1)
        finally:
            group.stop(child, timeout=60)
        rows.append(Row(name, kind, args.requests, _totals(out_dir)))
        print(f"  {name:9} {kind:8} {rows[-1].per_request:10,.0f} instructions/request", flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000, help="requests counted per row")
    p.add_argument("--warmup", type=int, default=300, help="requests before counting starts")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument(
        "--baseline-bin",
        type=Path,
        help="the bin dir of another checkout's venv: its gateway is counted first (plain key)",
    )
    p.add_argument("--no-limited", action="store_true", help="skip the limited-key row")
    args = p.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    group = ProcessGroup()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tokgw-instr-") as tmp:
        workdir = Path(tmp)
        try:
            upstream = group.start(
                "fake upstream",
                [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", "0", "--pace-ms", "0"],
                log_path=workdir / "upstream.log",
                stdout_pipe=True,
            )
            line = read_ready_line(upstream, timeout=15)
            upstream_port = int(line.split()[1])
            if args.baseline_bin is not None:
                old = args.baseline_bin
                rows += measure(group, workdir, "baseline", old, upstream_port, args, limited=False)
            here = Path(sys.executable).parent
            rows += measure(
                group, workdir, "gateway", here, upstream_port, args, limited=not args.no_limited
            )
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            group.stop_all()
    first = rows[0].per_request
    plain = next(r.per_request for r in rows if r.system == "gateway" and r.key == "plain")
    print()
    print(f"{'system':9} {'key':8} {'instr/req':>11} {'vs first':>9} {'vs plain':>9}")
    for r in rows:
        print(
            f"{r.system:9} {r.key:8} {r.per_request:11,.0f} "
            f"{r.per_request / first - 1:+9.1%} {r.per_request / plain - 1:+9.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
