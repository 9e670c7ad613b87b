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
from jaxnn.cli.flags import parse_recipe, show_progress
from jaxnn.labs import timeseries


def main(argv=None) -> timeseries.Result:
    config, args = parse_recipe(__doc__, timeseries.Config, argv, "runs/timeseries")
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
