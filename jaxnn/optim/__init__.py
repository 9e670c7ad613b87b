"""PyTorch's training semantics, as optax transformations and schedules: ``torch.optim``'s optimizers
(:mod:`~jaxnn.optim.optimizers`), parameter groups (:mod:`~jaxnn.optim.groups`), ``torch.optim.lr_scheduler``
(:mod:`~jaxnn.optim.lr_scheduler`) and ``torch.nn.utils``' gradient clipping (:mod:`~jaxnn.optim.clip`).

Example (a PyTorch loop: ``clip_grad_norm_(..., 1.0)``, ``AdamW``, ``CosineAnnealingLR`` stepped per epoch)::

    from jaxnn import optim
    from jaxnn.optim import lr_scheduler

    schedule = lr_scheduler.per_epoch(lr_scheduler.cosine_annealing_lr(1e-3, T_max=10), steps_per_epoch)
    tx = optax.chain(optim.clip_by_norm(1.0), optim.adamw(schedule, weight_decay=0.05))
"""

from jaxnn.optim import lr_scheduler
from jaxnn.optim.clip import clip_by_norm, clip_by_value, clip_grad_norm, clip_grad_value, total_norm
from jaxnn.optim.groups import label_params, param_groups
from jaxnn.optim.optimizers import (
    TorchOptState,
    adadelta,
    adagrad,
    adam,
    adamw,
    nadam,
    radam,
    rmsprop,
    set_lr,
    sgd,
)

__all__ = [
    "lr_scheduler",
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "nadam",
    "radam",
    "TorchOptState",
    "set_lr",
    "param_groups",
    "label_params",
    "clip_grad_norm",
    "clip_grad_value",
    "clip_by_norm",
    "clip_by_value",
    "total_norm",
]
