"""Labs 10-5 and 10-6: VGG and ResNet with SGD + momentum and StepLR, on CIFAR-10 or the shipped MNIST.

    python experiments/cifar.py --model resnet --dataset cifar10 --epochs 150   # lab 10-6-2 (needs the archive)
    python experiments/cifar.py --model vgg --dataset cifar10 --epochs 50       # lab 10-5-2, with BatchNorm
    python experiments/cifar.py --model resnet --arch resnet18 --epochs 2       # on MNIST padded to 32x32

Every value not given is the lab's (batch size, learning rate, weight decay, StepLR, RandomCrop padding). CIFAR-10
is read from the official cifar-10-binary.tar.gz in --manual_dir (default data/cifar10 or $JAXNN_CIFAR10_DIR);
nothing is downloaded. Writes metrics.jsonl, TensorBoard event files (--logdir), curves.png, predictions.png and
params.npz to --workdir. The recipe is jaxnn.labs.cifar.train_and_evaluate.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import cli
from cli import make_config, show_progress

from jaxnn import runtime
from jaxnn.labs import cifar
from jaxnn.models.vgg import CFGS


def parse_args(argv=None) -> tuple[cifar.Config, Path]:
    """The flags as a recipe config and the workdir; a bad flag exits with argparse's message and code 2."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(cifar.LAB), default="resnet", help="vgg: lab 10-5, resnet: lab 10-6")
    p.add_argument(
        "--arch", choices=sorted(cifar.ARCHS), default="lab", help="ResNet blocks (lab: the lab's ResNet-50)"
    )
    p.add_argument("--cfg", choices=sorted(CFGS), default="cifar", help="VGG cfg (cifar: lab 10-5-2's)")
    p.add_argument("--no_batch_norm", action="store_true", help="VGG without BatchNorm (as lab 10-5-2)")
    p.add_argument(
        "--no_zero_init_residual",
        action="store_true",
        help="ResNet: last BatchNorm of each block starts at 1, not 0 (the lab's 0 learns slowly at first)",
    )
    p.add_argument("--stem", choices=["cifar", "imagenet"], default="cifar", help="ResNet stem (cifar: the lab's)")
    p.add_argument("--init_from", default=None, help="ResNet: fine-tune a ported state_dict (.safetensors or .pth)")
    p.add_argument("--rgb", action="store_true", help="repeat grey images to 3 channels (for RGB ported weights)")
    p.add_argument("--dataset", choices=cifar.DATASETS, default="mnist", help="cifar10 or the shipped mnist")
    p.add_argument("--epochs", type=int, default=1, help="training epochs (1; the labs run 50 and 150)")
    p.add_argument("--batch_size", type=int, default=None, help="batch size (the lab's: vgg 512, resnet 256)")
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate (the lab's: vgg 0.005, resnet 0.1)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0.9)")
    p.add_argument("--weight_decay", type=float, default=None, help="weight decay (the lab's: vgg 0, resnet 5e-4)")
    p.add_argument("--step_size", type=int, default=None, help="StepLR epochs per decay (vgg 5, resnet 10)")
    p.add_argument("--gamma", type=float, default=None, help="StepLR decay factor (vgg 0.9, resnet 0.5)")
    p.add_argument("--crop_padding", type=int, default=None, help="RandomCrop padding (vgg 0, resnet 4; 0: off)")
    p.add_argument("--flip", action="store_true", help="random horizontal flips in training (the labs have none)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and augmentation")
    p.add_argument("--train_subset", type=int, default=None, help="train on the first N training images only")
    p.add_argument("--test_subset", type=int, default=None, help="test on the first N test images only")
    p.add_argument("--data_dir", default=None, help="TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    p.add_argument("--manual_dir", default=None, help="folder of the MNIST files or of cifar-10-binary.tar.gz")
    p.add_argument("--workdir", default=None, help="where results go (default: runs/<model>_<dataset>)")
    p.add_argument("--logdir", default=None, help="TensorBoard event files (default: <workdir>/tensorboard)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    config = make_config(
        p,
        cifar.Config,
        {"learning_rate": "--lr"},
        model=args.model,
        arch=args.arch,
        cfg=args.cfg,
        batch_norm=not args.no_batch_norm,
        zero_init_residual=not args.no_zero_init_residual,
        stem=args.stem,
        init_from=args.init_from,
        rgb=args.rgb,
        dataset=args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        step_size=args.step_size,
        gamma=args.gamma,
        crop_padding=args.crop_padding,
        flip=args.flip,
        seed=args.seed,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
        logdir=args.logdir,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    return config, Path(args.workdir or Path("runs") / f"{args.model}_{args.dataset}")


def main(argv=None) -> cifar.Result:
    config, workdir = parse_args(argv)
    show_progress()
    runtime.enable_compilation_cache()
    t_start = time.time()
    result = cifar.train_and_evaluate(config, workdir)
    print(f"Accuracy of the network on the {config.dataset} test images: {100 * result.test_accuracy:.2f} %")
    print(
        f"wall time {time.time() - t_start:.1f} s; metrics in {result.metrics_path}, "
        f"TensorBoard: tensorboard --logdir {result.logdir}; parameters in {result.params_path}"
        + (f"; samples in {result.predictions_path}" if result.predictions_path else "")
    )
    return result


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
