"""The labs' recipes: one config dataclass in, a trained result out. The scripts in ``experiments/`` only turn
flags into a config, call the recipe and print.

- :mod:`jaxnn.labs.mnist`: labs 10-1 (``MnistCNN``) and 10-2 (``DeepCNN``), ``train_and_evaluate(config, workdir)``.
- :mod:`jaxnn.labs.char`: labs 11-2 to 11-4 (hihello, charseq, longseq), ``make_lab`` and ``run_lab``.
"""
