#!/bin/sh
# Issue 30's first measurement: oneDNN's convolution forward and weight gradient as jax.ffi handlers, against XLA's
# and PyTorch's. Not part of jaxnn yet (nothing imports it). Needs g++, network access to the package index and
# the project's venv:  sh benchmarks/onednn_ffi/build.sh && .venv/bin/python benchmarks/onednn_ffi/bench.py
# onednn-cpu-gomp 2023.2.0 (oneDNN 3.2, GNU OpenMP) needs nothing but libgomp; the newer `onednn` wheel (2026.1)
# is built for TBB and SYCL and needs Intel's runtime wheels beside it.
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${ONEDNN_FFI_BUILD:-$here/build}
mkdir -p "$out"
.venv/bin/pip download -q --no-deps -d "$out/wheels" onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0
for w in "$out"/wheels/*.whl; do .venv/bin/python -m zipfile -e "$w" "$out/x"; done
include=$(.venv/bin/python -c "import jax; print(jax.ffi.include_dir())")
lib="$out/x/onednn_cpu_gomp-2023.2.0.data/data/lib"
g++ -O2 -std=c++17 -shared -fPIC -w -I"$include" -I"$out/x/onednn_devel_cpu_gomp-2023.2.0.data/data/include" \
  "$here/conv.cc" -o "$out/libonednn_conv.so" -L"$lib" -l:libdnnl.so.3 -Wl,-rpath,"$lib"
echo "built $out/libonednn_conv.so"
