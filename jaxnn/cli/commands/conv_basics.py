"""Lab 10-0: convolution basics with jaxnn.ops (PyTorch semantics, NHWC layout).

Shows the output-size formula on a table of cases (including the lab CNN's 28 -> 28 -> 14 -> 14 -> 7 chain),
stride 1 against stride 2, zero padding on a small input, and convolution against cross-correlation with a small
asymmetric kernel, with the flip identity that links them.
"""

import numpy as np

from jaxnn import ops
from jaxnn.cli import flags as cli

SIZE_CASES = [  # (input, kernel, stride, padding, what)
    (227, 11, 4, 0, "AlexNet conv1"),
    (32, 5, 1, 0, "LeNet conv1"),
    (32, 5, 1, 2, "'same' for k=5"),
    (64, 7, 2, 3, "ResNet stem"),
    (5, 3, 1, 0, "small, valid"),
    (5, 3, 2, 0, "small, stride 2"),
    (5, 3, 1, 1, "small, padded"),
]

LAB_CHAIN = [  # lab 10-1: conv(3, p1) -> pool(2) -> conv(3, p1) -> pool(2)
    ("Conv2d(1, 32, 3, padding=1)", 3, 1, 1),
    ("MaxPool2d(2)", 2, 2, 0),
    ("Conv2d(32, 64, 3, padding=1)", 3, 1, 1),
    ("MaxPool2d(2)", 2, 2, 0),
]


def grid(a: np.ndarray) -> str:
    return "\n".join("  " + " ".join(f"{v:6.1f}" for v in row) for row in np.asarray(a))


def main(argv=None) -> None:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--size", type=int, default=5, help="side of the small demo input (default 5)")
    args = parser.parse_args(argv)
    cli.in_range(parser, args, "size", 3, 64, " (the demo kernel is 3x3; the demo prints the input)")

    print("== Output size: floor((n + 2p - d(k-1) - 1) / s) + 1 ==")
    print(f"  {'input':>5} {'kernel':>6} {'stride':>6} {'pad':>3}  ->  out   case")
    for n, k, s, p, what in SIZE_CASES:
        print(f"  {n:>5} {k:>6} {s:>6} {p:>3}  -> {ops.conv_output_size(n, k, s, p):>4}   {what}")

    print("\n== The lab CNN's spatial sizes ==")
    size = 28
    chain = [size]
    for name, k, s, p in LAB_CHAIN:
        size = ops.conv_output_size(size, k, s, p)
        chain.append(size)
        print(f"  {name:<30} -> {size} x {size}")
    print("  chain:", " -> ".join(map(str, chain)))

    n = args.size
    x = np.arange(1, n * n + 1, dtype=np.float32).reshape(n, n)
    ones = np.ones((3, 3, 1, 1), np.float32)
    print(f"\n== Input ({n}x{n}) ==\n{grid(x)}")
    for stride in (1, 2):
        y = ops.conv2d(x[:, :, None], ones, stride=stride)[:, :, 0]
        print(f"\n== 3x3 box sum, stride {stride}: output {y.shape[0]}x{y.shape[1]} ==\n{grid(y)}")

    padded = np.pad(x, 1)
    print(f"\n== Zero padding 1: the kernel sees this ({n + 2}x{n + 2}) ==\n{grid(padded)}")
    y = ops.conv2d(x[:, :, None], ones, padding=1)[:, :, 0]
    print(f"\n== 3x3 box sum, padding 1: output {y.shape[0]}x{y.shape[1]} (same size as the input) ==\n{grid(y)}")

    kernel = np.array([[1, 2, 0], [0, 0, 0], [0, 0, -1]], np.float32)  # asymmetric: the flip matters
    k4 = kernel[:, :, None, None]
    corr = ops.conv2d(x[:, :, None], k4)[:, :, 0]
    conv = ops.convolve2d(x[:, :, None], k4)[:, :, 0]
    flipped = ops.conv2d(x[:, :, None], k4[::-1, ::-1])[:, :, 0]
    print(f"\n== Kernel ==\n{grid(kernel)}")
    print(f"\n== Cross-correlation (what torch.nn.Conv2d and jaxnn.ops.conv2d compute) ==\n{grid(corr)}")
    print(f"\n== Convolution (kernel flipped in both axes: jaxnn.ops.convolve2d) ==\n{grid(conv)}")
    same = np.array_equal(np.asarray(conv), np.asarray(flipped))
    print(f"\n  convolve2d(x, w) == conv2d(x, w[::-1, ::-1]): {same}")
    print(f"  convolve2d(x, w) == conv2d(x, w):             {np.array_equal(np.asarray(conv), np.asarray(corr))}")
