"""Lab 10-4: train the lab's small CNN on a folder of images (root/<class>/<image>), save it and load it back.

    python experiments/image_folder.py                                   # two MNIST digits as 64x128 RGB PNGs
    python experiments/image_folder.py --root custom_data/train_data --test_root custom_data/test_data

Images are resized to 64x128 and converted to RGB, as the lab's pictures. Adam 5e-5, batch 8, 7 epochs (the lab's).
Prints each epoch's cost like the lab, checks that the re-loaded parameters give the same outputs, and prints the
test accuracy. Writes metrics.jsonl, TensorBoard event files (--logdir) and params.npz to --workdir. The recipe is
jaxnn.labs.image_folder.train_and_evaluate.
"""

from jaxnn import runtime
from jaxnn.cli.flags import parse_recipe, show_progress
from jaxnn.labs import image_folder


def parse_args(argv=None):
    config, args = parse_recipe(__doc__, image_folder.Config, argv, "runs/image_folder")
    return config, args.workdir


def main(argv=None) -> image_folder.Result:
    config, workdir = parse_args(argv)
    show_progress()
    runtime.enable_compilation_cache()
    result = image_folder.train_and_evaluate(config, workdir)
    print("Learning Finished!")
    same = "the same outputs" if result.reloaded_max_diff == 0 else f"outputs off by {result.reloaded_max_diff:.3g}"
    print(f"saved {result.params_path} and loaded it back into a new model: {same}")
    if result.test_accuracy is not None:
        print(f"Accuracy: {result.test_accuracy:.4f}")
    print(f"TensorBoard: tensorboard --logdir {result.logdir}")
    return result
