"""Lab 11-2: hihello, an RNN learns to map 'hihell' to 'ihello' (see jaxnn/labs/char.py for the data and model).

The same command as ``python -m jaxnn hihello``; its flags and printout:
jaxnn/cli/commands/hihello.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("hihello")
