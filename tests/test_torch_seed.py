"""``torch_seed``: a jaxnn run that is the lab's PyTorch run after ``torch.manual_seed`` (its weights, batch order
and dropout masks, :mod:`jaxnn.random.run`), step for step. In float64 both runs do the same arithmetic up to
summation order, so they agree to ~1e-15 over many steps; in float32 they agree at the first step and drift apart
by float32 rounding after it (the README's table)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxnn import train
from jaxnn.data import mnist
from jaxnn.interop import torch_labs
from jaxnn.labs import mnist as mnist_lab
from jaxnn.models import DeepCNN, MnistCNN

N, BATCH = 300, 100


@pytest.fixture(scope="module")
def images():
    x, y = mnist.load_mnist(None, None)["train"]
    return x[:N], y[:N]


def _torch_steps(model_cls, x, y, dtype, epochs):
    """The lab script's loop, every step's loss."""
    torch.manual_seed(777)
    data = torch.utils.data.TensorDataset(
        torch.from_numpy(x.reshape(N, 1, 28, 28)).to(dtype).div(255), torch.from_numpy(y.astype(np.int64))
    )
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True)
    tm = model_cls().to(dtype)
    opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    losses = []
    for _ in range(epochs):
        for X, Y in loader:
            opt.zero_grad()
            cost = torch.nn.functional.cross_entropy(tm(X), Y)
            cost.backward()
            opt.step()
            losses.append(cost.item())
    return losses, {k: v.detach().numpy() for k, v in tm.state_dict().items()}


def _jaxnn_steps(model, x, y, dtype, epochs, resume_at=None):
    tx, ty = jnp.asarray(x.astype(dtype) / 255), jnp.asarray(y)
    params, stream = mnist_lab.torch_run(model, 777, tx, BATCH)
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    state = train.create_train_state(model, params, train.adam(1e-3))
    step = jax.jit(train.train_step)
    losses = []
    for epoch in range(epochs):
        batches = list(stream.batches(tx, ty)(epoch, 0))
        if resume_at == epoch:  # a resumed run starts its epoch at batch 2: the same batches and masks from there
            batches = batches[:2] + list(stream.batches(tx, ty)(epoch, 2))
        for batch in batches:
            state, m = step(state, batch, jax.random.key(0))
            losses.append(float(m["loss"]))
    return losses, state


@pytest.mark.parametrize("lab", ["10-1", "10-2"])
def test_the_labs_steps_are_pytorchs_in_float64(images, lab):
    """Weights, batch order and (10-2) dropout masks all PyTorch's: six steps of Adam agree to 1e-13 in float64,
    through an epoch boundary and a resume inside an epoch."""
    model, torch_cls = (MnistCNN(), torch_labs.CNN) if lab == "10-1" else (DeepCNN(), torch_labs.DeepCNN)
    theirs, their_weights = _torch_steps(torch_cls, *images, torch.float64, 2)
    with jax.enable_x64(True):
        ours, state = _jaxnn_steps(model, *images, np.float64, 2, resume_at=1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)
    assert len(ours) == 6


def test_the_first_float32_step_is_pytorchs_and_the_recipe_prints_the_labs_costs(images, tmp_path):
    theirs, _ = _torch_steps(torch_labs.DeepCNN, *images, torch.float32, 1)
    ours, _ = _jaxnn_steps(DeepCNN(), *images, np.float32, 1)
    assert abs(ours[0] - theirs[0]) <= 1e-6 * theirs[0]
    costs = torch_labs.train_mnist_lab(torch_labs.DeepCNN, *images, epochs=1)
    config = mnist_lab.Config(
        model="deep", torch_seed=777, epochs=1, train_subset=N, test_subset=100, progress=False, checkpoints=False
    )
    result = mnist_lab.train_and_evaluate(config, tmp_path)
    assert abs(result.records[0]["train_loss"] - costs[0]) <= 1e-6 * costs[0]
