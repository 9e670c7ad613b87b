"""Every bad input to jaxnn.ops raises a ValueError/TypeError that names the argument and the shapes."""

import numpy as np
import pytest

from jaxnn import ops

X = np.random.default_rng(0).standard_normal((2, 5, 6, 4)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((3, 3, 4, 8)).astype(np.float32)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        # wrong rank
        (lambda: ops.conv2d(X[0, 0], W), ValueError, r"x must be \(N, H, W, C\) or \(H, W, C\), got shape \(6, 4\)"),
        (lambda: ops.conv2d(X[None], W), ValueError, r"got shape \(1, 2, 5, 6, 4\)"),
        (lambda: ops.conv2d(X, W[0]), ValueError, r"weight must be \(kh, kw, C // groups, O\), got shape \(3, 4, 8\)"),
        (lambda: ops.max_pool2d(X[0, 0], 2), ValueError, r"x must be .* got shape \(6, 4\)"),
        (lambda: ops.avg_pool2d(X[0, 0, 0], 2), ValueError, r"got shape \(4,\)"),
        # integer input
        (lambda: ops.conv2d(X.astype(np.int32), W), TypeError, r"x must have a floating dtype, got int32"),
        # channels that do not match the kernel
        (
            lambda: ops.conv2d(X[..., :3], W),
            ValueError,
            r"input channels 3 \(x shape \(2, 5, 6, 3\)\) do not match weight \(3, 3, 4, 8\)",
        ),
        # groups that do not divide the channels
        (lambda: ops.conv2d(X, W[:, :, :2], groups=3), ValueError, r"groups=3 does not divide the input channels 4"),
        (lambda: ops.conv2d(X, W[:, :, :2, :6], groups=4), ValueError, r"groups=4 .* do not match|groups=4 does not"),
        (
            lambda: ops.conv2d(X, W[:, :, :2, :7], groups=2),
            ValueError,
            r"groups=2 does not divide the output channels 7",
        ),
        (lambda: ops.conv2d(X, W, groups=0), ValueError, r"groups must be a positive int, got 0"),
        # bias shape
        (lambda: ops.conv2d(X, W, np.zeros(3, np.float32)), ValueError, r"bias must have shape \(8,\), got \(3,\)"),
        # kernel larger than the padded input
        (
            lambda: ops.conv2d(X, np.ones((7, 3, 4, 8), np.float32)),
            ValueError,
            r"kernel_size \(7, 3\) .* larger than the padded input \(5, 6\)",
        ),
        (
            lambda: ops.conv2d(X, W, dilation=3),
            ValueError,
            r"dilated extent \(7, 7\)\) is larger than the padded input \(5, 6\)",
        ),
        (
            lambda: ops.conv2d(X[:, :2, :2], W, padding=(0, 1)),
            ValueError,
            r"larger than the padded input \(2, 4\) \(input \(2, 2\), padding \(\(0, 0\), \(1, 1\)\)\)",
        ),
        (lambda: ops.max_pool2d(X, 7), ValueError, r"kernel_size \(7, 7\) .* larger than the padded input \(5, 6\)"),
        (lambda: ops.avg_pool2d(X, (2, 8)), ValueError, r"larger than the padded input"),
        # stride or dilation below 1, negative padding, bad types
        (lambda: ops.conv2d(X, W, stride=0), ValueError, r"stride must be >= 1, got \(0, 0\)"),
        (lambda: ops.conv2d(X, W, dilation=(1, 0)), ValueError, r"dilation must be >= 1, got \(1, 0\)"),
        (lambda: ops.max_pool2d(X, 2, stride=(0, 1)), ValueError, r"stride must be >= 1"),
        (lambda: ops.max_pool2d(X, 2, dilation=0), ValueError, r"dilation must be >= 1"),
        (lambda: ops.conv2d(X, W, padding=-1), ValueError, r"padding must be >= 0, got \(-1, -1\)"),
        (lambda: ops.conv2d(X, W, stride=1.5), TypeError, r"stride must be an int or a pair of ints, got 1.5"),
        (lambda: ops.max_pool2d(X, (2, 2, 2)), TypeError, r"kernel_size must be an int or a pair of ints"),
        (lambda: ops.conv2d(X, W, padding="full"), ValueError, r"padding must be an int, a pair, 'valid' or 'same'"),
        # 'same' with a stride above 1
        (
            lambda: ops.conv2d(X, W, stride=2, padding="same"),
            ValueError,
            r"padding='same' is only supported with stride 1 .* got stride \(2, 2\)",
        ),
        # pooling padding larger than half the kernel
        (
            lambda: ops.max_pool2d(X, 2, padding=2),
            ValueError,
            r"padding \(2, 2\) must be at most half of kernel_size \(2, 2\)",
        ),
        (lambda: ops.avg_pool2d(X, 3, padding=(0, 2)), ValueError, r"padding \(0, 2\) must be at most half"),
        (lambda: ops.avg_pool2d(X, 2, divisor_override=0), ValueError, r"divisor_override must be a non-zero int"),
        # unpool indices whose shape does not match x, and out-of-range indices
        (
            lambda: ops.max_unpool2d(X[:, :2, :3], np.zeros((2, 2, 3, 3), np.int32), 2),
            ValueError,
            r"indices shape \(2, 2, 3, 3\) does not match x shape \(2, 2, 3, 4\)",
        ),
        (
            lambda: ops.max_unpool2d(X[:, :2, :3], np.zeros((2, 2, 3, 4), np.float32), 2),
            TypeError,
            r"indices must be integers",
        ),
        (
            lambda: ops.max_unpool2d(X[:, :2, :3], np.full((2, 2, 3, 4), 24, np.int32), 2),
            ValueError,
            r"indices must lie in \[0, 24\) for output size \(4, 6\)",
        ),
        (
            lambda: ops.max_unpool2d(X[:, :2, :3], np.zeros((2, 2, 3, 4), np.int32), 2, output_size=(9, 6)),
            ValueError,
            r"output_size \(9, 6\) must be within stride \(2, 2\) of the default \(4, 6\)",
        ),
        # conv_output_size arguments
        (lambda: ops.conv_output_size(10, 3, stride=0), ValueError, r"stride must be >= 1, got 0"),
        (lambda: ops.conv_output_size(10, 3, 1, 1.0), TypeError, r"padding must be an int, got 1.0"),
    ],
)
def test_bad_input_raises_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_conv_output_size_reports_too_small_output():
    assert ops.conv_output_size(2, 5) < 1
