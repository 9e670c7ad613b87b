"""VGG (lab 10-5) and ResNet (lab 10-6) against the labs' PyTorch definitions (jaxnn.interop.torch_labs).

Weights go from the PyTorch model to jaxnn through the state_dict importer, with random BatchNorm weights and
running statistics so that nothing is trivially 0 or 1. Compared: eval-mode outputs; train-mode outputs, updated
running statistics and every parameter gradient (float32 PyTorch as reference, its float64 as the exact answer of
conftest's tolerance model); the initialisation rules; and the errors for bad configurations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import assert_close
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jaxnn.interop import torch_labs
from jaxnn.interop.state_dict import from_state_dict, to_state_dict
from jaxnn.models import VGG, BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50


def _randomise_batchnorm(tm, r):
    with torch.no_grad():
        for m in tm.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.tensor(r.uniform(0.5, 1.5, c)))
                m.bias.copy_(torch.tensor(r.standard_normal(c) * 0.1))
                m.running_mean.copy_(torch.tensor(r.standard_normal(c) * 0.1))
                m.running_var.copy_(torch.tensor(r.uniform(0.5, 1.5, c)))
                m.num_batches_tracked.fill_(3)


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _relu_margin(tm, x, train):
    """The smallest |input| of any ReLU in the float64 forward pass. Near 0 a ReLU's gradient jumps, and float32
    rounding may put an input on either side: such draws say nothing about parity and are skipped."""
    margin = [np.inf]

    def record(module, inputs):  # relative to the tensor's largest value: float32 errors scale with it
        v = inputs[0].detach().abs()
        margin[0] = min(margin[0], (v.min() / v.max()).item())

    tm = tm.double().train(train)
    hooks = [m.register_forward_pre_hook(record) for m in tm.modules() if isinstance(m, torch.nn.ReLU)]
    with torch.no_grad():
        tm(_nchw(x).double())
    for h in hooks:
        h.remove()
    return margin[0]


def _torch_run(tm, x, train, dtype):
    tm = tm.to(dtype).train(train)
    tm.zero_grad()
    xt = _nchw(x).to(dtype)
    out = tm(xt)
    # a loss with distinct weights per logit, so every gradient is exercised
    w = torch.arange(1, out.shape[1] + 1, dtype=dtype) / out.shape[1]
    (out * w).sum().backward()
    grads = {k: p.grad.detach().numpy().copy() for k, p in tm.named_parameters()}
    state = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    return out.detach().numpy(), grads, state


def _check_parity(model, tm_factory, x, flatten_chw=None, seed=0):
    """``tm_factory()`` builds the PyTorch model (same seed each call): eval and train mode against ``model``."""
    r = np.random.default_rng(seed)
    tm = tm_factory()
    _randomise_batchnorm(tm, r)
    start = {k: v.clone() for k, v in tm.state_dict().items()}
    variables = from_state_dict(model, start, x, flatten_chw=flatten_chw)
    for train in (False, True):
        tm = tm_factory()
        tm.load_state_dict(start)
        assume(_relu_margin(tm, x, train) > 1e-5)

    for train in (False, True):
        ref = {}
        for dtype in (torch.float32, torch.float64):
            tm = tm_factory()
            tm.load_state_dict(start)
            ref[dtype] = _torch_run(tm, x, train, dtype)
        (out32, grads32, state32), (out64, grads64, state64) = ref[torch.float32], ref[torch.float64]
        n = out32.shape[1]
        weights = jnp.arange(1, n + 1, dtype=jnp.float32) / n

        def loss(params, batch_stats, train=train, weights=weights):
            v = {"params": params, "batch_stats": batch_stats}
            if train:
                out, updates = model.apply(v, x, deterministic=False, mutable=["batch_stats"])
            else:
                out, updates = model.apply(v, x), {"batch_stats": batch_stats}
            return jnp.sum(out * weights), (out, updates.get("batch_stats", {}))

        grads, (out, stats) = jax.grad(loss, has_aux=True)(variables["params"], variables.get("batch_stats", {}))
        mode = "train" if train else "eval"
        assert_close(out, out32, what=f"{mode} logits", exact=out64)
        ours = to_state_dict(model, {"params": grads}, x, flatten_chw=flatten_chw)
        assert set(ours) == set(grads32)
        for key in grads32:
            assert_close(ours[key], grads32[key], what=f"{mode} grad {key}", exact=grads64[key])
        ours_stats = to_state_dict(model, {"batch_stats": stats}, x)
        for key, value in ours_stats.items():
            if key.endswith("num_batches_tracked"):
                assert int(value) == int(state32[key]), key
            else:
                assert_close(value, state32[key], what=f"{mode} {key}", exact=state64[key])


def _seeded(factory, seed=0):
    def build():
        torch.manual_seed(seed)
        return factory()

    return build


@settings(max_examples=5, deadline=None)
@given(
    block=st.sampled_from(["basic", "bottleneck"]),
    layers=st.sampled_from([(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 1, 2)]),
    channels=st.sampled_from([1, 3]),
    size=st.sampled_from([6, 8]),
    zero_init=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_resnet_matches_the_labs_pytorch_resnet(block, layers, channels, size, zero_init, seed):
    tblock = {"basic": torch_labs.BasicBlock, "bottleneck": torch_labs.Bottleneck}[block]
    x = np.random.default_rng(seed).standard_normal((2, size, size, channels)).astype(np.float32)
    model = ResNet(block, layers, num_classes=5, zero_init_residual=zero_init)
    factory = _seeded(lambda: torch_labs.ResNet(tblock, list(layers), 5, zero_init, in_channels=channels), seed)
    _check_parity(model, factory, x, seed=seed)


@settings(max_examples=4, deadline=None)
@given(batch_norm=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_vgg_matches_the_labs_pytorch_vgg(batch_norm, seed):
    cfg = [8, "M", 16, 16, "M"]
    x = np.random.default_rng(seed).standard_normal((2, 8, 8, 2)).astype(np.float32)
    model = VGG(cfg, batch_norm=batch_norm, num_classes=4, dropout=0.0)

    def factory():
        return torch_labs.VGG(
            torch_labs.make_layers(cfg, batch_norm, in_channels=2), 4, True, flat_features=16 * 2 * 2, dropout=0.0
        )

    _check_parity(model, _seeded(factory, seed), x, flatten_chw={"classifier/0": (16, 2, 2)}, seed=seed)


def test_vgg_state_dict_keys_are_the_labs():
    cfg = [4, "M", 8, "M"]
    x = jnp.ones((1, 8, 8, 3))
    tm = torch_labs.VGG(torch_labs.make_layers(cfg, True), 10, True, flat_features=8 * 2 * 2)
    variables = VGG(cfg, batch_norm=True, num_classes=10).init(jax.random.key(0), x)
    ours = to_state_dict(VGG(cfg, batch_norm=True, num_classes=10), variables, x)
    assert list(ours) == list(tm.state_dict())  # the same keys in PyTorch's order
    assert {k: v.shape for k, v in ours.items()} == {k: tuple(v.shape) for k, v in tm.state_dict().items()}


@pytest.mark.parametrize("zero_init", [False, True])
def test_resnet_initialisation_is_the_labs(zero_init):
    x = jnp.ones((2, 16, 16, 3))
    model = ResNet(Bottleneck, (1, 1, 1, 1), num_classes=10, zero_init_residual=zero_init)
    sd = to_state_dict(model, model.init(jax.random.key(0), x), x)
    tm = torch_labs.ResNet(torch_labs.Bottleneck, [1, 1, 1, 1], 10, zero_init)
    assert list(sd) == list(tm.state_dict())
    for key, ref in tm.state_dict().items():
        ref = ref.numpy()
        if key.endswith(("bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight", "bias", "running_var")):
            if key.startswith("fc"):
                continue
            np.testing.assert_array_equal(sd[key], ref, err_msg=key)  # constants: equal
    w = sd["layer3.0.conv2.weight"]  # kaiming normal, fan_out: std sqrt(2 / (out * 3 * 3))
    assert abs(w.std() / np.sqrt(2 / (w.shape[0] * 9)) - 1) < 0.1
    bound = 1 / np.sqrt(sd["fc.weight"].shape[1])  # PyTorch's default Linear init
    assert np.abs(sd["fc.weight"]).max() <= bound and np.abs(sd["fc.weight"]).max() > 0.9 * bound


def test_vgg_initialisation_is_the_labs():
    x = jnp.ones((1, 8, 8, 3))
    sd = to_state_dict(VGG([64, "M"], num_classes=10), VGG([64, "M"], num_classes=10).init(jax.random.key(0), x), x)
    w = sd["features.0.weight"]
    assert abs(w.std() / np.sqrt(2 / (64 * 9)) - 1) < 0.1
    assert not sd["features.0.bias"].any() and not sd["classifier.0.bias"].any()
    assert abs(sd["classifier.3.weight"].std() / 0.01 - 1) < 0.02


def test_torchvision_layouts_and_the_imagenet_stem():
    x = jnp.ones((1, 32, 32, 3))
    for fn, blocks in ((resnet18, 2), (resnet34, 3), (resnet50, 3)):
        variables = jax.eval_shape(lambda fn=fn: fn(num_classes=7, stem="imagenet").init(jax.random.key(0), x))
        params = variables["params"]
        assert len([k for k in params["layer1"]]) == blocks
        assert params["conv1"]["kernel"].shape == (7, 7, 3, 64)
        width = 2048 if fn is resnet50 else 512
        assert params["fc"]["kernel"].shape == (width, 7)
    out = jax.eval_shape(lambda: resnet18(num_classes=7).init_with_output(jax.random.key(0), x)[0])
    assert out.shape == (1, 7)
    assert jax.eval_shape(lambda: resnet18().init(jax.random.key(0), x))["params"]["conv1"]["kernel"].shape == (
        3,
        3,
        3,
        16,
    )


@pytest.mark.parametrize(
    "model, match",
    [
        (VGG([8, "X"]), "cfg entries"),
        (VGG([]), "non-empty"),
        (VGG([8, 0]), "cfg entries"),
        (VGG([8], dropout=1.5), "dropout"),
        (ResNet(BasicBlock, (1, 1, 1)), "4 positive ints"),
        (ResNet(BasicBlock, (1, 1, 0, 1)), "4 positive ints"),
        (ResNet("wide", (1, 1, 1, 1)), "block must be"),
        (ResNet(BasicBlock, (1, 1, 1, 1), stem="tiny"), "stem must be"),
    ],
)
def test_bad_configurations_are_named(model, match):
    with pytest.raises(ValueError, match=match):
        model.init(jax.random.key(0), jnp.ones((1, 8, 8, 3)))


def test_models_refuse_non_image_input():
    with pytest.raises(ValueError, match=r"\(N, H, W, C\).*\(8, 8, 3\)"):
        resnet18().init(jax.random.key(0), jnp.ones((8, 8, 3)))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        VGG([8]).init(jax.random.key(0), jnp.ones((8, 8)))
