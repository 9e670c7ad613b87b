"""Lab 11-5: seq2seq, English -> Korean on the lab's four sentence pairs (Embedding + GRU encoder and decoder).

The same command as ``python -m jaxnn seq2seq``; its flags and printout:
jaxnn/cli/commands/seq2seq.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("seq2seq")
