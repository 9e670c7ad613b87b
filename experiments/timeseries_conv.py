"""A 1-D convolution and a GRU on lab 11-4's time series: a recipe of our own, added as README's "Adding a lab" says.

The same command as ``python -m jaxnn timeseries_conv``; it has no command module of its own, so its flags come from
its config and it prints its result's numbers (jaxnn/cli/commands/_recipe.py).
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("timeseries_conv")
