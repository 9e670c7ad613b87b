"""The labs' recipes: one config dataclass in, a trained result out, every one through the epoch driver
(:func:`jaxnn.train.driver.fit`: a workdir, ``metrics.jsonl``, TensorBoard, ``curves.png``, checkpoints and an
exact resume). :mod:`jaxnn.labs.registry` lists them with the command that runs each (``python -m jaxnn LAB``).

- :mod:`jaxnn.labs.mnist`: labs 10-1 (``MnistCNN``) and 10-2 (``DeepCNN``);
- :mod:`jaxnn.labs.image_folder`: lab 10-4; :mod:`jaxnn.labs.cifar`: labs 10-5 (VGG) and 10-6 (ResNet);
- :mod:`jaxnn.labs.char`: labs 11-2 to 11-4 (hihello, charseq, longseq), and ``run_lab`` for a run that writes
  nothing (seed sweeps, parameters from PyTorch);
- :mod:`jaxnn.labs.timeseries`: lab 11-4's time series; :mod:`jaxnn.labs.seq2seq`: lab 11-5.

Each is ``train_and_evaluate(config, workdir) -> Result``. :mod:`jaxnn.labs.packed` (lab 11-6) is a demo.
"""
