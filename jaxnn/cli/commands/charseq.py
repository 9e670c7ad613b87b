"""Lab 11-3: charseq, an RNN learns to predict each next character of ' if you want you' (see jaxnn/labs/char.py for
the data and model)."""

from jaxnn.cli.commands import _char


def main(argv=None):
    return _char.char_lab_main("charseq", __doc__, argv)
