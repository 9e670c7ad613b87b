"""Lab 11-4: longseq, a 2-layer RNN plus a Dense head learns a sentence from windows of 10 characters, then
generates text from a prompt, greedily and with a temperature (see jaxnn/labs/char.py for the data and model)."""

import math
from pathlib import Path

import jax
import numpy as np

from jaxnn import runtime
from jaxnn.cli import flags as cli
from jaxnn.cli.commands import _char
from jaxnn.cli.commands._char import char_lab_arguments, print_run
from jaxnn.labs import char
from jaxnn.labs.char import make_lab
from jaxnn.models import generate
from jaxnn.models.rnn import MAX_GENERATED

LAB = "longseq"


def generation_arguments(parser):
    parser.add_argument("--prompt", default="if you want", help="text to continue after training")
    parser.add_argument("--length", type=int, default=80, help="characters to generate (80)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the second sample")


def main(argv=None):
    parser, args, names = char_lab_arguments(LAB, __doc__, argv, generation_arguments)
    config = _char.char_lab_config(parser, args, names, LAB)
    cli.in_range(parser, args, "length", 1, MAX_GENERATED)
    if not (math.isfinite(args.temperature) and np.float32(args.temperature) > 0):  # 1e-300 is 0 in float32
        parser.error(f"--temperature must be > 0 in float32 (greedy is always shown), got {args.temperature}")
    cli.show_progress()
    runtime.enable_compilation_cache()
    lab = make_lab(LAB, config.cell)
    try:
        prompt = lab.vocab.encode(args.prompt)
    except ValueError as e:  # a character outside the sentence
        parser.error(f"--prompt: {e}")
    result = char.train_and_evaluate(config, Path(args.workdir))
    print_run(result)
    params = result.state.params
    greedy = generate(lab.model, params, prompt, args.length)
    sampled = generate(lab.model, params, prompt, args.length, jax.random.key(args.seed), args.temperature)
    print(f"\ngreedy:             {args.prompt}|{lab.vocab.decode(greedy)}")
    print(f"temperature {args.temperature:<6}  {args.prompt}|{lab.vocab.decode(sampled)}")
    return result
