"""The rest of lab 10: image folders (10-4), the VGG/ResNet recipe (10-5, 10-6) on MNIST and on a tiny CIFAR-10,
TensorBoard event files read back, and the scripts' one-line errors."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest
import torch
from conftest import ROOT, load_script
from test_cifar10_data import write_tiny_archive

from jaxnn import report
from jaxnn.data import cifar10
from jaxnn.data.image_folder import ImageFolder
from jaxnn.interop import torch_labs
from jaxnn.interop.state_dict import from_state_dict, to_state_dict
from jaxnn.labs import cifar, image_folder
from jaxnn.models import FolderCNN
from jaxnn.testing import assert_close


def _write(path, pixels, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(pixels).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path):
    """b/ (3 PNGs) and a/ (2 JPEGs, one grayscale): classes sorted, so 'a' is label 0."""
    r = np.random.default_rng(0)
    root = tmp_path / "folder"
    for i in range(3):
        _write(root / "b" / f"{i}.png", r.integers(0, 256, (6, 10, 3), dtype=np.uint8))
    _write(root / "a" / "x.jpg", r.integers(0, 256, (6, 10, 3), dtype=np.uint8))
    _write(root / "a" / "y.JPEG", r.integers(0, 256, (6, 10), dtype=np.uint8), "JPEG")
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_orders_classes_and_files_like_torchvision(folder):
    ds = ImageFolder(folder)
    assert ds.classes == ["a", "b"] and ds.class_to_idx == {"a": 0, "b": 1}
    assert [p.name for p, _ in ds.samples] == ["x.jpg", "y.JPEG", "0.png", "1.png", "2.png"]
    np.testing.assert_array_equal(ds.targets, [0, 0, 1, 1, 1])
    image, label = ds[2]
    assert image.dtype == np.float32 and image.shape == (6, 10, 3) and label == 1
    np.testing.assert_array_equal(image, np.asarray(PIL.Image.open(folder / "b" / "0.png"), np.float32) / 255)
    assert ds[1][0].shape == (6, 10, 3)  # grayscale converted to RGB
    resized = ImageFolder(folder, size=(4, 8))[0][0]
    assert resized.shape == (4, 8, 3) and 0 <= resized.min() and resized.max() <= 1


def test_image_folder_batches_are_a_seeded_shuffle_by_epoch(folder):
    ds = ImageFolder(folder)

    def order(seed, epoch):
        batches = list(ds.batches(2, seed, epoch))
        assert [len(b["labels"]) for b in batches] == [2, 2, 1]  # the last batch is kept, smaller
        return np.concatenate([b["inputs"].reshape(len(b["inputs"]), -1)[:, :3] for b in batches])

    first = order(0, 0)
    np.testing.assert_array_equal(first, order(0, 0))  # the same seed and epoch: the same order
    assert sorted(map(tuple, first)) == sorted(tuple(ds[i][0].reshape(-1)[:3]) for i in range(len(ds)))  # each once
    assert any(not np.array_equal(first, order(0, e)) for e in (1, 2, 3))  # another epoch, another order
    assert any(not np.array_equal(first, order(s, 0)) for s in (1, 2, 3))
    plain = list(ds.batches(5, shuffle=False))[0]
    np.testing.assert_array_equal(plain["labels"], [0, 0, 1, 1, 1])


def test_image_folder_errors_name_the_folder_or_file(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"0 class folder.*at least 2"):
        ImageFolder(tmp_path / "empty")
    _write(tmp_path / "one" / "only" / "0.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"1 class folder.*\['only'\]"):
        ImageFolder(tmp_path / "one")
    (folder / "c").mkdir()
    (folder / "c" / "readme.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no images .* \['c'\]"):
        ImageFolder(folder)
    (folder / "c" / "broken.png").write_bytes(b"\x89PNG not really")
    ds = ImageFolder(folder)
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        ds[len(ds) - 1]
    with pytest.raises(ValueError, match="size"):
        ImageFolder(folder, size=(0, 4))
    with pytest.raises(ValueError, match="batch_size"):
        next(ImageFolder(folder, size=(4, 4)).batches(0))
    # Only regular files are read: a FIFO named like an image would block the reader forever.
    os.mkfifo(folder / "c" / "pipe.png")
    with pytest.raises(ValueError, match=r"pipe\.png is named like an image but is not a regular file"):
        ImageFolder(folder)
    os.unlink(folder / "c" / "pipe.png")
    os.symlink(folder / "c" / "gone.png", folder / "c" / "link.png")  # a broken link
    with pytest.raises(ValueError, match=r"link\.png is named like an image but is not a regular file"):
        ImageFolder(folder)


def test_folder_cnn_matches_the_labs_pytorch_cnn():
    x = np.random.default_rng(0).random((2, 64, 128, 3)).astype(np.float32)
    torch.manual_seed(0)
    tm = torch_labs.FolderCNN()
    flatten = {"layer3/0": (16, 13, 29)}
    variables = from_state_dict(FolderCNN(), tm.state_dict(), x, flatten_chw=flatten)
    out = tm(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    out.sum().backward()

    def f(params):
        return jnp.sum(FolderCNN().apply({"params": params}, x))

    assert_close(FolderCNN().apply(variables, x), out.detach().numpy(), what="logits")
    grads = to_state_dict(FolderCNN(), {"params": jax.grad(f)(variables["params"])}, x, flatten_chw=flatten)
    for key, p in tm.named_parameters():
        assert_close(grads[key], p.grad.numpy(), what=f"grad {key}", scale=np.abs(p.grad.numpy()).max())


def test_image_folder_lab_trains_saves_and_reloads(tmp_path, mnist_data_dir):
    config = image_folder.Config(per_class=16, epochs=2, data_dir=str(mnist_data_dir))
    result = image_folder.train_and_evaluate(config, tmp_path)
    assert result.classes == ["0", "1"] and result.reloaded_max_diff == 0.0
    assert len(list((tmp_path / "images" / "train_01_16" / "1").glob("*.png"))) == 16
    assert PIL.Image.open(next((tmp_path / "images" / "train_01_16" / "0").glob("*.png"))).size == (128, 64)
    scalars = report.read_scalars(result.logdir)
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    assert [v for _, v in scalars["test/accuracy"]] == pytest.approx([r["test_accuracy"] for r in result.records])
    again = image_folder.train_and_evaluate(config, tmp_path / "again")  # the same seed: the same numbers
    assert again.records[-1]["train_loss"] == result.records[-1]["train_loss"]


def test_image_folders_left_half_written_by_a_killed_run_are_written_again_without_leftovers(tmp_path, mnist_data_dir):
    config = image_folder.Config(per_class=4, data_dir=str(mnist_data_dir))
    (tmp_path / "images" / "train_01_4.tmp" / "0").mkdir(parents=True)  # a run killed while writing
    (tmp_path / "images" / "train_01_4.tmp" / "0" / "half.png").write_bytes(b"cut short")
    train_root, test_root = image_folder.default_folders(config, tmp_path)
    assert sorted((tmp_path / "images").iterdir()) == sorted([train_root, test_root])
    assert len(list((train_root / "0").glob("*.png"))) == 4


def test_a_second_image_folder_run_at_once_writes_nothing_and_says_why(tmp_path, mnist_data_dir):
    from jaxnn import workdir

    config = image_folder.Config(per_class=4, data_dir=str(mnist_data_dir))
    with workdir.claim(tmp_path, {"another": "run"}):  # the first run holds the workdir
        with pytest.raises(ValueError, match=rf"workdir {tmp_path} is in use by another run \(pid {os.getpid()}\)"):
            image_folder.train_and_evaluate(config, tmp_path)
        assert not (tmp_path / "images").exists()  # the lock before any write


def test_cifar_recipe_on_mnist_writes_curves_and_tensorboard(tmp_path, mnist_data_dir):
    """ResNet-18 with 4 stem channels: the schedule, the files and the BatchNorm counters do not depend on the width."""
    config = cifar.Config(
        model="resnet",
        arch="resnet18",
        width=4,
        epochs=2,
        batch_size=32,
        step_size=1,
        train_subset=64,
        test_subset=40,
        data_dir=str(mnist_data_dir),
    )
    result = cifar.train_and_evaluate(config, tmp_path)
    assert [r["learning_rate"] for r in result.records] == pytest.approx([0.1, 0.05])  # StepLR(1, 0.5)
    scalars = report.read_scalars(tmp_path / "tensorboard")
    assert {"train/loss", "train/accuracy", "test/loss", "test/accuracy", "learning_rate"} <= set(scalars)
    assert [step for step, _ in scalars["test/accuracy"]] == [1, 2]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([r["train_loss"] for r in result.records])
    assert result.predictions_path.is_file() and result.curves_path.is_file()
    assert result.state.batch_stats is not None
    assert int(result.state.batch_stats["bn1"]["num_batches_tracked"]) == 4  # 2 steps x 2 epochs


def test_cifar_recipe_reads_a_prepared_cifar10(tmp_path):
    """A narrow VGG (8 and 16 channels, a 16-wide classifier): what is checked is that the prepared CIFAR-10 is read
    as 32x32 RGB images and trained on, whatever the width."""
    write_tiny_archive(tmp_path / "manual", per_file=8)
    cifar10.load_cifar10(tmp_path / "tfds", tmp_path / "manual", official=False, verbose=False)
    config = cifar.Config(
        model="vgg",
        cfg="8,M,16,M,16,M",
        hidden_features=16,
        epochs=1,
        batch_size=8,
        data_dir=str(tmp_path / "tfds"),
        dataset="cifar10",
    )
    result = cifar.train_and_evaluate(config, tmp_path / "run")
    assert len(result.records) == 1 and 0 <= result.test_accuracy <= 1
    assert result.state.params["features"]["0"]["kernel"].shape == (3, 3, 3, 8)  # RGB input


def test_cifar_config_takes_the_labs_values_and_names_bad_ones():
    assert cifar.Config(model="vgg").learning_rate == 0.005 and cifar.Config(model="vgg").crop_padding == 0
    resnet = cifar.Config(model="resnet")
    assert (resnet.learning_rate, resnet.weight_decay, resnet.step_size, resnet.gamma) == (0.1, 5e-4, 10, 0.5)
    for kwargs, name in (
        (dict(model="alexnet"), "model"),
        (dict(dataset="imagenet"), "dataset"),
        (dict(learning_rate=float("inf")), "learning_rate"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(crop_padding=-1), "crop_padding"),
        (dict(crop_padding=10**9), "crop_padding"),
        (dict(momentum=float("nan")), "momentum"),
        (dict(test_subset=2**40), "test_subset"),
        (dict(arch="resnet101"), "arch"),
        (dict(model="vgg", cfg="8,X"), "cfg"),
        (dict(model="vgg", cfg="M,M"), "cfg"),
        (dict(model="vgg", hidden_features=0), "hidden_features"),
        (dict(model="resnet", hidden_features=16), "hidden_features"),
        (dict(model="resnet", width=0), "width"),
        (dict(model="vgg", width=4), "width"),
    ):
        with pytest.raises(ValueError, match=f"^{name} "):
            cifar.Config(**kwargs)


def test_cifar_config_builds_narrow_models():
    """A VGG's layers written out with a narrow classifier, and a ResNet whose stem starts at ``width`` channels."""
    x = np.zeros((1, 32, 32, 1), np.float32)
    vgg = cifar.Config(model="vgg", cfg="4, M, 8,M", hidden_features=16).build_model()
    params = jax.eval_shape(lambda: vgg.init(jax.random.key(0), x))["params"]
    assert params["features"]["0"]["kernel"].shape == (3, 3, 1, 4) and params["features"]["4"]["kernel"].shape[-1] == 8
    assert params["classifier"]["0"]["kernel"].shape == (8 * 8 * 8, 16)
    assert params["classifier"]["3"]["kernel"].shape == (16, 16)
    resnet = cifar.Config(model="resnet", arch="resnet18", width=4).build_model()
    params = jax.eval_shape(lambda: resnet.init(jax.random.key(0), x))["params"]
    assert params["conv1"]["kernel"].shape == (3, 3, 1, 4) and params["fc"]["kernel"].shape == (32, 10)
    assert params["layer4"]["0"]["conv1"]["kernel"].shape == (3, 3, 16, 32)


def test_cifar_script_without_the_archive_is_one_line(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "cifar.py"),
            "--dataset",
            "cifar10",
            "--data_dir",
            str(tmp_path / "tfds"),
            "--manual_dir",
            str(tmp_path / "nowhere"),
            "--workdir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and "CIFAR-10 not found: put the official cifar-10-binary.tar.gz" in lines[0]
    assert str(tmp_path / "nowhere") in lines[0]


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("cifar", ["--lr", "nan"], "--lr must be a finite number > 0"),
        ("cifar", ["--epochs", "0"], "--epochs must be an int >= 1"),
        ("image_folder", ["--digits", "3", "3"], "digits must be two different digits"),
        ("image_folder", ["--batch_size", "0"], "--batch_size must be an int >= 1"),
    ],
)
def test_new_lab_scripts_reject_bad_flags(script, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        load_script(script).main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
