"""Build jaxnn's optional native CPU kernels: native/*.cc, oneDNN's convolutions and matrix product and an RNN time
loop as jax.ffi handlers, into jaxnn/_native/libjaxnn_native.so. `make` runs it after installing jaxnn; nothing
else needs it.

oneDNN comes from the package index (onednn-cpu-gomp and its headers, oneDNN 3.2 on GNU OpenMP: no runtime but
libgomp), installed into the running interpreter's environment; the compiler is the system's (``--cxx``). Whatever
fails (no compiler, no network, a compile error) ends in one line saying so and exit code 0: jaxnn then runs on
its XLA path, which is the reference anyway.

    python native/build.py [--cxx g++] [--out PATH] [--fail]   # --fail: act as if the build failed (a test)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "native").glob("*.cc"))
TARGET = ROOT / "jaxnn" / "_native" / "libjaxnn_native.so"
ONEDNN = ["onednn-cpu-gomp==2023.2.0", "onednn-devel-cpu-gomp==2023.2.0"]


class BuildError(Exception):
    pass


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f"{what}: {e.strerror} ({cmd[0]})") from e
    if done.returncode:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise BuildError(f"{what} failed: {last[0][:200]}")


def build(cxx: str, target: Path = TARGET) -> Path:
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise BuildError(f"the native kernels are built for x86_64 Linux only, not {sys.platform}/{os.uname().machine}")
    _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *ONEDNN], "installing oneDNN")
    prefix = Path(sysconfig.get_paths()["data"])
    include, lib = prefix / "include", prefix / "lib"
    if not (include / "oneapi" / "dnnl" / "dnnl.hpp").exists() or not (lib / "libdnnl.so.3").exists():
        raise BuildError(f"oneDNN's headers or library are not under {prefix}")
    import jax

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".so.partial")  # never a half-written library where jaxnn looks for one
    flags = ["-O3", "-march=native", "-fno-trapping-math", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-w"]
    includes = [f"-I{jax.ffi.include_dir()}", f"-I{include}"]
    links = [f"-L{lib}", "-l:libdnnl.so.3", f"-Wl,-rpath,{lib}"]
    names = ", ".join(source.name for source in SOURCES)
    _run([cxx, *flags, *includes, *map(str, SOURCES), "-o", str(partial), *links], f"compiling {names}")
    partial.replace(target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cxx", default="g++", help="the C++ compiler")
    parser.add_argument("--out", type=Path, default=TARGET, help="the library to write")
    parser.add_argument("--fail", action="store_true", help="act as if the build failed")
    args = parser.parse_args(argv)
    try:
        if args.fail:
            raise BuildError("--fail given")
        print(f"jaxnn: native kernels built: {build(args.cxx, args.out)}")
    except BuildError as e:
        args.out.unlink(missing_ok=True)  # an older build of other sources is not left behind
        print(f"jaxnn: native kernels not built ({e}); jaxnn runs on its XLA path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
