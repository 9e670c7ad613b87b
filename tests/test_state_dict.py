"""Any state_dict in and out: a model with every CNN-toolkit layer round-trips PyTorch -> jaxnn -> PyTorch bit-exactly,
trains three steps as PyTorch does (outputs, running statistics, parameters), evaluates as PyTorch does; bad
state_dicts are named key by key; safetensors files without torch."""

import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from safetensors.torch import load_file as torch_load_file

from jaxnn import nn as jnn
from jaxnn import train
from jaxnn.interop.state_dict import from_state_dict, load_safetensors, save_safetensors, to_state_dict
from jaxnn.testing import assert_close

FLATTEN = {"fc": (5, 1, 9)}  # PyTorch flattens the (C, L) = (5, 9) sequence channel-first


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")
        self.bn = torch.nn.BatchNorm2d(4)
        self.up = torch.nn.ConvTranspose2d(4, 3, 2, stride=2)
        self.max = torch.nn.AdaptiveMaxPool2d((3, 3))
        self.avg = torch.nn.AdaptiveAvgPool2d(3)
        self.drop = torch.nn.Dropout2d(0.0)
        self.seq = torch.nn.Conv1d(3, 5, 3, padding=1, padding_mode="circular")
        self.bn1 = torch.nn.BatchNorm1d(5, momentum=None)
        self.fc = torch.nn.Linear(5 * 9, 4)

    def forward(self, x):  # (N, 2, 6, 6)
        y = self.up(torch.relu(self.bn(self.conv(x))))  # (N, 3, 12, 12)
        y = self.drop(self.max(y) + self.avg(y))  # (N, 3, 3, 3)
        y = torch.relu(self.bn1(self.seq(y.flatten(2))))  # (N, 5, 9)
        return self.fc(y.flatten(1))


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, *, deterministic=True):  # (N, 6, 6, 2)
        y = jnn.Conv2d(4, 3, padding=1, padding_mode="reflect", name="conv")(x)
        y = nn.relu(jnn.BatchNorm2d(4, name="bn")(y, deterministic=deterministic))
        y = jnn.ConvTranspose2d(3, 2, stride=2, name="up")(y)
        y = jnn.AdaptiveMaxPool2d((3, 3), name="max")(y) + jnn.AdaptiveAvgPool2d(3, name="avg")(y)
        y = jnn.Dropout2d(0.0, name="drop")(y, deterministic=deterministic)
        y = jnn.Conv1d(5, 3, padding=1, padding_mode="circular", name="seq")(y.reshape(y.shape[0], 9, 3))
        y = nn.relu(jnn.BatchNorm1d(5, momentum=None, name="bn1")(y, deterministic=deterministic))
        return jnn.Linear(4, name="fc")(y.reshape(y.shape[0], -1))


SAMPLE = np.zeros((1, 6, 6, 2), np.float32)


def _torch_model():
    torch.manual_seed(0)
    tm = TorchNet()
    with torch.no_grad():  # non-trivial BatchNorm parameters and statistics
        for bn in (tm.bn, tm.bn1):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    return tm


def test_state_dict_round_trip_is_bit_exact_and_names_every_layer():
    tm = _torch_model()
    sd = tm.state_dict()
    variables = from_state_dict(Net(), sd, SAMPLE, flatten_chw=FLATTEN)
    assert set(variables) == {"params", "batch_stats"}
    back = to_state_dict(Net(), variables, SAMPLE, flatten_chw=FLATTEN)
    assert list(back) == list(sd)  # PyTorch's order too
    for k, v in sd.items():
        assert torch.equal(torch.from_numpy(back[k]), v), k
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()}, strict=True)


def test_model_with_every_layer_trains_and_evaluates_as_pytorch():
    tm = _torch_model().double()
    with jax.enable_x64(True):
        variables = from_state_dict(Net(), tm.state_dict(), SAMPLE.astype(np.float64), flatten_chw=FLATTEN)
        variables = jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, jnp.float64) if a.dtype.kind == "f" else a, variables
        )
        state = train.create_train_state(Net(), variables["params"], optax.sgd(0.05), variables["batch_stats"])
        step = jax.jit(train.train_step)
        opt = torch.optim.SGD(tm.parameters(), lr=0.05)
        r = np.random.default_rng(0)
        for _ in range(3):
            x, y = r.standard_normal((5, 6, 6, 2)), r.integers(0, 4, 5)
            state, metrics = step(state, {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}, jax.random.key(0))
            tm.train()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(tm(torch.tensor(x.transpose(0, 3, 1, 2).copy())), torch.tensor(y))
            loss.backward()
            opt.step()
            assert_close(metrics["loss"], loss.item(), what="loss")
        ours = to_state_dict(
            Net(), {"params": state.params, "batch_stats": state.batch_stats}, SAMPLE, flatten_chw=FLATTEN
        )
        for k, v in tm.state_dict().items():
            assert_close(ours[k], v.numpy(), what=k)
        x = r.standard_normal((3, 6, 6, 2))
        tm.eval()
        with torch.no_grad():
            expected = tm(torch.tensor(x.transpose(0, 3, 1, 2).copy())).numpy()
        assert_close(jax.jit(train.predict)(state, jnp.asarray(x)), expected, what="eval logits")


def test_bad_state_dicts_are_named_key_by_key():
    sd = dict(_torch_model().state_dict())
    sd.pop("bn.running_var")
    sd["extra.weight"] = torch.zeros(3)
    sd["fc.bias"] = torch.zeros(7)
    with pytest.raises(ValueError) as e:
        from_state_dict(Net(), sd, SAMPLE, flatten_chw=FLATTEN)
    message = str(e.value)
    assert "missing ['bn.running_var']" in message and "unexpected ['extra.weight']" in message
    assert "fc.bias: (7,) gives (7,), the model needs (4,)" in message
    # A Linear weight given transposed, (in, out) for PyTorch's (out, in), has the jaxnn kernel's shape: it loaded
    # silently under flatten_chw (issue 28) and is refused naming the key, as PyTorch refuses it.
    sd = dict(_torch_model().state_dict())
    sd["fc.weight"] = sd["fc.weight"].T.contiguous()
    with pytest.raises(
        ValueError, match=r"fc.weight: \(45, 4\) is not PyTorch's layout here \(kernel rows 4 != C\*H\*W"
    ):
        from_state_dict(Net(), sd, SAMPLE, flatten_chw=FLATTEN)


def test_safetensors_written_by_jaxnn_load_in_pytorch_and_load_without_torch(tmp_path):
    tm = _torch_model()
    variables = from_state_dict(Net(), tm.state_dict(), SAMPLE, flatten_chw=FLATTEN)
    path = save_safetensors(to_state_dict(Net(), variables, SAMPLE, flatten_chw=FLATTEN), tmp_path / "net.safetensors")
    loaded = torch_load_file(str(path))
    tm.load_state_dict(loaded, strict=True)
    for k, v in _torch_model().state_dict().items():
        assert torch.equal(loaded[k], v), k
    np.testing.assert_array_equal(load_safetensors(path)["fc.weight"], tm.fc.weight.detach().numpy())
    code = (
        f"import sys; from jaxnn.interop.state_dict import load_safetensors; "
        f"sd = load_safetensors({str(path)!r}); print(len(sd), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(loaded)), "False"]
