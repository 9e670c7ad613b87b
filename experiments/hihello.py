"""Lab 11-2: hihello, an RNN learns to map 'hihell' to 'ihello' (see jaxnn/char_labs.py for the data and model)."""

from jaxnn import char_labs


def main(argv=None):
    return char_labs.main("hihello", __doc__, argv)


if __name__ == "__main__":
    main()
