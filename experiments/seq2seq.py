"""Lab 11-5: seq2seq, English -> Korean on the lab's four sentence pairs (Embedding + GRU encoder and decoder).

Trains with teacher forcing (SGD 0.01, 5000 iterations; all four pairs per iteration, or one random pair per
iteration as the lab does with --one_pair_per_step), prints the loss every 1000 iterations, then decodes every
source sentence greedily, as the lab prints it (> source, = target, < translation). The recipe is
jaxnn.labs.seq2seq.train_and_evaluate.
"""

import argparse

import cli
from cli import make_config

from jaxnn import runtime
from jaxnn.labs import seq2seq


def main(argv=None) -> seq2seq.Result:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=5000, help="SGD steps (5000, as the lab)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (0.01)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and of the pair order (0)")
    p.add_argument("--one_pair_per_step", action="store_true", help="the lab's recipe: one random pair per step")
    args = p.parse_args(argv)
    config = make_config(
        p,
        seq2seq.Config,
        {"learning_rate": "--lr"},
        iterations=args.iterations,
        learning_rate=args.lr,
        seed=args.seed,
        one_pair_per_step=args.one_pair_per_step,
    )
    runtime.enable_compilation_cache()
    result = seq2seq.train_and_evaluate(config)
    every = max(1, config.iterations // 5)
    for i in range(every, config.iterations + 1, every):
        print(f"[{i} - {100 * i / config.iterations:.1f}%] loss = {result.losses[i - every : i].mean():05.4f}")
    for (source, target), words, exact in zip(result.pairs, result.translations, result.exact, strict=True):
        print(f"> {source}\n= {target}\n< {' '.join(words)}{'' if exact else '   (not the target)'}\n")
    print(f"{sum(result.exact)} of {len(result.pairs)} translations exact")
    return result


if __name__ == "__main__":
    cli.run(main)
