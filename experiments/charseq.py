"""Lab 11-3: charseq, an RNN learns to predict each next character of ' if you want you' (see jaxnn/labs/char.py for
the data and model).

The same command as ``python -m jaxnn charseq``; its flags and printout:
jaxnn/cli/commands/charseq.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("charseq")
