"""PyTorch's accept/refuse edges, each answered as PyTorch answers it or, where PyTorch's answer cannot be given, with
a clear error: empty channels, batches and splits, one value per channel, bare None sizes, 3-D Dropout2d input,
mixed precision, state_dict names that name nothing, labels out of range, float indices, nested image folders."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxnn import ops, train
from jaxnn.data.image_folder import ImageFolder
from jaxnn.data.text import Vocab
from jaxnn.interop import torch_labs
from jaxnn.interop.state_dict import from_state_dict, to_state_dict
from jaxnn.labs import seq2seq
from jaxnn.models import VGG, MnistCNN
from jaxnn.nn import BatchNorm1d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout2d, Linear
from jaxnn.testing import assert_close

# --- convolutions with no input channels -------------------------------------------------------------------------


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_conv2d_with_no_input_channels_is_its_bias(padding_mode):
    # A sum over no channels is 0, so the output is the bias, of the shape the kernel and padding give.
    # (PyTorch 2.13 on the CPU returns an empty (N, 0, Ho, Wo) there, and raises when gradients are asked for.)
    b = jnp.array([1.0, -2.0, 3.0])
    x, w = jnp.ones((2, 5, 6, 0)), jnp.ones((3, 3, 0, 3))
    y, vjp = jax.vjp(lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1, padding_mode=padding_mode), x, w, b)
    assert y.shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(y, np.broadcast_to(b, y.shape))
    g = jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape)
    gx, gw, gb = vjp(g)
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_array_equal(gb, g.sum((0, 1, 2)))
    np.testing.assert_array_equal(ops.conv2d(x, w), np.zeros((2, 3, 4, 3)))  # no bias: zeros
    with torch.no_grad():
        assert F.conv2d(torch.ones(2, 0, 5, 6), torch.ones(3, 0, 3, 3), torch.tensor(np.asarray(b))).shape[1] == 0


def test_conv1d_with_no_input_channels_is_its_bias():
    y = ops.conv1d(jnp.ones((2, 7, 0)), jnp.ones((2, 0, 4)), jnp.arange(4.0))
    np.testing.assert_array_equal(y, np.broadcast_to(np.arange(4.0), (2, 6, 4)))


def test_pooling_still_refuses_no_channels():
    with pytest.raises(ValueError, match=r"non-zero height, width and channels, got shape \(1, 4, 4, 0\)"):
        ops.max_pool2d(jnp.ones((1, 4, 4, 0)), 2)
    with pytest.raises(RuntimeError):  # PyTorch refuses it too
        F.max_pool2d(torch.ones(1, 0, 4, 4), 2)


# --- BatchNorm ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ours, theirs, shape, torch_shape",
    [
        (BatchNorm1d, torch.nn.BatchNorm1d, (1, 3), (1, 3)),
        (BatchNorm2d, torch.nn.BatchNorm2d, (1, 1, 1, 3), (1, 3, 1, 1)),
    ],
)
def test_batch_statistics_of_one_value_are_refused_in_eval_too(ours, theirs, shape, torch_shape):
    # Without running statistics, eval normalises with the batch's: one value per channel is refused, as PyTorch does
    bn = ours(3, track_running_stats=False)
    variables = bn.init(jax.random.key(0), jnp.ones((4, *shape[1:])))
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        bn.apply(variables, jnp.ones(shape))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        theirs(3, track_running_stats=False).eval()(torch.ones(torch_shape))
    bn = ours(3)  # with running statistics, eval takes one value
    assert bn.apply(bn.init(jax.random.key(0), jnp.ones((4, *shape[1:]))), jnp.ones(shape)).shape == shape


@pytest.mark.parametrize("momentum", [0.1, None])
def test_an_empty_training_batch_is_taken_as_pytorch_takes_it(momentum):
    tm = torch.nn.BatchNorm2d(3, momentum=momentum).train()
    with torch.no_grad():
        tm.running_mean.fill_(0.5)
        tm.running_var.fill_(2.0)
    bn = BatchNorm2d(3, momentum=momentum)
    variables = from_state_dict(bn, tm.state_dict(), jnp.ones((2, 4, 4, 3)))
    x = jnp.ones((0, 4, 4, 3))
    (y, updates), vjp = jax.vjp(
        lambda p: bn.apply({**variables, "params": p}, x, deterministic=False, mutable=["batch_stats"]),
        variables["params"],
    )
    ty = tm(torch.ones(0, 3, 4, 4, requires_grad=True))
    ty.sum().backward()
    assert y.shape == (0, 4, 4, 3)
    ours = to_state_dict(bn, updates, jnp.ones((2, 4, 4, 3)))
    assert set(ours) == {"running_mean", "running_var", "num_batches_tracked"}
    for key, value in ours.items():
        assert_close(value, tm.state_dict()[key], what=key)  # statistics unchanged, num_batches_tracked counted
    (grads,) = vjp((jnp.zeros_like(y), jax.tree.map(jnp.zeros_like, updates)))
    np.testing.assert_array_equal(grads["weight"], tm.weight.grad.numpy())


# --- pooling sizes and Dropout2d ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_pooling_refuses_a_bare_none_as_pytorch(op):
    with pytest.raises(TypeError):
        getattr(F, op)(torch.ones(1, 2, 4, 4), None)
    with pytest.raises(TypeError, match=rf"{op}: output_size must be an int or a pair \(None only for one"):
        getattr(ops, op)(jnp.ones((1, 4, 4, 2)), None)
    assert getattr(ops, op)(jnp.ones((1, 4, 4, 2)), (None, 2)).shape == (1, 4, 2, 2)  # None per dimension: fine


def test_dropout2d_on_3d_input_drops_whole_channels_per_sample_as_pytorch():
    x = jnp.ones((16, 5, 6))  # (N, L, C): PyTorch 2.13's (N, C, L), one draw per (n, c)
    y = Dropout2d(0.5).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
    per_channel = np.asarray(y).transpose(0, 2, 1).reshape(16 * 6, 5)
    assert all(len(set(row)) == 1 for row in per_channel.tolist())  # each (n, c) all kept (2.0) or all dropped
    assert set(per_channel[:, 0].tolist()) == {0.0, 2.0}
    with pytest.warns(UserWarning, match=r"interpreted as shape \(N, C, L\)"):
        t = torch.nn.Dropout2d(0.5).train()(torch.ones(16, 6, 5))
    assert all(len(set(row)) == 1 for row in t.reshape(16 * 6, 5).tolist())


# --- mixed precision: one rule, promotion ------------------------------------------------------------------------


@pytest.mark.parametrize("low", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize(
    "layer, shape",
    [
        (Conv2d(4, 3, padding=1), (2, 5, 5, 3)),
        (ConvTranspose2d(4, 3, stride=2), (2, 5, 5, 3)),
        (Linear(4), (2, 3)),
        (BatchNorm2d(3), (2, 5, 5, 3)),
    ],
)
def test_low_precision_input_with_float32_parameters_computes_in_float32(layer, shape, low):
    x32 = jax.random.normal(jax.random.key(1), shape)
    x = x32.astype(low)
    variables = layer.init(jax.random.key(0), x32)
    y = layer.apply(variables, x)
    assert y.dtype == jnp.float32  # promoted, as Flax's layers and jaxnn's RNN do (PyTorch refuses the mixed call)
    np.testing.assert_array_equal(y, layer.apply(variables, x.astype(jnp.float32)))


def test_the_ops_promote_too():
    x, w = jnp.ones((1, 4, 4, 3), jnp.float16), jnp.ones((3, 3, 3, 4))
    assert ops.conv2d(x, w).dtype == jnp.float32 and ops.conv2d(x, w.astype(jnp.float16)).dtype == jnp.float16
    assert ops.conv_transpose2d(x, w).dtype == jnp.float32


# --- state_dict names --------------------------------------------------------------------------------------------


def _lab_cnn_state():
    torch.manual_seed(0)
    return torch_labs.CNN().state_dict(), jnp.ones((1, 28, 28, 1))


RENAME = {"layer1/conv": "layer1.0", "layer2/conv": "layer2.0"}


def test_flatten_chw_must_name_a_linear_of_the_model():
    sd, x = _lab_cnn_state()
    from_state_dict(MnistCNN(), sd, x, rename=RENAME, flatten_chw={"fc": (64, 7, 7)})
    with pytest.raises(ValueError, match=r"flatten_chw: 'fcc' names no module"):
        from_state_dict(MnistCNN(), sd, x, rename=RENAME, flatten_chw={"fcc": (64, 7, 7)})
    with pytest.raises(ValueError, match=r"flatten_chw: 'layer1/conv' names a Conv2d"):
        from_state_dict(MnistCNN(), sd, x, rename=RENAME, flatten_chw={"layer1/conv": (64, 7, 7)})
    with pytest.raises(ValueError, match=r"\(64, 7, 6\) has 2688 features, but fc takes 3136"):
        from_state_dict(MnistCNN(), sd, x, rename=RENAME, flatten_chw={"fc": (64, 7, 6)})


def test_a_forgotten_flatten_chw_is_refused_with_the_entry_it_needs():
    sd, x = _lab_cnn_state()
    with pytest.raises(
        ValueError, match=r"fc reads a flattened \(H, W, C\) = \(7, 7, 64\) map.*\{'fc': \(64, 7, 7\)\}"
    ):
        from_state_dict(MnistCNN(), sd, x, rename=RENAME)
    rows_as_they_are = from_state_dict(MnistCNN(), sd, x, rename=RENAME, flatten_chw={"fc": None})
    np.testing.assert_array_equal(rows_as_they_are["params"]["fc"]["kernel"], np.asarray(sd["fc.weight"]).T)


def test_a_chw_that_contradicts_the_traced_map_is_refused():
    sd, x = _lab_cnn_state()
    with pytest.raises(ValueError, match=r"\(7, 7, 64\) contradicts the model: fc reads an \(H, W, C\) = \(7, 7, 64\)"):
        from_state_dict(MnistCNN(), sd, x, rename=RENAME, flatten_chw={"fc": (7, 7, 64)})
    with pytest.raises(ValueError, match="contradicts"):
        to_state_dict(
            MnistCNN(), MnistCNN().init(jax.random.key(0), x), x, rename=RENAME, flatten_chw={"fc": (7, 64, 7)}
        )
    model = VGG([8, "M"], num_classes=3)  # the map before classifier/0 is (4, 4, 8)
    variables = model.init(jax.random.key(0), jnp.ones((1, 8, 8, 2)))
    to_state_dict(model, variables, jnp.ones((1, 8, 8, 2)), flatten_chw={"classifier/0": (8, 4, 4)})
    with pytest.raises(ValueError, match="contradicts"):
        to_state_dict(model, variables, jnp.ones((1, 8, 8, 2)), flatten_chw={"classifier/0": (4, 4, 8)})


def test_rename_keys_must_name_modules():
    sd, x = _lab_cnn_state()
    with pytest.raises(ValueError, match=r"rename: \['layer1/cnv'\] name no module of the model"):
        from_state_dict(MnistCNN(), sd, x, rename={**RENAME, "layer1/cnv": "layer1.0"}, flatten_chw={"fc": (64, 7, 7)})


# --- empty batches, empty splits, labels and indices -------------------------------------------------------------


def test_an_empty_batch_or_split_is_a_clear_error():
    model = MnistCNN()
    variables = model.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
    with pytest.raises(ValueError, match=r"images is an empty batch, shape \(0, 28, 28, 1\)"):
        model.apply(variables, jnp.ones((0, 28, 28, 1)))
    with pytest.raises(ValueError, match=r"VGG: x is an empty batch"):
        VGG([4, "M"], num_classes=2).init(jax.random.key(0), jnp.ones((0, 8, 8, 1)))
    state = train.create_train_state(model, variables["params"], train.adam())
    with pytest.raises(ValueError, match=r"evaluate: the split is empty \(inputs shape \(0, 28, 28, 1\)\)"):
        train.evaluate(jax.jit(train.eval_step), state, np.zeros((0, 28, 28, 1), np.float32), np.zeros(0, np.int32))


@pytest.mark.parametrize("bad", [10, -1])
def test_labels_out_of_range_are_named_not_reported_as_a_diverging_loss(bad):
    model = MnistCNN()
    state = train.create_train_state(
        model, model.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))["params"], train.adam()
    )
    x = jax.random.normal(jax.random.key(1), (8, 28, 28, 1))
    y = jnp.array([0, 1, 2, 3, bad, 5, 6, 7])
    batches = [{"inputs": x, "labels": jnp.arange(8)}, {"inputs": x, "labels": y}]
    with pytest.raises(ValueError, match=r"1 labels of the batch at step 1 lie outside \[0, number of classes\)"):
        train.train_epoch(jax.jit(train.train_step), state, batches, jax.random.key(0))
    with pytest.raises(ValueError, match=r"evaluate: 1 labels of examples 0-7 lie outside"):
        train.evaluate(jax.jit(train.eval_step), state, x, y)


def test_float_indices_are_a_type_error():
    with pytest.raises(TypeError, match="indices must be integers, got dtype float64"):
        Vocab.from_text("hello").decode(np.array([0.0, 1.0]))
    words = seq2seq.prepare()[1]
    with pytest.raises(TypeError, match="indices must be integers"):
        words.decode(np.array([2.0]))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 17\), got values in \[-1, 2\]"):
        words.decode(np.array([2, -1]))


# --- image folders -----------------------------------------------------------------------------------------------


def test_image_folder_walks_nested_class_folders_in_torchvisions_order(tmp_path):
    from PIL import Image

    # torchvision: for root, _, names in sorted(os.walk(class_folder)): for name in sorted(names)
    files = ["a/z.png", "a/sub/b.png", "a/sub-x/c.png", "a/sub/deeper/a.png", "a/A.png", "b/only.png", "b/n/m.txt"]
    for f in files:
        path = tmp_path / f
        path.parent.mkdir(parents=True, exist_ok=True)
        if f.endswith(".png"):
            Image.new("RGB", (2, 2)).save(path)
        else:
            path.write_text("not an image")
    folder = ImageFolder(tmp_path)
    got = [(str(p.relative_to(tmp_path)), label) for p, label in folder.samples]
    assert got == [
        ("a/A.png", 0),
        ("a/z.png", 0),
        ("a/sub/b.png", 0),
        ("a/sub-x/c.png", 0),  # os.walk's roots sort as strings: 'a/sub-x' < 'a/sub/deeper' ('-' < '/')
        ("a/sub/deeper/a.png", 0),
        ("b/only.png", 1),
    ]
