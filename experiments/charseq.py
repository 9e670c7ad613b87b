"""Lab 11-3: charseq, an RNN learns to predict each next character of ' if you want you' (see jaxnn/char_labs.py for the data and model)."""

from jaxnn import char_labs


def main(argv=None):
    return char_labs.main("charseq", __doc__, argv)


if __name__ == "__main__":
    main()
