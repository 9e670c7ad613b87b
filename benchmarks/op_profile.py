"""Where a training step's time goes, per operation, on both sides: jaxnn's compiled step (XLA's own trace of each
kernel, through ``jax.profiler``) and PyTorch's eager step (``torch.profiler``), same model, batch and threads as
``benchmarks/run.py``.

    python benchmarks/op_profile.py                       # ResNet-18, VGG-BN, the BatchNorm CNN and the LSTM step
    python benchmarks/op_profile.py --workload ResNet-18 --top 20
    python benchmarks/op_profile.py --native --workload VGG-BN   # jaxnn on its native kernels (jaxnn.runtime)

jaxnn's kernels are grouped by what they compute, read off the optimised program: the convolutions (forward, and
the input and weight gradients), the matrix products, the reductions (BatchNorm's statistics, pooling, the
gradients' sums), the elementwise fusions, layout changes (copies and transposes) and the optimizer's update.
PyTorch's operators are grouped by name. Times are milliseconds per step, the mean over the profiled steps.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the benchmark's models and setup)

from jaxnn import native, runtime, train  # noqa: E402
from jaxnn.interop.torch import rnn_params_from_torch  # noqa: E402
from jaxnn.layout import nhwc_to_nchw  # noqa: E402

WORKLOADS = ("ResNet-18", "VGG-BN", "BNCNN", "LSTM")


def setup(name: str):
    """(jitted-step arguments, the compiled jaxnn step, a PyTorch step function) for ``name``."""
    rng = np.random.default_rng(0)
    if name == "LSTM":  # run.py's unmasked LSTM step: B 64, T 100, I 64, H 128, Adam
        x = rng.standard_normal((64, 100, 64)).astype(np.float32)
        target = rng.standard_normal((64, 100, 128)).astype(np.float32)
        torch.manual_seed(0)
        tm = torch.nn.LSTM(64, 128, batch_first=True)
        model = bench.RNN(128, cell="lstm", batch_first=True)
        state = train.create_train_state(model, rnn_params_from_torch(tm.state_dict()), train.adam(1e-3))

        def step(state, x, t):
            def loss_fn(p):
                return jnp.mean((model.apply({"params": p}, x)[0] - t) ** 2)

            loss, grads = jax.value_and_grad(loss_fn)(state.params)
            return state.apply_gradients(grads=grads), loss

        args = (state, jnp.asarray(x), jnp.asarray(target))
        compiled = jax.jit(step, compiler_options=bench.OPTIONS).lower(*args).compile()
        tx, tt = torch.tensor(x), torch.tensor(target)
        opt = torch.optim.Adam(tm.parameters(), 1e-3)

        def torch_step():
            opt.zero_grad()
            ((tm(tx)[0] - tt) ** 2).mean().backward()
            opt.step()

        return args, compiled, torch_step
    if name == "BNCNN":
        tm, _, state = bench.cnn_models("BNCNN")
        batch, size, opt = 100, 28, torch.optim.Adam(tm.parameters(), 1e-3)
    else:
        state, tm, batch = bench.big_net(name)
        size, opt = 32, torch.optim.SGD(tm.parameters(), 0.01, momentum=0.9)
    x = rng.standard_normal((batch, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    jbatch = {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}
    args = (state, jbatch, jax.random.key(0))
    compiled = jax.jit(train.train_step, compiler_options=bench.OPTIONS).lower(*args).compile()
    tm.train()
    tx, ty = torch.tensor(nhwc_to_nchw(x).copy()), torch.tensor(y, dtype=torch.long)
    crit = torch.nn.CrossEntropyLoss()

    def torch_step():
        opt.zero_grad()
        crit(tm(tx), ty).backward()
        opt.step()

    return args, compiled, torch_step


INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+) ([\w\-]+)\(")
OP_NAME = re.compile(r'op_name="([^"]*)"')


def kinds(hlo: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name -> (what it computes, its output shape)."""
    out = {}
    for line in hlo.splitlines():
        m = INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, opcode = m.group(1), m.group(2), m.group(3)
        found = OP_NAME.search(line)
        op_name = found.group(1) if found else ""
        backward = "transpose(" in op_name
        prim = op_name.rsplit("/", 1)[-1]
        if opcode == "convolution" or prim.startswith("conv_general_dilated"):
            kind = "convolution " + ("gradient" if backward else "forward")
        elif opcode == "dot" or prim.startswith("dot_general"):
            kind = "matrix product " + ("backward" if backward else "forward")
        elif opcode in ("copy", "transpose") or name.startswith(("copy", "transpose")):
            kind = "layout (copy, transpose)"
        elif "apply_gradients" in op_name or "/sgd" in op_name or "adam" in op_name.lower():
            kind = "optimizer update"
        elif prim.startswith(("reduce", "argmax")) or "reduce" in name:
            kind = "reduction " + ("backward" if backward else "forward")
        elif opcode == "while":
            kind = "loop control"
        else:
            kind = "elementwise " + ("backward" if backward else "forward")
        out[name] = (kind, shape)
    return out


def profile_jax(args, compiled, steps: int):
    jax.block_until_ready(compiled(*args))
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            for _ in range(steps):
                out = compiled(*args)
            jax.block_until_ready(out)
        trace = next(Path(d).rglob("*.trace.json.gz"))
        events = json.load(gzip.open(trace))["traceEvents"]
    names = kinds(compiled.as_text())
    per_op: dict[str, float] = collections.defaultdict(float)
    for e in events:
        if e.get("ph") == "X" and e["name"] in names:
            per_op[e["name"]] += e["dur"] / 1e3 / steps
    groups: dict[str, float] = collections.defaultdict(float)
    for op, ms in per_op.items():
        groups[names[op][0]] += ms
    total = [e["dur"] / 1e3 / steps for e in events if e.get("name") == "ThunkExecutor::Execute (wait for completion)"]
    return groups, sorted(((ms, op, *names[op]) for op, ms in per_op.items()), reverse=True), sum(total)


def profile_torch(step, steps: int):
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            step()
    rows = prof.key_averages(group_by_input_shape=True)
    top = sorted(((r.self_cpu_time_total / 1e3 / steps, r.key, str(r.input_shapes)[:60]) for r in rows), reverse=True)
    groups: dict[str, float] = collections.defaultdict(float)
    for ms, key, _ in top:
        groups[key] += ms
    total = sum(ms for ms, _, _ in top)
    return groups, top, total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=WORKLOADS, action="append", help="one of %(choices)s (repeatable; all)")
    p.add_argument("--steps", type=int, default=3, help="profiled steps after a warm-up (3)")
    p.add_argument("--top", type=int, default=12, help="single operations listed per side (12)")
    p.add_argument(
        "--native",
        action="store_true",
        help="jaxnn on its native kernels (jaxnn.runtime.use_native_kernels); PyTorch is then profiled first, since "
        "the two share an OpenMP runtime whose threads slow each other once both have run",
    )
    args = p.parse_args(argv)
    if args.native and not runtime.use_native_kernels(True):
        p.error(f"--native: the native kernels are not available ({native.why_not()})")
    torch.set_num_threads(jax.local_device_count() if jax.default_backend() != "cpu" else (torch.get_num_threads()))
    for name in args.workload or WORKLOADS:
        jargs, compiled, torch_step = setup(name)
        if args.native:
            tgroups, ttop, ttotal = profile_torch(torch_step, args.steps)
        jgroups, jtop, jtotal = profile_jax(jargs, compiled, args.steps)
        if not args.native:
            tgroups, ttop, ttotal = profile_torch(torch_step, args.steps)
        kernels = sum(jgroups.values())
        print(
            f"\n### {name}: ms per step: jaxnn {jtotal:.1f} (the executor's wall time; {kernels:.1f} in kernels, "
            f"{jtotal - kernels:.1f} between them), PyTorch {ttotal:.1f} (the operators' self time)"
        )
        print("\njaxnn by kind:")
        for kind, ms in sorted(jgroups.items(), key=lambda kv: -kv[1]):
            print(f"  {ms:8.2f}  {kind}")
        print("jaxnn's largest kernels:")
        for ms, op, kind, shape in jtop[: args.top]:
            print(f"  {ms:8.2f}  {op} ({kind}, {shape})")
        print("PyTorch by operator:")
        for key, ms in sorted(tgroups.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {ms:8.2f}  {key}")
        print("PyTorch's largest operators by input shape:")
        for ms, key, shapes in ttop[: args.top]:
            print(f"  {ms:8.2f}  {key} {shapes}")


if __name__ == "__main__":
    main()
