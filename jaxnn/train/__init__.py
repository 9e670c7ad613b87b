"""Training: the core (:mod:`jaxnn.train.core`: state, steps that take the loss, the two loops) and the
optimizers (:mod:`jaxnn.train.optim`). ``from jaxnn import train`` gives both, as ``train.train_step``,
``train.adam``, ...

Example::

    params = train.init_params(model, jax.random.key(0), x[:1])
    state = train.create_train_state(model, params, train.adam(1e-3))
    step = jax.jit(train.train_step)
    state, metrics = step(state, {"inputs": x, "labels": y}, jax.random.key(1))
"""

from jaxnn.train.core import *  # noqa: F403
from jaxnn.train.core import __all__ as _core
from jaxnn.train.optim import *  # noqa: F403
from jaxnn.train.optim import __all__ as _optim

__all__ = [*_core, *_optim]
