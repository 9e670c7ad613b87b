"""Lab 11-4: time series. An LSTM(5, 10) + Linear(10, 1) predicts next quarter's US real GDP from 7 quarters of 5
series (the shipped public-domain macrodata; the lab's stock prices carry no license), MSE, Adam 0.01, 500
iterations, a 70/30 split in time order, min-max scaling fitted on the training split only.

Prints each epoch's mean training loss and the test loss (MSE on the scaled data; 5 epochs of 100 iterations), then
train and test RMSE in billions of dollars. Writes metrics.jsonl, TensorBoard event files (--logdir), curves.png,
params.npz and predictions.png (predicted against true values on the test split) to --workdir; --resume continues
a killed run. The recipe is jaxnn.labs.timeseries.train_and_evaluate.
"""

from pathlib import Path

from jaxnn import runtime
from jaxnn.cli import flags as cli
from jaxnn.cli.flags import RUN_FLAGS, add_config_flags, config_from_flags, show_progress
from jaxnn.cli.processes import add_process_flags, start_processes
from jaxnn.labs import timeseries


def main(argv=None) -> timeseries.Result:
    p = cli.ArgumentParser(__doc__)
    names = add_config_flags(p, timeseries.Config, RUN_FLAGS)
    p.add_argument(
        "--workdir", type=cli.path_flag, default="runs/timeseries", help="where results go (runs/timeseries)"
    )
    add_process_flags(p)
    args = p.parse_args(argv)
    start_processes(p, args)  # before anything else touches JAX
    config = config_from_flags(p, timeseries.Config, args, names, progress=False)
    show_progress()
    runtime.enable_compilation_cache()
    result = timeseries.train_and_evaluate(config, Path(args.workdir))
    print(
        f"train RMSE: {result.train_rmse:.1f}, test RMSE: {result.test_rmse:.1f} (billions of chained 2005 dollars; "
        f"real GDP ranges over {result.test_targets.min():.0f}-{result.test_targets.max():.0f} in the test split)"
    )
    if result.plot_path:
        print(f"predicted against true values on the test split: {result.plot_path}")
    return result
