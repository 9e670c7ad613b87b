"""Lab 10-0: pooling with jaxnn.ops (PyTorch semantics, NHWC layout).

Max against average pooling, then every MaxPool2d argument: the stride default (= kernel_size), padding (with -inf),
dilation, ceil_mode, and return_indices with max_unpool2d.
"""

import numpy as np

from jaxnn import ops
from jaxnn.cli import flags as cli


def grid(a) -> str:
    a = np.asarray(a)
    fmt = (lambda v: f"{v:5d}") if np.issubdtype(a.dtype, np.integer) else (lambda v: f"{v:5.1f}")
    return "\n".join("  " + " ".join(fmt(v) for v in row) for row in a)


def show(title: str, y) -> None:
    y = np.asarray(y)
    print(f"\n== {title}: {y.shape[0]}x{y.shape[1]} ==\n{grid(y)}")


def main(argv=None) -> None:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--size", type=int, default=5, help="side of the demo input (default 5, at least 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the demo input")
    args = parser.parse_args(argv)
    cli.in_range(parser, args, "size", 4, 64, " (2x2 windows with dilation 2; the demo prints the input)")
    cli.seed_in_range(parser, args)

    n = args.size
    x = np.random.default_rng(args.seed).integers(0, 10, size=(n, n)).astype(np.float32)
    x3 = x[:, :, None]
    show("Input", x)
    show("max_pool2d(kernel_size=2) (stride defaults to kernel_size)", ops.max_pool2d(x3, 2)[:, :, 0])
    show("avg_pool2d(kernel_size=2)", ops.avg_pool2d(x3, 2)[:, :, 0])
    show("max_pool2d(kernel_size=2, stride=1) (overlapping windows)", ops.max_pool2d(x3, 2, 1)[:, :, 0])
    show("max_pool2d(kernel_size=3, stride=2, padding=1) (pads with -inf)", ops.max_pool2d(x3, 3, 2, 1)[:, :, 0])
    show("avg_pool2d(3, 2, padding=1) counting the zero padding", ops.avg_pool2d(x3, 3, 2, 1)[:, :, 0])
    show(
        "avg_pool2d(3, 2, padding=1, count_include_pad=False)",
        ops.avg_pool2d(x3, 3, 2, 1, count_include_pad=False)[:, :, 0],
    )
    show(
        "max_pool2d(kernel_size=2, stride=1, dilation=2) (taps two apart)",
        ops.max_pool2d(x3, 2, 1, dilation=2)[:, :, 0],
    )
    floor_out = ops.conv_output_size(n, 2, 2, ceil_mode=False)
    ceil_out = ops.conv_output_size(n, 2, 2, ceil_mode=True)
    print(f"\n  ceil_mode: output size {floor_out} (floor) against {ceil_out} (ceil) for input {n}, kernel 2, stride 2")
    show(
        "max_pool2d(kernel_size=2, ceil_mode=True) (keeps the partial last window)",
        ops.max_pool2d(x3, 2, ceil_mode=True)[:, :, 0],
    )
    values, indices = ops.max_pool2d(x3, 2, return_indices=True)
    show("return_indices=True: flat positions h * W + w of each maximum", indices[:, :, 0])
    unpooled = ops.max_unpool2d(values, indices, 2, output_size=(n, n))
    show("max_unpool2d(values, indices, 2): maxima back in place, zeros elsewhere", unpooled[:, :, 0])
