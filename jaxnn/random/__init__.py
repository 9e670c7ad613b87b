"""PyTorch's CPU random streams in jaxnn: a ``torch.Generator`` whose draws are PyTorch's, bit for bit
(:mod:`jaxnn.random.generator`), for a run that starts from the numbers a ``torch.manual_seed`` run starts from.

Example::

    from jaxnn import random as torch_random
    torch_random.manual_seed(777)
    w = torch_random.uniform((625, 2048), -0.03, 0.03)   # after torch.manual_seed(777): the same numbers
"""

from jaxnn.random import init
from jaxnn.random.generator import (
    Generator,
    dataloader_order,
    default_generator,
    manual_seed,
    normal,
    rand,
    randint,
    randn,
    randperm,
    uniform,
)

__all__ = [
    "init",
    "Generator",
    "default_generator",
    "manual_seed",
    "rand",
    "randn",
    "uniform",
    "normal",
    "randperm",
    "randint",
    "dataloader_order",
]
