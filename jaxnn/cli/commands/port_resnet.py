"""Port a PyTorch ResNet-18 to jaxnn, check it layer by layer against PyTorch, then fine-tune it on MNIST.

    python experiments/port_resnet.py                                   # a torchvision-layout ResNet-18, seeded
    python experiments/port_resnet.py --weights resnet18.safetensors    # or resnet18.pth: your own weights

1. The weights: a state_dict with torchvision's ``resnet18`` names (``conv1.weight``, ``layer1.0.bn1.running_mean``,
   ..., ``fc.weight``), as ``torch.save(model.state_dict(), 'resnet18.pth')`` or a ``.safetensors`` file writes it.
   Without ``--weights`` the script builds torchvision's ResNet-18 layout in PyTorch and saves it as
   ``WORKDIR/resnet18.safetensors``.
2. ``jaxnn.models.resnet18(stem='imagenet')`` loads it with ``from_state_dict``: the names are the same, no renames.
3. ``jaxnn.testing.compare_with_torch`` runs both on the same images and prints every layer's output, every
   gradient and (in training mode) every running statistic against PyTorch's.
4. ``jaxnn.labs.cifar`` fine-tunes it on MNIST padded to 32x32 and repeated to 3 channels, with a new 10-class head.
"""

from pathlib import Path

import numpy as np

from jaxnn import runtime
from jaxnn.cli import flags as cli
from jaxnn.cli.flags import make_config, show_progress
from jaxnn.interop import torch_labs
from jaxnn.interop.state_dict import from_state_dict, load_state_dict_file, save_safetensors
from jaxnn.labs import cifar
from jaxnn.models import resnet18
from jaxnn.testing import compare_with_torch


def parse_args(argv=None):
    p = cli.ArgumentParser(__doc__)
    p.add_argument(
        "--weights",
        type=cli.path_flag,
        default=None,
        help="a ResNet-18 state_dict (.safetensors or .pth), torchvision names",
    )
    p.add_argument("--num_classes", type=int, default=1000, help="rows of the file's fc layer (1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated weights, test images and training")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (1)")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning SGD learning rate (0.01)")
    p.add_argument("--batch_size", type=int, default=128, help="fine-tuning batch size (128)")
    p.add_argument("--train_subset", type=int, default=2048, help="fine-tune on the first N MNIST images (2048)")
    p.add_argument("--test_subset", type=int, default=1000, help="test on the first N MNIST test images (1000)")
    p.add_argument("--workdir", type=cli.path_flag, default="runs/port_resnet", help="where the weights and results go")
    p.add_argument(
        "--data_dir",
        type=cli.path_flag,
        default=None,
        help="TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="fine-tune again where an earlier run of the guide left its results"
    )
    args = p.parse_args(argv)
    if args.weights is not None and not Path(args.weights).is_file():
        p.error(f"--weights: {args.weights} does not exist")
    if args.num_classes < 1:
        p.error(f"--num_classes must be >= 1, got {args.num_classes}")
    weights = args.weights or str(Path(args.workdir) / "resnet18.safetensors")
    config = make_config(
        p,
        cifar.Config,
        {"learning_rate": "--lr", "init_from": "--weights"},
        model="resnet",
        arch="resnet18",
        stem="imagenet",
        zero_init_residual=False,
        rgb=True,
        init_from=weights,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        weight_decay=0.0,
        crop_padding=0,
        data_dir=args.data_dir,
        overwrite=args.overwrite,
    )
    return args, config


def main(argv=None):
    args, config = parse_args(argv)
    show_progress()
    runtime.enable_compilation_cache()
    workdir = Path(args.workdir)
    if args.weights is None:  # 1. torchvision's ResNet-18 layout, seeded: the file a user would bring
        workdir.mkdir(parents=True, exist_ok=True)
        save_safetensors(torch_labs.resnet18(args.num_classes, seed=args.seed).state_dict(), config.init_from)
    state_dict = load_state_dict_file(config.init_from)

    # 2. The port: the same names, so nothing to rename; from_state_dict checks every key and shape.
    images = np.random.default_rng(args.seed).standard_normal((8, 64, 64, 3)).astype(np.float32)
    model = resnet18(num_classes=args.num_classes, stem="imagenet")
    variables = from_state_dict(model, state_dict, images)
    torch_model = torch_labs.load_arrays(torch_labs.resnet18(args.num_classes), state_dict)
    print(f"loaded {config.init_from}: {len(state_dict)} tensors into jaxnn's resnet18(stem='imagenet')\n")

    # 3. Every layer against PyTorch, on the same 8 images of 64x64, in evaluation and training mode.
    report = compare_with_torch(model, variables, torch_model, images)
    print(report)
    trained = compare_with_torch(model, variables, torch_model, images, train=True)
    print(
        f"\ntraining mode: {sum(r.ok for r in trained.rows)} of {len(trained.rows)} layer outputs, gradients and "
        f"running statistics agree\n"
    )
    report.check()
    trained.check()

    # 4. Fine-tune: the ported features, a new 10-class head, MNIST as 32x32 RGB.
    result = cifar.train_and_evaluate(config, workdir / "finetune")
    print(
        f"fine-tuned on {config.train_subset} MNIST images for {config.epochs} epoch(s): test accuracy "
        f"{100 * result.test_accuracy:.2f} % on {config.test_subset}; parameters in {result.params_path}"
    )
    return report, result
