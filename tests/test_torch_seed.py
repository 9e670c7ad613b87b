"""``torch_seed``: a jaxnn run that is the lab's PyTorch run after ``torch.manual_seed`` (its weights, batch order
and dropout masks, :mod:`jaxnn.random.run`), step for step. In float64 both runs do the same arithmetic up to
summation order, so they agree to ~1e-15 over many steps; in float32 they agree at the first step and drift apart
by float32 rounding after it (the README's table)."""

import functools

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
from jaxnn.random.run import torch_run

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
    return _train(tm, loader, torch.optim.Adam(tm.parameters(), lr=1e-3), epochs)


def _train(tm, loader, opt, epochs, scheduler=None):
    """PyTorch's loop: every step's cross-entropy loss."""
    losses = []
    for _ in range(epochs):
        for X, Y in loader:
            opt.zero_grad()
            cost = torch.nn.functional.cross_entropy(tm(X), Y)
            cost.backward()
            opt.step()
            losses.append(cost.item())
        if scheduler is not None:
            scheduler.step()
    return losses


def _jaxnn_steps(model, x, y, dtype, epochs, resume_at=None):
    tx, ty = jnp.asarray(x.astype(dtype) / 255), jnp.asarray(y)
    variables, stream = torch_run(model, 777, tx, BATCH)
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), variables["params"])
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
    theirs = _torch_steps(torch_cls, *images, torch.float64, 2)
    with jax.enable_x64(True):
        ours, state = _jaxnn_steps(model, *images, np.float64, 2, resume_at=1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)
    assert len(ours) == 6


def test_the_lab_10_2_recipe_prints_the_labs_costs_in_float32(images, tmp_path):
    """Three float32 steps with dropout: the epoch's cost within 1e-6 of the PyTorch script's (float32 rounding
    grows with the steps: the README's table)."""
    costs = torch_labs.train_mnist_lab(torch_labs.DeepCNN, *images, epochs=1)
    config = mnist_lab.Config(
        model="deep", torch_seed=777, epochs=1, train_subset=N, test_subset=100, progress=False, checkpoints=False
    )
    result = mnist_lab.train_and_evaluate(config, tmp_path)
    assert abs(result.records[0]["train_loss"] - costs[0]) <= 1e-6 * costs[0]


class _Augmented(torch.utils.data.Dataset):
    """torchvision's RandomCrop(size, padding) and RandomHorizontalFlip() on (C, H, W) tensors, drawing as they do
    (torchvision cannot be installed beside the CPU torch here): pad with ``fill``, two randint, one rand."""

    def __init__(self, x, y, padding, flip, fill):
        self.x, self.y, self.padding, self.flip, self.fill = x, y, padding, flip, fill

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = self.x[i]
        (c, h, w), p = img.shape, self.padding
        if p:
            canvas = self.fill.reshape(-1, 1, 1).expand(c, h + 2 * p, w + 2 * p).clone()
            canvas[:, p:-p, p:-p] = img
            top = torch.randint(0, 2 * p + 1, size=(1,)).item()
            left = torch.randint(0, 2 * p + 1, size=(1,)).item()
            img = canvas[:, top : top + h, left : left + w]
        if self.flip and torch.rand(1) < 0.5:
            img = img.flip(-1)
        return img, self.y[i]


def _cifar_models(name):
    """(jaxnn model, PyTorch model) of the VGG/ResNet labs, small."""
    from jaxnn import models

    if name == "vgg":
        cfg = [8, "M", 16, "M", 16, "M"]
        tm = torch_labs.VGG(torch_labs.make_layers(cfg, True, 3), 10, True, 16 * 2 * 2, 0.5, None, 32)
        return models.VGG(cfg, batch_norm=True, num_classes=10, hidden_features=32), tm
    tm = torch_labs.ResNet(torch_labs.BasicBlock, [1, 1, 1, 1], 10, True)
    return models.ResNet("basic", (1, 1, 1, 1), 10, zero_init_residual=True), tm


@pytest.mark.parametrize("name", ["vgg", "resnet"])
def test_the_cifar_labs_steps_are_pytorchs_in_float64(name):
    """VGG-BN with its classifier's dropout, and a ResNet with zero_init_residual, RandomCrop(padding=4) and
    RandomHorizontalFlip; SGD with momentum and weight decay, StepLR: four steps over two epochs agree with the
    PyTorch loop to 1e-8 in float64 (weights, order, crops, flips and masks all PyTorch's)."""
    from jaxnn.labs import cifar

    n, batch, padding, flip = 64, 32, 4 if name == "resnet" else 0, name == "resnet"
    r = np.random.default_rng(0)
    x, y = r.standard_normal((n, 16, 16, 3)), r.integers(0, 10, n)
    fill = np.array([-0.5, 0.25, 1.0])
    torch.manual_seed(777)
    net, tm = _cifar_models(name)
    tm = tm.double()
    data = _Augmented(
        torch.from_numpy(np.moveaxis(x, -1, 1).copy()), torch.from_numpy(y), padding, flip, torch.from_numpy(fill)
    )
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
    opt = torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    theirs = _train(tm, loader, opt, 2, torch.optim.lr_scheduler.StepLR(opt, 1, 0.5))
    with jax.enable_x64(True):
        variables, stream = torch_run(net, 777, x, batch, 2 * padding + 1 if padding else 0, flip)
        variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if a.dtype == np.float32 else a, variables)
        tx = train.sgd(train.step_lr(0.05, 1, stream.steps, 0.5), 0.9, weight_decay=5e-4)
        state = train.create_train_state(net, variables["params"], tx, variables.get("batch_stats"))
        augmented = functools.partial(cifar._augmented_train_step, crop_padding=padding, flip=flip, fill=tuple(fill))
        step = jax.jit(augmented)
        ours = []
        for epoch in range(2):
            for b in stream.batches(jnp.asarray(x), jnp.asarray(y))(epoch, 0):
                state, m = step(state, b, jax.random.key(0))
                ours.append(float(m["loss"]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)  # BatchNorm and momentum: float64 drift of ~1e-10 by step 4


@pytest.mark.parametrize("n, batch", [(20, 8), (24, 8)])
def test_lab_10_4s_epochs_come_in_the_dataloaders_order_after_its_model(n, batch, tmp_path):
    """Lab 10-4 keeps the last, partial batch (no drop_last): its FolderCNN, then two epochs of DataLoader order,
    through the ImageFolder's batches."""
    import PIL.Image

    from jaxnn.data.image_folder import ImageFolder
    from jaxnn.models import FolderCNN
    from jaxnn.random import Generator, torch_init
    from jaxnn.random.run import TorchEpochs

    for i in range(n):  # one-colour images whose value is their index, in two classes
        folder = tmp_path / f"c{i % 2}"
        folder.mkdir(exist_ok=True)
        PIL.Image.fromarray(np.full((2, 2, 3), i, np.uint8)).save(folder / f"{i:03d}.png")
    images = ImageFolder(tmp_path, size=(2, 2))
    torch.manual_seed(777)
    torch_labs.FolderCNN()
    index = torch.utils.data.TensorDataset(torch.arange(n))
    loader = torch.utils.data.DataLoader(index, batch_size=batch, shuffle=True)
    theirs = [[int(v) for v in b[0]] for _ in range(2) for b in loader]
    g = Generator().manual_seed(777)
    torch_init(FolderCNN(), np.zeros((1, 64, 128, 3), np.float32), generator=g)
    stream = TorchEpochs(g.get_state(), n, batch, drop_last=False)
    ours = [
        [int(np.rint(v * 255)) for v in b["inputs"][:, 0, 0, 0]]
        for epoch in range(2)
        for b in images.batches(batch, epoch=epoch, order=stream.order(epoch))
    ]
    values = [int(np.rint(images[i][0][0, 0, 0] * 255)) for i in range(n)]  # the folder's order of the samples
    assert ours == [[values[i] for i in b] for b in theirs]


def test_the_same_seed_example_prints_both_labs_costs(capsys):
    """examples/same_seed.py (run by make labs): lab 10-1's PyTorch script and jaxnn's recipe with torch_seed."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "same_seed.py"
    spec = importlib.util.spec_from_file_location("same_seed", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    theirs, ours = example.main(["--train_subset", str(N)])
    assert abs(ours[0] - theirs[0]) <= 1e-6 * theirs[0]
    assert "| 1 |" in capsys.readouterr().out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_an_rnns_dropout_between_layers_takes_pytorchs_masks(cell):
    """A 3-layer RNN with dropout in training: PyTorch's output after manual_seed(seed), its construction and the
    input's draw, in float64, equals jaxnn's with the masks of dropout_sites drawn from the same stream."""
    from jaxnn.nn import RNN
    from jaxnn.random import Generator, lab_state_dict
    from jaxnn.random.run import TorchEpochs, dropout_sites

    torch.manual_seed(5)
    tm = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](4, 6, num_layers=3, dropout=0.4, batch_first=True)
    x = torch.randn(3, 7, 4)
    expected = tm.double()(x.double())[0].detach().numpy()
    model = RNN(6, 3, batch_first=True, cell=cell, dropout=0.4)
    g = Generator().manual_seed(5)
    weights = lab_state_dict(model, np.zeros((3, 7, 4), np.float32), generator=g)
    np.testing.assert_array_equal(g.randn((3, 7, 4)), x.numpy())
    with jax.enable_x64(True):
        sites = dropout_sites(model, np.zeros((3, 7, 4)))
        assert [shape for _, shape, _, _ in sites] == [(7, 3, 6), (7, 3, 6)]  # time-major, between the 3 layers
        masks = TorchEpochs(g.get_state(), 3, 3, sites).dropout_masks(0, 0, generator=g)
        params = {k: jnp.asarray(v, jnp.float64) for k, v in weights.items()}
        out, _ = model.apply(
            {"params": params, "dropout_masks": masks}, jnp.asarray(x.numpy(), jnp.float64), deterministic=False
        )
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12, atol=1e-14)
