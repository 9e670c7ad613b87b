"""How often each lab 11 character task ends on its target over several seeds (a Markdown table for README.md)."""

from jaxnn.cli import errors
from jaxnn.cli import flags as cli
from jaxnn.labs.char import make_lab, run_lab


def main(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1 (10)")
    parser.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated cells (rnn,lstm,gru)")
    args = parser.parse_args(argv)
    cli.in_range(parser, args, "seeds", 1, 10_000)
    print("| lab | cell | target | seeds on target | of which exact to the last character | final losses |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("hihello", "charseq", "longseq"):
        for cell in args.cells.split(","):
            lab = make_lab(name, cell)
            hits, exact, losses, missed = 0, 0, [], []
            for seed in range(args.seeds):
                run = run_lab(lab, seed)
                hits += lab.on_target(run.final)
                exact += run.final == lab.target
                losses.append(float(run.losses[-1]))
                if not lab.on_target(run.final):
                    missed.append(seed)
            target = lab.target if len(lab.target) < 20 else lab.target[:16] + "..."
            print(
                f"| {name} | {cell} | {target!r} | {hits}/{args.seeds}"
                f"{' (missed: ' + ', '.join(map(str, missed)) + ')' if missed else ''} | {exact}/{args.seeds} | "
                f"{min(losses):.3f} to {max(losses):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    errors.run(main, "rnn_seed_table.py")
