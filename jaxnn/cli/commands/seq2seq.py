"""Lab 11-5: seq2seq, English -> Korean on the lab's four sentence pairs (Embedding + GRU encoder and decoder).

Trains with teacher forcing (SGD 0.01, 5000 iterations in 5 epochs; all four pairs per iteration, or one random
pair per iteration as the lab does with --one_pair_per_step), prints the loss every 1000 iterations (each epoch's
mean), then decodes every source sentence greedily, as the lab prints it (> source, = target, < translation).
Writes metrics.jsonl, TensorBoard event files, curves.png and params.npz to --workdir; --resume continues a killed
run. The recipe is jaxnn.labs.seq2seq.train_and_evaluate.
"""

from pathlib import Path

from jaxnn import runtime
from jaxnn.cli.flags import parse_recipe, show_progress
from jaxnn.labs import seq2seq


def main(argv=None) -> seq2seq.Result:
    config, args = parse_recipe(__doc__, seq2seq.Config, argv, "runs/seq2seq")
    show_progress()
    runtime.enable_compilation_cache()
    result = seq2seq.train_and_evaluate(config, Path(args.workdir))
    every = config.iterations // config.epochs
    for record in result.records:  # each epoch's mean, as the lab prints every 1000 iterations
        i = record["epoch"] * every
        print(f"[{i} - {100 * i / config.iterations:.1f}%] loss = {record['train_nll_per_word']:05.4f}")
    for (source, target), words, exact in zip(result.pairs, result.translations, result.exact, strict=True):
        print(f"> {source}\n= {target}\n< {' '.join(words)}{'' if exact else '   (not the target)'}\n")
    print(f"{sum(result.exact)} of {len(result.pairs)} translations exact")
    return result
