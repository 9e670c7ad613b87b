"""``ops.conv2d`` on XLA's path and on jaxnn's native oneDNN kernels (``make`` builds them), against PyTorch's
``F.conv2d``: milliseconds per forward and per backward (the input and weight gradients, from the output's
gradient) on ResNet-18's CIFAR-stem
shapes at batch 128 (medians of 10), and the largest difference of the native results from XLA's, relative to
XLA's largest value.

    python benchmarks/conv_paths.py
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxnn import native, ops, runtime

SHAPES = [  # (batch, size, in channels, out channels, kernel, stride, padding)
    (128, 32, 16, 16, 3, 1, 1),
    (128, 32, 64, 64, 3, 1, 1),
    (128, 16, 128, 128, 3, 1, 1),
    (128, 8, 256, 256, 3, 1, 1),
    (128, 32, 64, 128, 3, 2, 1),
    (128, 32, 64, 128, 1, 2, 0),
]


def median_ms(f, reps=10):
    def run():
        out = f()
        return out if isinstance(jax.tree.leaves(out)[0], torch.Tensor) else jax.block_until_ready(out)

    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def jaxnn_fns(stride, padding):
    """Jitted forward and backward of conv2d, traced on the path the runtime switch has now."""
    options = runtime.compiler_options()
    forward = jax.jit(lambda x, w: ops.conv2d(x, w, stride=stride, padding=padding), compiler_options=options)

    def backward(x, w, dy):
        return jax.vjp(lambda x, w: ops.conv2d(x, w, stride=stride, padding=padding), x, w)[1](dy)

    return forward, jax.jit(backward, compiler_options=options)


def main():
    if not native.available():
        raise SystemExit(f"native kernels: {native.why_not()}")
    torch.set_num_threads(os.cpu_count())
    print("| shape (N x H x W x C -> O, kernel/stride) | pass | XLA ms | native ms | PyTorch ms | native vs XLA |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, h, c, o, k, s, p in SHAPES:
        r = np.random.default_rng(0)
        x = jnp.asarray(r.standard_normal((n, h, h, c)), jnp.float32)
        w = jnp.asarray(r.standard_normal((k, k, c, o)) * 0.1, jnp.float32)
        dy = jnp.asarray(r.standard_normal(ops.conv2d(x[:1], w, stride=s, padding=p).shape[1:]), jnp.float32)
        dy = jnp.broadcast_to(dy, (n, *dy.shape))
        tx = torch.from_numpy(np.moveaxis(np.asarray(x), -1, 1).copy()).contiguous(memory_format=torch.channels_last)
        tw = torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy())
        tdy = torch.from_numpy(np.moveaxis(np.asarray(dy), -1, 1).copy()).contiguous(memory_format=torch.channels_last)

        def torch_forward(tx=tx, tw=tw, s=s, p=p):
            with torch.no_grad():
                return torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)

        def torch_backward(tx=tx, tw=tw, tdy=tdy, s=s, p=p):  # the input and weight gradients autograd runs
            grads = torch.ops.aten.convolution_backward(
                tdy, tx, tw, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, [True, True, False]
            )
            return grads[:2]

        name = f"{n}x{h}x{h}x{c} -> {o}, {k}x{k}/{s}"
        results, times = {}, {}
        for path in (False, True):  # the switch is part of the jit cache key: on while its programs run
            runtime.use_native_kernels(path)
            for index, args in enumerate(((x, w), (x, w, dy))):
                f = jaxnn_fns(s, p)[index]
                results[path, index] = jax.tree.leaves(f(*args))
                times[path, index] = median_ms(lambda f=f, args=args: f(*args))
        runtime.use_native_kernels(False)
        for index, (what, theirs) in enumerate((("forward", torch_forward), ("backward", torch_backward))):
            pairs = zip(results[False, index], results[True, index], strict=True)
            diff = max(float(np.abs(u - v).max() / np.abs(u).max()) for u, v in pairs)
            row = f"{times[False, index]:.1f} | {times[True, index]:.1f} | {median_ms(theirs):.1f}"
            print(f"| {name} | {what} | {row} | {diff:.1e} |")


if __name__ == "__main__":
    main()
