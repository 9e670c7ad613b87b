"""Lab 11-4: time series. An LSTM(5, 10) + Linear(10, 1) predicts next quarter's US real GDP from 7 quarters of 5
series (the shipped public-domain macrodata; the lab's stock prices carry no license), MSE, Adam 0.01, 500
iterations, a 70/30 split in time order, min-max scaling fitted on the training split only.

The same command as ``python -m jaxnn timeseries``; its flags and printout:
jaxnn/cli/commands/timeseries.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("timeseries")
