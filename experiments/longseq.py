"""Lab 11-4: longseq, a 2-layer RNN plus a Dense head learns a sentence from windows of 10 characters, then
generates text from a prompt, greedily and with a temperature (see jaxnn/labs/char.py for the data and model).

The same command as ``python -m jaxnn longseq``; its flags and printout:
jaxnn/cli/commands/longseq.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("longseq")
