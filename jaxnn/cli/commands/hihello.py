"""Lab 11-2: hihello, an RNN learns to map 'hihell' to 'ihello' (see jaxnn/labs/char.py for the data and model)."""

from jaxnn.cli.commands import _char


def main(argv=None):
    return _char.char_lab_main("hihello", __doc__, argv)
