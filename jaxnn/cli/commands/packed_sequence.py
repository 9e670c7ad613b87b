"""Lab 11-6: packed sequences. Pads, packs and unpacks five words of different lengths exactly as
torch.nn.utils.rnn does, then runs RNN(19, 30) on the padded batch with and without seq_lengths and shows where the
two differ and why. The recipe is jaxnn.labs.packed.run.
"""

import numpy as np

from jaxnn.cli import flags as cli
from jaxnn.labs import packed


def main(argv=None) -> packed.PackedLab:
    p = cli.ArgumentParser(__doc__)
    p.add_argument("--seed", type=int, default=0, help="seed of the RNN's initialisation (0)")
    args = p.parse_args(argv)
    cli.seed_in_range(p, args)
    lab = packed.run(args.seed)
    print(f"character set ({len(lab.chars)}, <pad> first, then sorted): {list(lab.chars)}")
    for word, idx in zip(packed.WORDS, lab.indices, strict=True):
        print(f"  {word!r:16} -> {idx.tolist()}")
    print(f"\nlengths: {lab.lengths.tolist()}")
    print(f"\npad_sequence(batch_first=True): shape {lab.padded.shape}\n{lab.padded}")
    order = np.argsort(-lab.lengths, kind="stable")
    print(f"\nsorted longest first: indices {order.tolist()}")
    ps = lab.packed_sorted
    print(f"\npack_sequence(sorted words): data {ps.data.tolist()}\n  batch_sizes {ps.batch_sizes.tolist()}")
    pk = lab.packed
    print(
        f"\npack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False):\n"
        f"  data (same as above) {np.array_equal(pk.data, ps.data)}, batch_sizes {pk.batch_sizes.tolist()}\n"
        f"  sorted_indices {pk.sorted_indices.tolist()}, unsorted_indices {pk.unsorted_indices.tolist()}"
    )
    same = np.array_equal(lab.unpacked, lab.padded) and np.array_equal(lab.unpacked_lengths, lab.lengths)
    print(f"\npad_packed_sequence(packed, batch_first=True) gives back the padded batch and lengths: {same}")

    print(
        f"\nRNN(input {len(lab.chars)}, hidden 30, batch_first=True) on the one-hot padded batch, output "
        f"{lab.output_padded.shape}:"
    )
    for b, word in enumerate(packed.WORDS):
        n = lab.lengths[b]
        past = np.abs(lab.output_padded[b, n:]).max(initial=0.0)
        past_packed = np.abs(lab.output_packed[b, n:]).max(initial=0.0)
        inside = np.abs(lab.output_padded[b, :n] - lab.output_packed[b, :n]).max()
        h_gap = np.abs(lab.h_padded[0, b] - lab.h_packed[0, b]).max()
        print(
            f"  {word!r:16} steps 1-{n}: outputs differ by {inside:.1e}; after step {n}: max |output| "
            f"{past:.3f} without lengths, {past_packed:.3f} with; h_n differs by {h_gap:.3f}"
        )
    print(
        "\nWithin each word both runs agree. Without lengths the RNN keeps reading <pad> characters after a word "
        "ends, so its outputs there are not zero and h_n is the state after the padding; with seq_lengths (PyTorch's "
        "packed semantics) the outputs past each length are zero and h_n is the state after the word's last "
        "character. Only the longest word, which has no padding, has the same h_n either way."
    )
    return lab
