"""Lab 11-1: RNN basics. input_size 4, hidden_size 2, the 'hello' one-hots: a (3, 5, 4) batch -> (3, 5, 2) outputs.

The PyTorch lab builds ``torch.nn.RNN(4, 2)`` without ``batch_first`` and feeds it a (3, 5, 4) array meant as 3
sequences of 5 characters, so PyTorch reads it as 3 time steps of a batch of 5. Both readings are shown: with
``batch_first=True`` the hidden state runs along each word, time-major it runs across words.
"""

import jax
import numpy as np

from jaxnn.cli import flags as cli
from jaxnn.models import RNN

ONE_HOT = dict(zip("helo", np.eye(4, dtype=np.float32), strict=True))  # the lab's h, e, l, o
WORDS = {word: [ONE_HOT[c] for c in word] for word in ("hello", "eolll", "lleel")}


def main(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn", help="recurrent cell (rnn)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation (0)")
    args = parser.parse_args(argv)
    cli.seed_in_range(parser, args)

    x = np.array(list(WORDS.values()))  # (3, 5, 4): 3 words of 5 one-hot characters
    print(f"input: {list(WORDS)} as one-hots, shape {x.shape}")
    batch_first = RNN(hidden_size=2, cell=args.cell, batch_first=True)
    params = batch_first.init(jax.random.key(args.seed), x)
    out, h_n = batch_first.apply(params, x)
    state = h_n[0] if args.cell == "lstm" else h_n
    print(f"\nbatch_first=True (3 sequences of 5 steps): output {out.shape}, h_n {state.shape}")
    print(np.round(np.asarray(out), 4))

    # The same parameters, reading the array as the PyTorch lab does: 3 time steps of a batch of 5.
    out_tm, h_tm = RNN(hidden_size=2, cell=args.cell, batch_first=False).apply(params, x)
    state = h_tm[0] if args.cell == "lstm" else h_tm
    print(f"\nbatch_first=False (the lab's reading: 3 steps of a batch of 5): output {out_tm.shape}, h_n {state.shape}")
    print(np.round(np.asarray(out_tm), 4))
    same = np.allclose(out_tm, out)
    print(
        f"\nsame numbers either way: {same} (only the first step agrees: "
        f"{np.allclose(np.asarray(out)[0, 0], np.asarray(out_tm)[0, 0])}, since both start from a zero state)"
    )
    return out, out_tm
