"""Lab 11: hihello (see jaxnn/char_labs.py for the data and model)."""

import argparse

from jaxnn.char_labs import make_lab, print_run, run_lab
from jaxnn.runtime import enable_compilation_cache

LAB = "hihello"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn", help="recurrent cell (rnn)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation (0)")
    parser.add_argument("--iterations", type=int, default=None, help="Adam steps (the lab's count by default)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (the lab's 0.1 by default)")
    args = parser.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        parser.error(f"--iterations must be >= 1, got {args.iterations}")
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    enable_compilation_cache()
    lab = make_lab(LAB, args.cell)
    run = run_lab(lab, args.seed, args.iterations, args.lr)
    print_run(lab, run)
    return lab, run


if __name__ == "__main__":
    main()
