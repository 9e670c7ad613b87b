"""Lab 11-6: packed sequences. Pads, packs and unpacks five words of different lengths exactly as
torch.nn.utils.rnn does, then runs RNN(19, 30) on the padded batch with and without seq_lengths and shows where the
two differ and why. The recipe is jaxnn.labs.packed.run.

The same command as ``python -m jaxnn packed_sequence``; its flags and printout:
jaxnn/cli/commands/packed_sequence.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("packed_sequence")
