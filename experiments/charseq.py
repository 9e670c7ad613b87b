"""Lab 11: charseq (see jaxnn/char_labs.py for the data and model)."""

from jaxnn.char_labs import lab_arguments, make_lab, print_run, run_lab
from jaxnn.runtime import enable_compilation_cache

LAB = "charseq"


def main(argv=None):
    _, args = lab_arguments(__doc__, argv)
    enable_compilation_cache()
    lab = make_lab(LAB, args.cell)
    run = run_lab(lab, args.seed, args.iterations, args.lr)
    print_run(lab, run)
    return lab, run


if __name__ == "__main__":
    main()
