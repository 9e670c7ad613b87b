"""Lab 11-3: charseq, an RNN learns to predict each next character of ' if you want you' (see jaxnn/labs/char.py for
the data and model)."""

import cli


def main(argv=None):
    return cli.char_lab_main("charseq", __doc__, argv)


if __name__ == "__main__":
    cli.run(main)
