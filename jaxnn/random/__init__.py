"""PyTorch's CPU random streams in jaxnn: a ``torch.Generator`` whose draws are PyTorch's, bit for bit
(:mod:`jaxnn.random.generator`), ``torch.nn.init`` on it (:mod:`jaxnn.random.init`), the lab models built as
their PyTorch scripts build them (:mod:`jaxnn.random.models`), and a training loop's batch order, crops, flips and
dropout masks (:mod:`jaxnn.random.run`): a run that is the one a ``torch.manual_seed`` run is (``--torch_seed``).

Example::

    from jaxnn import random as torch_random
    torch_random.manual_seed(777)
    w = torch_random.uniform((625, 2048), -0.03, 0.03)   # after torch.manual_seed(777): the same numbers
"""

from jaxnn.random import init, run
from jaxnn.random.generator import *  # noqa: F403
from jaxnn.random.generator import __all__ as _generator
from jaxnn.random.models import lab_state_dict, torch_init

__all__ = ["init", "run", "lab_state_dict", "torch_init", *_generator]
