"""Lab 11-1: RNN basics. input_size 4, hidden_size 2, the 'hello' one-hots: a (3, 5, 4) batch -> (3, 5, 2) outputs.

The same command as ``python -m jaxnn rnn_basics``; its flags and printout:
jaxnn/cli/commands/rnn_basics.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("rnn_basics")
