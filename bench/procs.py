"""Child processes for the benchmark: start them pinned to a core in their own
process group, wait until they answer, read their CPU time and memory from
/proc, and stop every one of them however the run ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class BenchError(Exception):
    """A problem that stops the run, with a message for the operator."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_prefix(core: int | None) -> list[str]:
    """``taskset -c N`` when pinning is on, else nothing."""
    return [] if core is None else ["taskset", "-c", str(core)]


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class ProcessGroup:
    """Every process the run started; ``stop_all`` ends them in reverse order."""

    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        stdout_pipe: bool = False,
        cwd: Path | None = None,
    ) -> Child:
        log: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            log = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise BenchError(f"cannot start {name}: {exc}") from None
        finally:
            if not isinstance(log, int):
                log.close()
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``timeout``. A
        child that already ended (and was reaped) is left alone: its id may
        belong to someone else by now."""
        self.forget(child)
        if child.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.popen.wait(5)
            # Whatever the child left behind in its group goes too; the group id
            # stays reserved while any member lives, so this reaches only those.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        if child.popen.stdout is not None:
            child.popen.stdout.close()

    def forget(self, child: Child) -> None:
        """A child that ended by itself and needs no stopping."""
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            self.stop(child)


def read_ready_line(child: Child, timeout: float) -> str:
    """The first stdout line of a child that announces itself (``READY <port>``)."""
    stdout = child.popen.stdout
    if stdout is None:
        raise BenchError(f"{child.name}: no stdout pipe")
    deadline = time.monotonic() + timeout
    os.set_blocking(stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = stdout.read()
        if chunk:
            buf += chunk
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode()
        if not child.alive():
            raise BenchError(f"{child.name} exited at start:\n{child.log_tail()}")
        time.sleep(0.02)
    raise BenchError(f"{child.name} did not start within {timeout:.0f} s")


def wait_http(child: Child, url: str, timeout: float, ok: Sequence[int] = (200,)) -> None:
    """Poll ``url`` until it answers with one of ``ok``; fail early when the child dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise BenchError(
                f"{child.name} exited (code {child.popen.returncode}) before it was ready:\n"
                f"{child.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status in ok:
                    return
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(f"{child.name} not ready at {url} after {timeout:.0f} s ({last})")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from the ppid field of /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out = [pid]
    i = 0
    while i < len(out):
        out.extend(parents.get(out[i], []))
        i += 1
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the given processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # Fields after the command: state is [0]; utime and stime are 14 and 15 in
        # proc(5) numbering, i.e. [11] and [12] here.
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_mb(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            statm = Path(f"/proc/{pid}/statm").read_text().split()
        except OSError:
            continue
        total += int(statm[1]) * PAGE_SIZE
    return total / (1 << 20)


def core_times(core: int) -> tuple[float, float]:
    """(busy, total) seconds of one CPU core since boot, from /proc/stat. Busy is
    user + system + steal. Left out: time in interrupts, because the run's own
    loopback traffic lands there, charged to no process; and user time of
    niced processes, because background work at low priority yields to the run."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            t = [int(v) for v in line.split()[1:9]]
            t += [0] * (8 - len(t))
            busy = t[0] + t[2] + t[7]
            return busy / CLOCK_TICKS, sum(t) / CLOCK_TICKS
    return 0.0, 0.0


def _own_cpu() -> float:
    """CPU seconds of this process plus its finished children (wrk runs)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class CpuAudit:
    """How much CPU processes outside the run took on the run's cores during
    one cell, so a result disturbed by other work on the machine shows.

    The system under test is pinned to ``system_core``; the fake upstream, wrk
    and this runner to ``load_core``. Busy time on a core (see ``core_times``)
    minus the time of our processes there is someone else's."""

    system_core: int
    load_core: int
    _start: dict[int, tuple[float, float]] = field(default_factory=dict)
    _system: float = 0.0
    _load: float = 0.0

    def begin(self, system_pids: Sequence[int], load_pids: Sequence[int]) -> None:
        self._start = {c: core_times(c) for c in (self.system_core, self.load_core)}
        self._system = cpu_seconds(system_pids)
        self._load = cpu_seconds(load_pids) + _own_cpu()

    def end(self, system_pids: Sequence[int], load_pids: Sequence[int]) -> float:
        """Other processes' CPU time as a percentage of one core."""
        sys_busy, sys_total = self._delta(self.system_core)
        load_busy, load_total = self._delta(self.load_core)
        if sys_total <= 0 or load_total <= 0:
            return 0.0
        foreign_sys = sys_busy - (cpu_seconds(system_pids) - self._system)
        foreign_load = load_busy - (cpu_seconds(load_pids) + _own_cpu() - self._load)
        worst = max(foreign_sys / sys_total, foreign_load / load_total)
        return max(0.0, 100.0 * worst)

    def _delta(self, core: int) -> tuple[float, float]:
        busy, total = core_times(core)
        return busy - self._start[core][0], total - self._start[core][1]


def wait_quiet(cores: Sequence[int], max_wait: float, threshold_pct: float) -> float:
    """Wait (up to ``max_wait`` s) until no core of ``cores`` is busier than
    ``threshold_pct`` over half a second; between cells nothing of ours runs,
    so busy means someone else. Returns the last busiest-core percentage."""
    deadline = time.monotonic() + max_wait
    while True:
        start = {c: core_times(c) for c in cores}
        time.sleep(0.5)
        worst = 0.0
        for c in cores:
            b, t = core_times(c)
            span = t - start[c][1]
            if span > 0:
                worst = max(worst, 100.0 * (b - start[c][0]) / span)
        if worst <= threshold_pct or time.monotonic() >= deadline:
            return worst
