"""train.sgd and train.step_lr against torch.optim.SGD and StepLR: parameters after several steps, over momentum,
dampening, weight decay and nesterov, and the learning rate of every epoch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jaxnn import train
from jaxnn.testing import assert_close


@given(
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    dampening=st.sampled_from([0.0, 0.3]),
    weight_decay=st.sampled_from([0.0, 5e-4, 0.1]),
    nesterov=st.booleans(),
    lr=st.sampled_from([0.1, 0.005]),
    seed=st.integers(0, 2**31 - 1),
)
def test_sgd_matches_torch_over_several_steps(momentum, dampening, weight_decay, nesterov, lr, seed):
    if nesterov and (momentum == 0 or dampening):
        with pytest.raises(ValueError, match="nesterov"):
            train.sgd(lr, momentum, dampening, weight_decay, nesterov)
        return
    r = np.random.default_rng(seed)
    p0 = r.standard_normal((3, 4)).astype(np.float32)
    grads = [r.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]
    tp = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.SGD(
        [tp], lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov
    )
    tx = train.sgd(lr, momentum, dampening, weight_decay, nesterov)
    params = {"w": jnp.asarray(p0)}
    state = tx.init(params)
    for i, g in enumerate(grads):
        tp.grad = torch.tensor(g)
        opt.step()
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
        assert_close(params["w"], tp.detach().numpy(), what=f"params after step {i + 1}")


def test_step_lr_gives_torchs_rate_for_every_epoch():
    steps_per_epoch, step_size, gamma = 3, 2, 0.5
    schedule = train.step_lr(0.1, step_size, steps_per_epoch, gamma)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    for epoch in range(7):
        for k in range(steps_per_epoch):
            assert float(schedule(epoch * steps_per_epoch + k)) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-6)
        opt.step()
        sched.step()


def test_sgd_is_cached_and_checks_its_arguments():
    assert train.sgd(0.1, 0.9) is train.sgd(0.1, 0.9)
    s = train.step_lr(0.1, 10, 5)
    assert train.sgd(s, 0.9) is train.sgd(train.step_lr(0.1, 10, 5), 0.9)
    for kwargs, match in (
        (dict(learning_rate=float("nan")), "learning_rate"),
        (dict(learning_rate=0.1, momentum=-0.1), "momentum"),
        (dict(learning_rate=0.1, weight_decay=float("inf")), "weight_decay"),
    ):
        with pytest.raises(ValueError, match=match):
            train.sgd(**kwargs)
    with pytest.raises(ValueError, match="step_size"):
        train.step_lr(0.1, 0, 5)
    with pytest.raises(ValueError, match="gamma"):
        train.step_lr(0.1, 1, 5, gamma=float("nan"))
    assert jax.tree.leaves(train.sgd(0.1).init({"w": jnp.ones(2)})) == []  # plain SGD keeps no state
