"""Labs 10-5 and 10-6: VGG and ResNet with SGD + momentum and StepLR, on CIFAR-10 or the shipped MNIST.

    python experiments/cifar.py --model resnet --dataset cifar10 --epochs 150   # lab 10-6-2 (needs the archive)
    python experiments/cifar.py --model vgg --dataset cifar10 --epochs 50       # lab 10-5-2, with BatchNorm
    python experiments/cifar.py --model resnet --arch resnet18 --epochs 2       # on MNIST padded to 32x32

Every value not given is the lab's (batch size, learning rate, weight decay, StepLR, RandomCrop padding). CIFAR-10
is read from the official cifar-10-binary.tar.gz in --manual_dir (default data/cifar10 or $JAXNN_CIFAR10_DIR);
nothing is downloaded. Writes metrics.jsonl, TensorBoard event files (--logdir), curves.png, predictions.png and
params.npz to --workdir. The recipe is jaxnn.labs.cifar.train_and_evaluate.
"""

import time
from pathlib import Path

from jaxnn import runtime
from jaxnn.cli.flags import parse_recipe, show_progress
from jaxnn.labs import cifar


def parse_args(argv=None) -> tuple[cifar.Config, Path]:
    """The flags as a recipe config and the workdir; a bad flag exits with argparse's message and code 2."""
    config, args = parse_recipe(__doc__, cifar.Config, argv, None, "where results go (default: runs/<model>_<dataset>)")
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
