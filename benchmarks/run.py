"""jaxnn against PyTorch on the lab workloads, in one process, alternating runs; writes benchmarks/RESULTS.md.

    python benchmarks/run.py                 # every workload, 5 repetitions
    python benchmarks/run.py --quick         # fewer steps, 3 repetitions (a smoke run)

Workloads (same model, batch, data and thread count on both sides):
  - MnistCNN and DeepCNN training steps at batch 100 (images/s), with the achieved FLOP/s as a fraction of this
    machine's fp32 matrix-multiply peak (measured here, in the same run, with a large jnp.dot);
  - MnistCNN evaluation at batch 1000 (images/s);
  - hihello and longseq: 100 Adam steps (steady state; and end to end for jaxnn, compilation included);
  - LSTM (with lengths, against the packed path, and without) and GRU training steps, with the forward alone;
  - ResNet-18 and VGG-BN training steps on 32x32 inputs; on a GPU, lab 10-1 end to end with the data on the device;
  - compile time of each jitted function.
Each repetition times a block of steps after a warm-up; the table shows medians with min/max over repetitions.
With the native kernels built, each big net and RNN step gets a native row: jaxnn on them against PyTorch, each side
in a worker process of its own, the two taking turns block by block (``native_row``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxnn import layout, native, precision, runtime, train
from jaxnn import nn as jnn
from jaxnn.interop import torch_labs
from jaxnn.interop.torch import char_rnn_params_from_torch, cnn_params_from_torch, rnn_params_from_torch
from jaxnn.labs.char import make_lab, run_lab
from jaxnn.layout import nhwc_to_nchw
from jaxnn.models import RNN, DeepCNN, MnistCNN

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# Before anything starts JAX's backend: each step then reuses the memory of the one before (both sides, one process).
MEMORY_REUSED = runtime.reuse_step_memory()
# jaxnn's CPU compiler options for the CNN steps, as the MNIST recipe compiles them (None on a GPU). The RNN labs'
# compiled loop (train.train_loop) keeps XLA's defaults, as the char recipe runs it.
OPTIONS = runtime.compiler_options()

# On a GPU both sides run there, PyTorch on CUDA; otherwise both on CPU with the same thread count.
GPU = jax.default_backend() == "gpu" and torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")
# The sides a workload times, and what it waits for before each timed block: both sides, without waiting, in the
# bench's own process; one side, waiting for its turn from the bench, in a native row's worker (native_worker).
SIDES = {"jax": True, "torch": True}
TURN = {"wait": lambda: None}


def sync():
    """Wait for PyTorch's queued GPU work (its CUDA calls return before the kernels finish)."""
    if GPU:
        torch.cuda.synchronize()


def conv_flops(h, w, c_in, c_out, k=3):
    return 2 * h * w * c_out * k * k * c_in


def cnn_train_flops_per_image(name: str) -> float:
    """Multiply-adds x2 of one training step per image: forward, input gradient (not for the first conv, whose
    input is data) and weight gradient, for the convolutions and dense layers."""
    if name == "MnistCNN":
        convs = [conv_flops(28, 28, 1, 32), conv_flops(14, 14, 32, 64)]
        dense = [2 * 3136 * 10]
    elif name == "BNCNN":
        convs = [conv_flops(28, 28, 1, 32), conv_flops(14, 14, 32, 64), conv_flops(7, 7, 64, 128)]
        dense = [2 * 2048 * 10]
    else:
        convs = [conv_flops(28, 28, 1, 32), conv_flops(14, 14, 32, 64), conv_flops(7, 7, 64, 128)]
        dense = [2 * 2048 * 625, 2 * 625 * 10]
    return 2 * convs[0] + 3 * sum(convs[1:]) + 3 * sum(dense)


class BNCNN(linen.Module):
    """Lab 10-2's three conv blocks with BatchNorm after each convolution, and one dense layer (a bench model)."""

    @linen.compact
    def __call__(self, x, *, deterministic=True):
        for i, (features, pool_pad) in enumerate(((32, 0), (64, 0), (128, 1))):
            x = jnn.Conv2d(features, 3, padding=1, name=f"conv{i}")(x)
            x = jnn.BatchNorm2d(features, name=f"bn{i}")(x, deterministic=deterministic)
            x = jnn.MaxPool2d(2, 2, padding=pool_pad)(linen.relu(x))
        return jnn.Linear(10, name="fc")(x.reshape(x.shape[0], -1))


class TorchBNCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for c_in, c_out, pool_pad in ((1, 32, 0), (32, 64, 0), (64, 128, 1)):
            layers += [
                torch.nn.Conv2d(c_in, c_out, 3, padding=1),
                torch.nn.BatchNorm2d(c_out),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2, 2, padding=pool_pad),
            ]
        self.features = torch.nn.Sequential(*layers)
        self.fc = torch.nn.Linear(128 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def bn_cnn_variables(tm: TorchBNCNN) -> tuple[dict, dict]:
    """The PyTorch bench model's state_dict as BNCNN's params and batch_stats."""
    sd = {k: v.detach().cpu().numpy() for k, v in tm.state_dict().items()}
    params, stats = {}, {}
    for i, idx in enumerate((0, 4, 8)):
        params[f"conv{i}"] = {
            "kernel": layout.oihw_to_hwio(sd[f"features.{idx}.weight"]),
            "bias": sd[f"features.{idx}.bias"],
        }
        bn = f"features.{idx + 1}"
        params[f"bn{i}"] = {"weight": sd[f"{bn}.weight"], "bias": sd[f"{bn}.bias"]}
        stats[f"bn{i}"] = {k: sd[f"{bn}.{k}"] for k in ("running_mean", "running_var", "num_batches_tracked")}
    params["fc"] = {
        "kernel": layout.chw_flatten_to_hwc(layout.linear_to_dense(sd["fc.weight"]), 128, 4, 4),
        "bias": sd["fc.bias"],
    }
    return params, stats


def timed(fn, reps: int):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


PEAK_N = 8192 if GPU else 2048


def peak_matmul_flops(reps: int) -> float:
    """fp32 matrix-multiply FLOP/s of this machine through XLA: the best of several PEAK_N^3 products."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((PEAK_N, PEAK_N)), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(timed(lambda: f(a).block_until_ready(), reps + 3))
    return 2 * PEAK_N**3 / best


def cnn_models(name: str):
    """(PyTorch model, jaxnn model, jaxnn train state with the PyTorch model's weights) of a CNN workload."""
    torch.manual_seed(0)
    if name == "BNCNN":
        tm = TorchBNCNN()
        params, stats = bn_cnn_variables(tm)
        return tm, BNCNN(), train.create_train_state(BNCNN(), params, train.adam(1e-3), stats)
    tm = torch_labs.CNN() if name == "MnistCNN" else torch_labs.DeepCNN()
    model = MnistCNN() if name == "MnistCNN" else DeepCNN()
    return tm, model, train.create_train_state(model, cnn_params_from_torch(tm.state_dict(), model), train.adam(1e-3))


def cnn_workload(name: str, steps: int, reps: int, batch: int = 100):
    """Returns {'jax': [img/s...], 'torch': [...], 'compile_s': float} for training steps at ``batch``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    tm, model, state = cnn_models(name)
    tm.to(DEVICE)
    # Same parameters and batch: the first losses must agree (a cheap check that both sides run the same model;
    # evaluation mode, without DeepCNN's dropout).
    jbatch = {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}
    with torch.no_grad():
        tx = torch.tensor(nhwc_to_nchw(x).copy(), device=DEVICE)
        torch_loss = torch.nn.CrossEntropyLoss()(tm.eval()(tx), torch.tensor(y, dtype=torch.long, device=DEVICE))
        loss_gap = abs(float(jax.jit(train.eval_step)(state, jbatch)["loss"]) - float(torch_loss))
    tm.train()
    res = classifier_step_timing(state, tm, torch.optim.Adam(tm.parameters(), 1e-3), x, y, steps, reps)
    return {**res, "loss_gap": loss_gap}


# Training steps before a CNN timing starts, on each side: a process's first steps grow the heap to the step's peak
# (runtime.reuse_step_memory keeps it from then on), mapping fresh pages as they go (benchmarks/RESULTS.md).
WARMUP_STEPS = 16


def classifier_step_timing(state, tm, opt, x, y, steps: int, reps: int):
    """Images/s of jaxnn's compiled ``train.train_step`` from ``state`` and of PyTorch's step (``tm`` in training
    mode, cross-entropy, ``opt``) on the same NHWC batch ``x``, labels ``y``: a warm-up, then ``reps`` alternating
    blocks of ``steps`` steps each. Returns ``{'jax': [...], 'torch': [...], 'compile_s': float}``."""
    batch = x.shape[0]
    jbatch = {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}
    key = jax.random.key(0)
    t = time.perf_counter()
    if SIDES["jax"]:
        compiled = jax.jit(train.train_step, compiler_options=OPTIONS).lower(state, jbatch, key).compile()
    compile_s = time.perf_counter() - t
    holder = {"state": state}

    def jax_block():
        s = holder["state"]
        for _ in range(steps):
            s, m = compiled(s, jbatch, key)
        jax.block_until_ready(m)
        holder["state"] = s

    tx = torch.tensor(nhwc_to_nchw(x).copy(), device=DEVICE)
    ty = torch.tensor(y, dtype=torch.long, device=DEVICE)
    crit = torch.nn.CrossEntropyLoss()

    def torch_block():
        for _ in range(steps):
            opt.zero_grad()
            crit(tm(tx), ty).backward()
            opt.step()
        sync()

    blocks = {"jax": jax_block, "torch": torch_block}
    for _ in range(-(-WARMUP_STEPS // steps)):  # warm-up: at least WARMUP_STEPS steps on each side
        for side in blocks:
            if SIDES[side]:
                blocks[side]()
    res = {"jax": [], "torch": [], "compile_s": compile_s}
    for _ in range(reps):  # alternate, so both see the same machine state
        for side in blocks:
            if SIDES[side]:
                TURN["wait"]()
                res[side] += [steps * batch / t for t in timed(blocks[side], 1)]
    return res


def big_net(name: str):
    """Lab 10's big nets on 32x32 grey images, 10 classes: (jaxnn train state with SGD and momentum 0.9, the
    labs' optimizer, from the PyTorch model's weights; the labs' PyTorch model; batch)."""
    from jaxnn.interop.state_dict import from_state_dict
    from jaxnn.models import VGG, BasicBlock, ResNet
    from jaxnn.models.vgg import CFGS

    torch.manual_seed(0)
    if name == "ResNet-18":  # lab 10-6-2's CIFAR stem with ResNet-18's BasicBlock layout
        tm = torch_labs.ResNet(torch_labs.BasicBlock, [2, 2, 2, 2], 10, in_channels=1)
        model, batch, flatten_chw = ResNet(BasicBlock, (2, 2, 2, 2), num_classes=10), 128, None
    else:
        cfg = CFGS["cifar"]  # lab 10-5-2's VGG-BN
        tm = torch_labs.VGG(torch_labs.make_layers(cfg, True, in_channels=1), 10, True)
        model, batch, flatten_chw = VGG(cfg, batch_norm=True, num_classes=10), 64, {"classifier/0": (512, 4, 4)}
    sample = np.zeros((1, 32, 32, 1), np.float32)
    variables = from_state_dict(model, tm.state_dict(), sample, flatten_chw=flatten_chw)
    state = train.create_train_state(
        model, variables["params"], train.sgd(0.01, momentum=0.9), variables.get("batch_stats")
    )
    return state, tm, batch


def big_net_workload(name: str, steps: int, reps: int):
    """A training step (SGD with momentum 0.9, the labs' optimizer; BatchNorm in training mode; VGG's dropout) of
    ResNet-18 with the lab's CIFAR stem at batch 128 or lab 10-5-2's VGG-BN at batch 64, on 32x32 inputs, from the
    same weights on both sides. Images/s."""
    state, tm, batch = big_net(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, 32, 1)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    tm.to(DEVICE)
    tm.train()
    return classifier_step_timing(state, tm, torch.optim.SGD(tm.parameters(), 0.01, momentum=0.9), x, y, steps, reps)


def eval_workload(steps: int, reps: int, batch: int = 1000):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
    torch.manual_seed(0)
    tm = torch_labs.CNN().eval()
    model = MnistCNN()
    state = train.create_train_state(model, cnn_params_from_torch(tm.state_dict(), model), train.adam(1e-3))
    tm.to(DEVICE)
    jx = jnp.asarray(x)
    t = time.perf_counter()
    compiled = jax.jit(train.predict, compiler_options=OPTIONS).lower(state, jx).compile()
    compile_s = time.perf_counter() - t
    tx = torch.tensor(nhwc_to_nchw(x).copy(), device=DEVICE)

    def jax_block():
        for _ in range(steps):
            out = compiled(state, jx)
        out.block_until_ready()

    def torch_block():
        with torch.no_grad():
            for _ in range(steps):
                tm(tx)
        sync()

    jax_block(), torch_block()
    res = {"jax": [], "torch": [], "compile_s": compile_s}
    for _ in range(reps):
        res["jax"] += [steps * batch / t for t in timed(jax_block, 1)]
        res["torch"] += [steps * batch / t for t in timed(torch_block, 1)]
    return res


def rnn_workload(name: str, reps: int, iterations: int = 100):
    """100 Adam steps of the lab (one fixed batch): steady-state steps/s on both sides, and jaxnn's first run
    (tracing and compilation included) in seconds."""
    lab = make_lab(name)
    torch.manual_seed(0)
    v = len(lab.vocab)
    tm = torch.nn.RNN(v, v, batch_first=True) if name != "longseq" else torch_labs.Net(v, v, 2)
    params = char_rnn_params_from_torch(tm.state_dict(), fc="fc" if name == "longseq" else None)
    tm.to(DEVICE)
    t = time.perf_counter()
    run_lab(lab, params=params, iterations=iterations).losses.tolist()
    first_s = time.perf_counter() - t
    # Steady state: one train state (its optimizer is part of the compiled function's identity), many runs.
    state = train.create_train_state(lab.model, params, train.adam(lab.learning_rate))
    batch = {"inputs": jnp.asarray(lab.x), "labels": jnp.asarray(lab.y)}
    key = jax.random.key(0)
    jax.block_until_ready(train.train_loop(state, batch, key, iterations))
    tx = torch.tensor(np.eye(v, dtype=np.float32)[lab.x], device=DEVICE)
    ty = torch.tensor(lab.y, dtype=torch.long, device=DEVICE)
    crit = torch.nn.CrossEntropyLoss()

    def jax_block():
        jax.block_until_ready(train.train_loop(state, batch, key, iterations))

    def torch_block():
        opt = torch.optim.Adam(tm.parameters(), lab.learning_rate)
        for _ in range(iterations):
            opt.zero_grad()
            out = tm(tx)
            out = out[0] if isinstance(out, tuple) else out
            loss = crit(out.reshape(-1, v), ty.view(-1))
            loss.backward()
            opt.step()
        sync()

    torch_block()
    res = {"jax": [], "torch": [], "compile_s": first_s}
    for _ in range(reps):
        res["jax"] += [iterations / t for t in timed(jax_block, 1)]
        res["torch"] += [iterations / t for t in timed(torch_block, 1)]
    return res


def rnn_step_workload(cell: str, lengths: bool, steps: int, reps: int, batch=64, length=100, features=64, hidden=128):
    """One training step (forward, backward, Adam) of a one-layer ``cell`` ('lstm' or 'gru') on a padded batch:
    with ``lengths``, jaxnn's ``seq_lengths`` against PyTorch's pack_padded_sequence -> module ->
    pad_packed_sequence path; without, both sides on the whole batch. Steps/s, and each side's forward alone
    (``fwd_jax``, ``fwd_torch``: the loss with autograd recording, no backward) in ms, for the split."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, length, features)).astype(np.float32)
    target = rng.standard_normal((batch, length, hidden)).astype(np.float32)
    seq = rng.integers(1, length + 1, batch) if lengths else None
    torch.manual_seed(0)
    tm = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(features, hidden, batch_first=True)
    model = RNN(hidden, cell=cell, batch_first=True)
    state = train.create_train_state(model, rnn_params_from_torch(tm.state_dict()), train.adam(1e-3))
    tm.to(DEVICE)

    def loss_fn(params, x, target, seq):
        out, _ = model.apply({"params": params}, x, seq_lengths=seq)
        return jnp.mean((out - target) ** 2)

    def step(state, x, target, seq):
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x, target, seq)
        return state.apply_gradients(grads=grads), loss

    args = (jnp.asarray(x), jnp.asarray(target), None if seq is None else jnp.asarray(seq))
    t = time.perf_counter()
    compiled = jax.jit(step, compiler_options=OPTIONS).lower(state, *args).compile() if SIDES["jax"] else None
    compile_s = time.perf_counter() - t
    forward = jax.jit(loss_fn, compiler_options=OPTIONS).lower(state.params, *args).compile() if SIDES["jax"] else None
    holder = {"state": state}

    def jax_block():
        s = holder["state"]
        for _ in range(steps):
            s, loss = compiled(s, *args)
        jax.block_until_ready(loss)
        holder["state"] = s

    def jax_forward():
        for _ in range(steps):
            loss = forward(state.params, *args)
        jax.block_until_ready(loss)

    tx, tt = torch.tensor(x, device=DEVICE), torch.tensor(target, device=DEVICE)
    tl = None if seq is None else torch.tensor(seq)  # lengths stay on the CPU, as pack_padded_sequence wants them
    opt = torch.optim.Adam(tm.parameters(), 1e-3)

    def torch_loss():
        if tl is None:
            return ((tm(tx)[0] - tt) ** 2).mean()
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, tl, batch_first=True, enforce_sorted=False)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(tm(packed)[0], batch_first=True, total_length=length)
        return ((out - tt) ** 2).mean()

    with torch.no_grad():
        loss_gap = abs(float(torch_loss()) - float(forward(state.params, *args))) if forward else None

    def torch_block():
        for _ in range(steps):
            opt.zero_grad()
            torch_loss().backward()
            opt.step()
        sync()

    def torch_forward():
        for _ in range(steps):
            loss = torch_loss()
        float(loss.detach())

    blocks = {"jax": (jax_block, jax_forward), "torch": (torch_block, torch_forward)}
    for side, (step_block, forward_block) in blocks.items():  # warm-up
        if SIDES[side]:
            step_block(), forward_block()
    res = {"jax": [], "torch": [], "fwd_jax": [], "fwd_torch": [], "compile_s": compile_s, "loss_gap": loss_gap}
    for _ in range(reps):
        for side, (step_block, forward_block) in blocks.items():
            if SIDES[side]:
                TURN["wait"]()
                res[side] += [steps / t for t in timed(step_block, 1)]
                res[f"fwd_{side}"] += [1e3 * t / steps for t in timed(forward_block, 1)]
    return res


BIG_NETS = {
    "ResNet-18": "ResNet-18 (lab 10-6-2's CIFAR stem) training, batch 128, 32x32x1",
    "VGG-BN": "VGG-BN (lab 10-5-2's cfg) training, batch 64, 32x32x1",
}
NATIVE_RNN = {
    "lstm": "LSTM step without lengths (B 64, T 100, I 64, H 128), against torch.nn.LSTM",
    "gru": "GRU step without lengths (B 64, T 100, I 64, H 128), against torch.nn.GRU",
}
NATIVE_MARK = "native rows: "


TURN_MARK = "native worker: my turn"


def native_worker(name: str, side: str, reps: int, steps: int) -> None:
    """One side of one native row (``--native-worker NAME --side jax|torch``), in a process of its own: jaxnn on
    its native kernels, or PyTorch; before each timed block it says so on stdout and waits for ``go`` on stdin
    (:func:`native_row`), then prints its result as one JSON line. Each side has a process because PyTorch's OpenMP
    runtime is the one oneDNN binds to, and two thread pools of one runtime throttle each other's spin-waiting
    (PyTorch's LSTM step measured 2.5x slower after jaxnn's native kernels had run in its process); one pair per
    workload, so that nothing one leaves behind (thread pools, memory) weighs on the next."""
    import json

    SIDES.update(jax=side == "jax", torch=side == "torch")
    TURN["wait"] = _wait_for_turn
    if side == "jax":
        torch.set_num_threads(1)  # PyTorch only builds the weights here
        runtime.use_native_kernels(True)
    else:
        torch.set_num_threads(os.cpu_count() or 1)
    if name in BIG_NETS:
        r = big_net_workload(name, max(2, steps // 10), reps)
    else:
        r = rnn_step_workload(name, False, max(2, steps // 4), reps)
    print(NATIVE_MARK + json.dumps(r), flush=True)


def _wait_for_turn() -> None:
    print(TURN_MARK, flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("native worker: the benchmark stopped before my turn")


def native_row(key: str, reps: int, steps: int) -> dict | None:
    """Both sides of native row ``key``, each in a :func:`native_worker` process, taking turns block by block (the
    jaxnn worker warms up first, then PyTorch's, while the other waits; then one untimed turn each): both sides see
    the same machine state, as in every other row. Returns ``{'jax', 'torch', 'fwd_jax', 'compile_s'}``, or None
    (with a line saying why)."""
    import json
    import subprocess
    import tempfile

    workers = {}

    def next_message(side):
        """'turn' when the worker waits for its next block, its result dict at the end, None if it failed."""
        for line in workers[side][0].stdout:
            if line.startswith(TURN_MARK):
                return "turn"
            if line.startswith(NATIVE_MARK):
                return json.loads(line[len(NATIVE_MARK) :])
        return None

    def failed(side):
        for proc, _ in workers.values():
            proc.kill()
        err = workers[side][1]
        err.seek(0)
        last = err.read().decode(errors="replace").strip().splitlines()[-1:]
        print(f"native row {key} skipped: its {side} worker failed ({last})", flush=True)

    try:
        messages = {}
        for side in ("jax", "torch"):
            cmd = [sys.executable, __file__, "--native-worker", key, "--side", side, "--reps", str(reps + 1)]
            err = tempfile.TemporaryFile()
            proc = subprocess.Popen(
                cmd + ["--steps", str(steps)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
            )
            workers[side] = (proc, err)
            if next_message(side) != "turn":  # set up and warmed up, now waiting
                return failed(side)
        for _ in range(reps + 1):
            for side, (proc, _) in workers.items():
                proc.stdin.write("go\n")
                proc.stdin.flush()
                messages[side] = next_message(side)
                if messages[side] is None:
                    return failed(side)
        if not all(isinstance(m, dict) for m in messages.values()):
            return failed("jax" if not isinstance(messages["jax"], dict) else "torch")
        for proc, _ in workers.values():
            proc.wait()
        mine, theirs = messages["jax"], messages["torch"]
        # The first turn is a warm-up, untimed: the first block in turn follows the other side's whole set-up.
        return {
            "jax": mine["jax"][1:],
            "torch": theirs["torch"][1:],
            "fwd_jax": mine.get("fwd_jax", [])[1:],
            "compile_s": mine["compile_s"],
        }
    finally:
        for proc, err in workers.values():
            if proc.poll() is None:
                proc.kill()
            err.close()


def with_native_rows(rows: list, reps: int, steps: int) -> list:
    """``rows`` with a native row after each of the big nets' and the RNN steps' rows (:func:`native_row`)."""
    whats = {**{BIG_NETS[k]: k for k in BIG_NETS}, **{NATIVE_RNN[k]: k for k in NATIVE_RNN}}
    out = []
    for what, unit, r, note in rows:
        out.append((what, unit, r, note))
        key = whats.get(what)
        if key is None:
            continue
        mine = native_row(key, reps, steps)
        if mine is None:
            continue
        if key in NATIVE_RNN:
            step_ms, fwd_ms = 1e3 / statistics.median(mine["jax"]), statistics.median(mine["fwd_jax"])
            note = f"jaxnn forward {fwd_ms:.1f} ms of a {step_ms:.1f} ms step"
        what = f"{what.split(', against')[0]}, native kernels (jaxnn.runtime.use_native_kernels)"
        note += "; each side in a process of its own, taking turns block by block (PyTorch measured again)"
        out.append((what, unit, mine, note))
        print(out[-1][0], fmt(mine["jax"]), fmt(mine["torch"]), flush=True)
    return out


def rnn_split(r) -> str:
    """'forward F ms of S ms' for each side of an RNN step row."""
    parts = []
    for side, name in (("jax", "jaxnn"), ("torch", "PyTorch")):
        step_ms = 1e3 / statistics.median(r[side])
        parts.append(f"{name} forward {statistics.median(r['fwd_' + side]):.1f} ms of a {step_ms:.1f} ms step")
        parts[-1] += f" (backward and Adam {step_ms - statistics.median(r['fwd_' + side]):.1f} ms)"
    return "; ".join(parts)


def mnist_end_to_end(epochs: int = 15, batch: int = 100, reps: int = 1, limit: int | None = None):
    """Lab 10-1 from start to the last epoch's test accuracy: the MNIST files read and put on the device, MnistCNN
    trained ``epochs`` epochs with Adam(1e-3) at ``batch`` (shuffled each epoch, the last partial batch dropped),
    then the test accuracy. jaxnn runs each epoch as one compiled program (``train.train_loop`` over the epoch's
    shuffled indices); PyTorch indexes its device-resident tensors batch by batch, with no DataLoader (the fastest
    eager form). Compilation is inside jaxnn's time. ``limit``: train on the first images only (a smoke run).
    Returns seconds and test accuracies per side."""
    from jaxnn.data.mnist import default_manual_dir, read_idx

    files = default_manual_dir()

    def load():
        xs, ys = [], []
        for images, labels, n in (
            ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
            ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
        ):
            xs.append(read_idx(files / images, 16, (n, 28, 28, 1)).astype(np.float32) / 255.0)  # the lab's ToTensor
            ys.append(read_idx(files / labels, 8, (n,)).astype(np.int32))
        return (xs[0][:limit], xs[1]), (ys[0][:limit], ys[1])

    def run_jax():
        t = time.perf_counter()
        (xtr, xte), (ytr, yte) = load()
        data = {"inputs": jnp.asarray(xtr), "labels": jnp.asarray(ytr)}
        model = MnistCNN()
        key = jax.random.key(0)
        state = train.create_train_state(model, train.init_params(model, key, data["inputs"][:1]), train.adam(1e-3))
        steps = len(xtr) // batch
        for epoch in range(epochs):
            perm = jax.random.permutation(jax.random.fold_in(key, epoch), len(xtr))[: steps * batch]
            state, _ = train.train_loop(state, data, key, steps, indices=perm.reshape(steps, batch))
        logits = jax.jit(train.predict)(state, jnp.asarray(xte))
        acc = float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(yte)))
        return time.perf_counter() - t, acc

    def run_torch():
        t = time.perf_counter()
        (xtr, xte), (ytr, yte) = load()
        xtr, ytr = torch.tensor(nhwc_to_nchw(xtr).copy(), device=DEVICE), torch.tensor(ytr, device=DEVICE).long()
        torch.manual_seed(0)
        tm = torch_labs.CNN().to(DEVICE)
        opt = torch.optim.Adam(tm.parameters(), 1e-3)
        crit = torch.nn.CrossEntropyLoss()
        steps = len(xtr) // batch
        for _ in range(epochs):
            perm = torch.randperm(len(xtr), device=DEVICE)
            for i in range(steps):
                idx = perm[i * batch : (i + 1) * batch]
                opt.zero_grad()
                crit(tm(xtr[idx]), ytr[idx]).backward()
                opt.step()
        with torch.no_grad():
            pred = tm(torch.tensor(nhwc_to_nchw(xte).copy(), device=DEVICE)).argmax(1).cpu().numpy()
        return time.perf_counter() - t, float(np.mean(pred == yte))

    res = {"jax": [], "torch": [], "acc_jax": [], "acc_torch": []}
    for _ in range(reps):
        for side, fn in (("jax", run_jax), ("torch", run_torch)):
            seconds, acc = fn()
            res[side].append(seconds)
            res["acc_" + side].append(acc)
    return res


def end_to_end(reps: int):
    """Wall seconds of a whole process, start to printed sentence: experiments/longseq.py (compilation cache warm)
    against benchmarks/torch_longseq.py, alternating, after one warm-up run of each."""
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    workdir = Path(tempfile.mkdtemp(prefix="jaxnn-bench-longseq-")) / "run"  # the lab's files: metrics, curves, params
    cmds = {
        "jax": [sys.executable, str(root / "experiments/longseq.py"), "--workdir", str(workdir), "--overwrite"],
        "torch": [sys.executable, str(root / "benchmarks/torch_longseq.py")],
    }
    res = {"jax": [], "torch": []}
    for cmd in cmds.values():
        subprocess.run(cmd, check=True, capture_output=True)
    for _ in range(reps):
        for side, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            res[side].append(time.perf_counter() - t)
    shutil.rmtree(workdir.parent)  # this benchmark's own temporary folder
    return res


def fmt(values, unit_fmt="{:,.0f}"):
    return (
        f"{unit_fmt.format(statistics.median(values))} ({unit_fmt.format(min(values))}-{unit_fmt.format(max(values))})"
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores; {jax.devices()[0].device_kind} ({jax.default_backend()})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="repetitions of each timing (5)")
    p.add_argument("--steps", type=int, default=20, help="training steps per CNN timing block (20)")
    p.add_argument("--quick", action="store_true", help="3 repetitions of 5 steps: a smoke run")
    p.add_argument(
        "--output",
        default=str(RESULTS),
        help="Markdown file whose section for this backend (cpu or gpu) is (re)written (benchmarks/RESULTS.md)",
    )
    p.add_argument("--native-worker", metavar="NAME", help=argparse.SUPPRESS)  # see native_worker
    p.add_argument("--side", choices=("jax", "torch"), default="jax", help=argparse.SUPPRESS)  # see native_worker
    args = p.parse_args(argv)
    reps, steps = (3, 5) if args.quick else (args.reps, args.steps)
    if args.native_worker:
        return native_worker(args.native_worker, args.side, reps, steps)
    torch.set_num_threads(os.cpu_count() or 1)  # XLA's CPU backend uses every core too
    if GPU:  # full fp32 on both sides: no TF32 in matrix products or convolutions (PyTorch's cuDNN allows it)
        precision.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    peak = peak_matmul_flops(reps)
    print(f"peak fp32 matmul: {peak / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    for name in ("MnistCNN", "DeepCNN", "BNCNN"):
        r = cnn_workload(name, steps, reps)
        flops = cnn_train_flops_per_image(name) * statistics.median(r["jax"])
        rows.append(
            (
                f"{name} training, batch 100"
                + (" (lab 10-2's convolutions, BatchNorm after each)" * (name == "BNCNN")),
                "images/s",
                r,
                f"{flops / 1e9:.0f} GFLOP/s = {flops / peak:.0%} of peak; first loss differs by {r['loss_gap']:.1e}",
            )
        )
        print(rows[-1][0], fmt(r["jax"]), fmt(r["torch"]), flush=True)
    for name, what in BIG_NETS.items():
        r = big_net_workload(name, max(2, steps // 10), reps)
        rows.append((what, "images/s", r, "SGD with momentum on both sides; BatchNorm in training mode"))
        print(rows[-1][0], fmt(r["jax"]), fmt(r["torch"]), flush=True)
    r = eval_workload(max(2, steps // 4), reps)
    rows.append(("MnistCNN evaluation, batch 1000", "images/s", r, ""))
    print(rows[-1][0], fmt(r["jax"]), fmt(r["torch"]), flush=True)
    for name in ("hihello", "longseq"):
        r = rnn_workload(name, reps)
        rows.append(
            (
                f"{name}, 100 Adam steps",
                "steps/s",
                r,
                f"first run incl. compilation {r['compile_s']:.2f} s = {100 / r['compile_s']:.0f} steps/s",
            )
        )
        print(rows[-1][0], fmt(r["jax"]), fmt(r["torch"]), flush=True)

    rnn = {}
    for cell, lengths, what in (
        (
            "lstm",
            True,
            "LSTM step on a padded batch with lengths (B 64, T 100, I 64, H 128), against PyTorch's packed path",
        ),
        ("lstm", False, "LSTM step without lengths (B 64, T 100, I 64, H 128), against torch.nn.LSTM"),
        ("gru", False, "GRU step without lengths (B 64, T 100, I 64, H 128), against torch.nn.GRU"),
    ):
        r = rnn[cell, lengths] = rnn_step_workload(cell, lengths, max(2, steps // 4), reps)
        note = f"{rnn_split(r)}; first loss differs by {r['loss_gap']:.1e}"
        if (cell, lengths) == ("lstm", False):
            mask_cost = statistics.median(r["jax"]) / statistics.median(rnn["lstm", True]["jax"]) - 1
            note += f"; jaxnn's mask (the row above) costs {mask_cost:.0%}"
        rows.append((what, "steps/s", r, note))
        print(rows[-1][0], fmt(r["jax"]), fmt(r["torch"]), rows[-1][3], flush=True)
    if native.available() and not GPU:
        rows = with_native_rows(rows, reps, steps)

    # The lab's PyTorch script runs on the CPU whatever the machine, so end to end is a CPU comparison only.
    e2e = None if GPU else end_to_end(reps)
    if e2e:
        print("longseq end to end", fmt(e2e["jax"], "{:.2f}"), fmt(e2e["torch"], "{:.2f}"), flush=True)
    # Lab 10-1's whole run with the data on the device: a GPU row (on 2 CPU cores it is `make run`'s business).
    mnist = mnist_end_to_end(epochs=1 if args.quick else 15) if GPU else None
    if mnist:
        print("lab 10-1 end to end", fmt(mnist["jax"], "{:.1f}"), fmt(mnist["torch"], "{:.1f}"), flush=True)

    backend = "gpu" if GPU else "cpu"
    lines = [
        f"<!-- section: {backend} -->",
        f"## {backend.upper()}",
        "",
        f"Written by `make bench` (`benchmarks/run.py{' --quick' if args.quick else ''}`) on "
        f"{datetime.date.today().isoformat()}.",
        "",
        f"- machine: {machine()}",
        f"- versions: Python {platform.python_version()}, jax {jax.__version__}, "
        f"jaxlib {jax.lib.__version__ if hasattr(jax.lib, '__version__') else jax.__version__}, "
        f"torch {torch.__version__} "
        + (
            f"on {torch.cuda.get_device_name()}, full fp32 on both sides (TF32 off)"
            if GPU
            else f"({torch.get_num_threads()} threads)"
        ),
        f"- peak fp32 matrix multiply (XLA, {PEAK_N}^3, best of {reps + 3}): {peak / 1e9:,.0f} GFLOP/s",
        f"- {reps} alternating repetitions per workload; median (min-max)",
        "- memory: "
        + (
            "each step reuses the one before's (`jaxnn.runtime.reuse_step_memory`)"
            if MEMORY_REUSED
            else "glibc's and JAX's defaults"
        ),
        "",
        "| workload | unit | jaxnn | PyTorch (eager) | jaxnn / PyTorch | compile (jaxnn) | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for title, unit, r, note in rows:
        ratio = statistics.median(r["jax"]) / statistics.median(r["torch"])
        lines.append(
            f"| {title} | {unit} | {fmt(r['jax'])} | {fmt(r['torch'])} | {ratio:.2f}x | "
            f"{r['compile_s']:.2f} s | {note} |"
        )
    if e2e:
        ratio = statistics.median(e2e["torch"]) / statistics.median(e2e["jax"])
        lines.append(
            f"| longseq lab end to end (process start to printed sentence) | s | "
            f"{fmt(e2e['jax'], '{:.2f}')} | {fmt(e2e['torch'], '{:.2f}')} | {ratio:.2f}x faster | cache warm "
            f"| experiments/longseq.py (includes generation) against benchmarks/torch_longseq.py |"
        )
    if mnist:
        ratio = statistics.median(mnist["torch"]) / statistics.median(mnist["jax"])
        lines.append(
            f"| lab 10-1 end to end ({1 if args.quick else 15} epochs, start to test accuracy, data on the device) "
            "| s | "
            f"{fmt(mnist['jax'], '{:.1f}')} | {fmt(mnist['torch'], '{:.1f}')} | {ratio:.2f}x faster | included "
            f"| test accuracy jaxnn {mnist['acc_jax'][-1]:.4f}, PyTorch {mnist['acc_torch'][-1]:.4f}; jaxnn: one "
            f"compiled `lax.scan` per epoch; PyTorch: device tensors indexed per batch |"
        )
    lines += ["", "Compile for the RNN labs is the first whole 100-step run (tracing, compilation and running).", ""]
    write_section(Path(args.output), backend, lines)
    print("\n".join(lines))


def write_section(path: Path, backend: str, lines: list[str]) -> None:
    """Replace this backend's section of ``path`` (from its marker to the next marker), keeping the others (the
    other backend's, and hand-written ones such as the history)."""
    sections = {}
    if path.exists():
        for chunk in path.read_text().split("<!-- section: ")[1:]:
            name = chunk.split(" -->", 1)[0]
            sections[name] = "<!-- section: " + chunk.rstrip("\n") + "\n"
    sections[backend] = "\n".join(lines)
    head = (
        "# Benchmarks: jaxnn against PyTorch\n\nOne section per backend; `make bench` rewrites the one it runs on.\n\n"
    )
    order = [k for k in ("cpu", "gpu") if k in sections] + [k for k in sections if k not in ("cpu", "gpu")]
    path.write_text(head + "\n".join(sections[k] for k in order))


if __name__ == "__main__":
    sys.exit(main())
