"""Lab 11-2: hihello, an RNN learns to map 'hihell' to 'ihello' (see jaxnn/labs/char.py for the data and model)."""

import cli


def main(argv=None):
    return cli.char_lab_main("hihello", __doc__, argv)


if __name__ == "__main__":
    cli.run(main)
