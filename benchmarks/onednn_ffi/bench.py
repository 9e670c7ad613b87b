"""oneDNN's convolution (forward, weight gradient) through jax.ffi against XLA's and PyTorch's, on ResNet-18's
CIFAR-stem shapes at batch 128: milliseconds per call (median of 10) and the largest difference from XLA's result
relative to its largest value. Build first: ``sh benchmarks/onednn_ffi/build.sh``."""

import ctypes
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxnn import runtime

LIB = Path(os.environ.get("ONEDNN_FFI_BUILD", Path(__file__).parent / "build")) / "libonednn_conv.so"
SHAPES = [  # (batch, size, in channels, out channels, kernel, stride, padding)
    (128, 32, 16, 16, 3, 1, 1),
    (128, 32, 64, 64, 3, 1, 1),
    (128, 16, 128, 128, 3, 1, 1),
    (128, 8, 256, 256, 3, 1, 1),
    (128, 32, 64, 128, 3, 2, 1),
]


def conv_xla(x, w, stride, pad):
    layout = ("NHWC", "HWIO", "NHWC")
    return jax.lax.conv_general_dilated(x, w, (stride,) * 2, [(pad, pad)] * 2, dimension_numbers=layout)


def timeit(f, *args, reps=10):
    wait = lambda v: v.block_until_ready() if hasattr(v, "block_until_ready") else v  # noqa: E731
    wait(f(*args))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        wait(f(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main():
    lib = ctypes.cdll.LoadLibrary(str(LIB))
    jax.ffi.register_ffi_target("onednn_conv_fwd", jax.ffi.pycapsule(lib.ConvFwd), platform="cpu")
    jax.ffi.register_ffi_target("onednn_conv_bwd_w", jax.ffi.pycapsule(lib.ConvBwdW), platform="cpu")
    torch.set_num_threads(os.cpu_count())
    options = runtime.compiler_options()
    print("| shape | pass | XLA ms | oneDNN (FFI) ms | PyTorch ms | difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, h, c, o, k, s, p in SHAPES:
        r = np.random.default_rng(0)
        x = jnp.asarray(r.standard_normal((n, h, h, c)), jnp.float32)
        w = jnp.asarray(r.standard_normal((k, k, c, o)) * 0.1, jnp.float32)
        dy = jnp.asarray(r.standard_normal(conv_xla(x, w, s, p).shape), jnp.float32)
        attrs = dict(sh=np.int64(s), sw=np.int64(s), ph=np.int64(p), pw=np.int64(p))
        fwd_xla = jax.jit(lambda x, w: conv_xla(x, w, s, p), compiler_options=options)  # noqa: B023
        fwd_dnnl = jax.jit(
            lambda x, w: jax.ffi.ffi_call("onednn_conv_fwd", jax.ShapeDtypeStruct(dy.shape, x.dtype))(  # noqa: B023
                x,
                w,
                any=np.int64(0),
                **attrs,  # noqa: B023
            )
        )
        bwd_xla = jax.jit(
            lambda x, w, dy: jax.vjp(lambda w: conv_xla(x, w, s, p), w)[1](dy)[0],  # noqa: B023
            compiler_options=options,
        )
        bwd_dnnl = jax.jit(
            lambda x, w, dy: jax.ffi.ffi_call("onednn_conv_bwd_w", jax.ShapeDtypeStruct(w.shape, w.dtype))(
                x,
                dy,
                **attrs,  # noqa: B023
            )
        )
        tx = torch.from_numpy(np.moveaxis(np.asarray(x), -1, 1).copy()).contiguous(memory_format=torch.channels_last)
        tdy = torch.from_numpy(np.moveaxis(np.asarray(dy), -1, 1).copy()).contiguous(memory_format=torch.channels_last)
        tw = torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy())
        torch_fwd = lambda: torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)  # noqa: B023, E731
        torch_bwd = lambda: torch.ops.aten.convolution_backward(  # noqa: E731
            tdy,
            tx,
            tw,
            None,
            [s, s],
            [p, p],
            [1, 1],
            False,
            [0, 0],
            1,
            [False, True, False],  # noqa: B023
        )[1]
        name = f"{n}x{h}x{h}x{c} -> {o}, {k}x{k}/{s}"
        for what, ours, xla, theirs, args in (
            ("forward", fwd_dnnl, fwd_xla, torch_fwd, (x, w)),
            ("weight gradient", bwd_dnnl, bwd_xla, torch_bwd, (x, w, dy)),
        ):
            a, b = np.asarray(xla(*args)), np.asarray(ours(*args))
            diff = np.abs(a - b).max() / np.abs(a).max()
            times = f"{timeit(xla, *args):.1f} | {timeit(ours, *args):.1f} | {timeit(theirs):.1f}"
            print(f"| {name} | {what} | {times} | {diff:.1e} |")


if __name__ == "__main__":
    main()
