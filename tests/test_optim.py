"""jaxnn.optim against torch.optim: every optimizer, with a scheduler and gradient clipping drawn beside it, trains a
small random model for 100 steps on both sides (float64 equal to 1e-12, float32 by the tolerance model with PyTorch's
float64 run as the exact answer); every scheduler's rates over 300 steps; ReduceLROnPlateau, parameter groups and
clipping on their own."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnn import optim
from jaxnn.optim import lr_scheduler
from jaxnn.testing import assert_close

STEPS = 100


def _optimizer(draw, name, maximize):
    """(jaxnn factory, torch factory) of ``name`` with drawn options; the jaxnn factory takes the rate and the
    momentum schedule of OneCycle (or None), PyTorch's the parameters and the rate."""
    wd = draw(st.sampled_from([0.0, 0.01, 0.3]))
    if name == "sgd":
        momentum = draw(st.sampled_from([0.0, 0.9]))
        nesterov = momentum > 0 and draw(st.booleans())
        dampening = 0.0 if nesterov else draw(st.sampled_from([0.0, 0.2]))
        kw = dict(momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov, maximize=maximize)
        return (
            lambda lr, m: optim.sgd(lr, **{**kw, **({"momentum": m} if m else {})}),
            lambda ps, lr: torch.optim.SGD(ps, lr, **kw),
        )
    if name in ("adam", "adamw", "nadam", "radam"):
        betas = draw(st.sampled_from([(0.9, 0.999), (0.5, 0.9)]))
        kw = dict(betas=betas, eps=draw(st.sampled_from([1e-8, 1e-3])), weight_decay=wd, maximize=maximize)
        if name in ("adam", "adamw"):
            kw["amsgrad"] = draw(st.booleans())
        if name in ("nadam", "radam"):
            kw["decoupled_weight_decay"] = draw(st.booleans())
        if name == "nadam":
            kw["momentum_decay"] = draw(st.sampled_from([4e-3, 0.1]))
        ours = getattr(optim, name)
        theirs = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam}.get(name)
        theirs = theirs or torch.optim.RAdam

        def make(lr, m):
            return ours(lr, **{**kw, **({"betas": (m, betas[1])} if m else {})})

        return make, lambda ps, lr: theirs(ps, lr, **kw)
    if name == "rmsprop":
        kw = dict(
            alpha=draw(st.sampled_from([0.99, 0.9])),
            eps=draw(st.sampled_from([1e-8, 1e-2])),
            weight_decay=wd,
            momentum=draw(st.sampled_from([0.0, 0.5])),
            centered=draw(st.booleans()),
            maximize=maximize,
        )
        return (
            lambda lr, m: optim.rmsprop(lr, **{**kw, **({"momentum": m} if m else {})}),
            lambda ps, lr: torch.optim.RMSprop(ps, lr, **kw),
        )
    if name == "adagrad":
        kw = dict(
            lr_decay=draw(st.sampled_from([0.0, 0.05])),
            weight_decay=wd,
            initial_accumulator_value=draw(st.sampled_from([0.0, 0.1])),
            eps=draw(st.sampled_from([1e-10, 1e-2])),
            maximize=maximize,
        )
        return lambda lr, m: optim.adagrad(lr, **kw), lambda ps, lr: torch.optim.Adagrad(ps, lr, **kw)
    kw = dict(rho=draw(st.sampled_from([0.9, 0.5])), eps=draw(st.sampled_from([1e-6, 1e-3])), weight_decay=wd)
    kw["maximize"] = maximize
    return lambda lr, m: optim.adadelta(lr, **kw), lambda ps, lr: torch.optim.Adadelta(ps, lr, **kw)


MOMENTUM = ("sgd", "adam", "adamw", "nadam", "radam", "rmsprop")  # those OneCycleLR's cycle_momentum can drive


def _scheduler(draw, lr, optimizer_name):
    """(jaxnn schedule or None, torch scheduler factory or None, momentum schedule or None, per epoch or None)."""
    kind = draw(st.sampled_from(["none", "step", "multistep", "exp", "cos", "warm", "linear", "onecycle", "seq"]))
    S, T = lr_scheduler, torch.optim.lr_scheduler  # noqa: N806
    if kind == "none":
        return None, None, None, None
    if kind == "onecycle":
        cycle = draw(st.booleans()) and optimizer_name in MOMENTUM
        kw = dict(
            total_steps=STEPS,
            pct_start=draw(st.sampled_from([0.3, 0.5])),
            anneal_strategy=draw(st.sampled_from(["cos", "linear"])),
            three_phase=draw(st.booleans()),
            cycle_momentum=cycle,
        )
        one = S.one_cycle_lr(lr * 4, **kw)
        return one.lr, lambda opt: T.OneCycleLR(opt, lr * 4, **kw), one.momentum, None
    spe = draw(st.sampled_from([None, 7]))  # stepped per batch, or per epoch of 7 batches
    if kind == "step":
        ours, theirs = S.step_lr(lr, 3, 0.5), lambda opt: T.StepLR(opt, 3, 0.5)
    elif kind == "multistep":
        miles = [2, 5, 5, 40]
        ours, theirs = S.multi_step_lr(lr, miles, 0.5), lambda opt: T.MultiStepLR(opt, miles, 0.5)
    elif kind == "exp":
        ours, theirs = S.exponential_lr(lr, 0.97), lambda opt: T.ExponentialLR(opt, 0.97)
    elif kind == "cos":
        ours, theirs = S.cosine_annealing_lr(lr, 9, lr / 10), lambda opt: T.CosineAnnealingLR(opt, 9, lr / 10)
    elif kind == "warm":
        mult = draw(st.sampled_from([1, 2]))
        ours = S.cosine_annealing_warm_restarts(lr, 3, mult, lr / 20)
        theirs = lambda opt: T.CosineAnnealingWarmRestarts(opt, 3, mult, lr / 20)  # noqa: E731
    elif kind == "linear":
        ours, theirs = S.linear_lr(lr, 0.25, 1.0, 6), lambda opt: T.LinearLR(opt, 0.25, 1.0, 6)
    else:
        ours = S.sequential_lr([S.linear_lr(lr, 0.1, 1.0, 4), S.exponential_lr(lr, 0.9)], [5])

        def theirs(opt):
            return T.SequentialLR(opt, [T.LinearLR(opt, 0.1, 1.0, 4), T.ExponentialLR(opt, 0.9)], [5])

    return (ours if spe is None else S.per_epoch(ours, spe)), theirs, None, spe


def _clipping(draw):
    kind = draw(st.sampled_from(["none", "norm", "value"]))
    if kind == "none":
        return None, None
    if kind == "value":
        v = draw(st.sampled_from([0.05, 0.5]))
        return optim.clip_by_value(v), lambda ps: torch.nn.utils.clip_grad_value_(ps, v)
    max_norm, norm_type = draw(st.sampled_from([0.1, 1.0])), draw(st.sampled_from([2.0, 1.0, math.inf, 3.0]))
    return optim.clip_by_norm(max_norm, norm_type), lambda ps: torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)


def _model(seed):
    r = np.random.default_rng(seed)
    x, y = r.standard_normal((8, 4)), r.standard_normal(8)
    params = {"w": r.standard_normal((4, 3)), "b": r.standard_normal(3) * 0.1, "v": r.standard_normal(3)}
    return x, y, params


def _jax_run(tx, seed, dtype, sign):
    x, y, p0 = _model(seed)
    x, y, p0 = x.astype(dtype), y.astype(dtype), {k: v.astype(dtype) for k, v in p0.items()}

    def loss(p):
        return sign * jnp.mean((jnp.tanh(x @ p["w"] + p["b"]) @ p["v"] - y) ** 2)

    @jax.jit
    def train(p):
        def body(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        (p, _), losses = jax.lax.scan(body, (p, tx.init(p)), None, length=STEPS)
        return p, losses

    return jax.tree.map(np.asarray, train(p0))


def _torch_run(make_opt, make_sched, clip, spe, seed, dtype, sign):
    x, y, p0 = _model(seed)
    ps = {k: torch.nn.Parameter(torch.tensor(v, dtype=dtype)) for k, v in p0.items()}
    xt, yt = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    opt = make_opt(list(ps.values()))
    sched = make_sched(opt) if make_sched else None
    losses = []
    for i in range(STEPS):
        opt.zero_grad()
        loss = sign * torch.mean((torch.tanh(xt @ ps["w"] + ps["b"]) @ ps["v"] - yt) ** 2)
        loss.backward()
        if clip:
            clip(list(ps.values()))
        opt.step()
        if sched and (spe is None or (i + 1) % spe == 0):
            sched.step()
        losses.append(loss.item())
    return {k: v.detach().numpy() for k, v in ps.items()}, np.array(losses)


# Rates at which 100 steps stay on the descent, away from the minimum: an adaptive method that oscillates around it
# turns rounding into chaos, and two float64 runs of the same update then drift apart by 1e-9 within ten steps.
RATES = {"sgd": 0.05, "adagrad": 0.02, "adadelta": 0.5, "rmsprop": 0.001}
NAMES = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam", "radam"]


@settings(max_examples=40)
@given(data=st.data(), name=st.sampled_from(NAMES), seed=st.integers(0, 2**16))
def test_optimizers_with_a_scheduler_and_clipping_match_torch_over_100_steps(data, name, seed):
    lr = RATES.get(name, 0.002) * data.draw(st.sampled_from([1.0, 0.5]), "rate factor")
    maximize = data.draw(st.booleans(), "maximize")  # then the loss is negated: both runs still descend
    ours_opt, theirs_opt = _optimizer(data.draw, name, maximize)
    schedule, theirs_sched, momentum, spe = _scheduler(data.draw, lr, name)
    clip, theirs_clip = _clipping(data.draw)
    tx = ours_opt(schedule if schedule is not None else lr, momentum)
    tx = optax.chain(clip, tx) if clip else tx
    sign = -1.0 if maximize else 1.0
    with jax.enable_x64(True):
        p64, l64 = _jax_run(tx, seed, np.float64, sign)
    t64, tl64 = _torch_run(lambda ps: theirs_opt(ps, lr), theirs_sched, theirs_clip, spe, seed, torch.float64, sign)
    np.testing.assert_allclose(l64, tl64, rtol=1e-12, atol=1e-12, err_msg="float64 losses")
    for k in t64:
        np.testing.assert_allclose(p64[k], t64[k], rtol=1e-12, atol=1e-12, err_msg=f"float64 {k}")
    p32, l32 = _jax_run(tx, seed, np.float32, sign)
    t32, tl32 = _torch_run(lambda ps: theirs_opt(ps, lr), theirs_sched, theirs_clip, spe, seed, torch.float32, sign)
    assert_close(l32, tl32, exact=tl64, what="float32 losses")
    for k in t32:
        assert_close(p32[k], t32[k], exact=t64[k], what=f"float32 {k}")


@given(
    kind=st.sampled_from(["step", "multistep", "exp", "cos", "warm", "linear", "seq"]),
    lr=st.floats(1e-4, 1.0),
    gamma=st.floats(0.1, 0.99),
    period=st.integers(1, 12),
    mult=st.integers(1, 3),
    start=st.floats(0.05, 1.0),
)
def test_schedules_give_torchs_rate_at_every_step(kind, lr, gamma, period, mult, start):
    """300 scheduler steps, float64: the closed forms against PyTorch's recursions."""
    S, T = lr_scheduler, torch.optim.lr_scheduler  # noqa: N806
    miles = sorted({period, 2 * period, 2 * period, 5 * period + 1})
    pairs = {
        "step": (S.step_lr(lr, period, gamma), lambda o: T.StepLR(o, period, gamma)),
        "multistep": (S.multi_step_lr(lr, miles, gamma), lambda o: T.MultiStepLR(o, miles, gamma)),
        "exp": (S.exponential_lr(lr, gamma), lambda o: T.ExponentialLR(o, gamma)),
        "cos": (
            S.cosine_annealing_lr(lr, period, lr * gamma / 10),
            lambda o: T.CosineAnnealingLR(o, period, lr * gamma / 10),
        ),
        "warm": (
            S.cosine_annealing_warm_restarts(lr, period, mult, lr * gamma / 10),
            lambda o: T.CosineAnnealingWarmRestarts(o, period, mult, lr * gamma / 10),
        ),
        "linear": (S.linear_lr(lr, start, 1.0, period), lambda o: T.LinearLR(o, start, 1.0, period)),
        "seq": (
            S.sequential_lr([S.linear_lr(lr, start, 1.0, period), S.exponential_lr(lr, gamma)], [period + 1]),
            lambda o: T.SequentialLR(o, [T.LinearLR(o, start, 1.0, period), T.ExponentialLR(o, gamma)], [period + 1]),
        ),
    }
    ours, theirs = pairs[kind]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr)
    sched, rates = theirs(opt), []
    for _ in range(300):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    with jax.enable_x64(True):
        got = jax.vmap(ours)(jnp.arange(300))
        np.testing.assert_allclose(np.asarray(got), rates, rtol=1e-12, atol=0)
    assert_close(jax.vmap(ours)(jnp.arange(300)), np.array(rates), what="float32 rates")


@given(
    three_phase=st.booleans(),
    strategy=st.sampled_from(["cos", "linear"]),
    pct=st.floats(0.1, 0.9),
    total=st.integers(5, 200),
    use_beta=st.booleans(),
)
def test_one_cycle_gives_torchs_rate_and_momentum_at_every_step(three_phase, strategy, pct, total, use_beta):
    kw = dict(total_steps=total, pct_start=pct, anneal_strategy=strategy, three_phase=three_phase)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], 0.1) if use_beta else torch.optim.SGD([p], 0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.3, **kw)
    rates, momenta = [], []
    for _ in range(total):
        group = opt.param_groups[0]
        rates.append(group["lr"])
        momenta.append(group["betas"][0] if use_beta else group["momentum"])
        opt.step()
        sched.step()
    with jax.enable_x64(True):
        cycle = lr_scheduler.one_cycle_lr(0.3, **kw)
        np.testing.assert_allclose(np.asarray(jax.vmap(cycle.lr)(jnp.arange(total))), rates, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.asarray(jax.vmap(cycle.momentum)(jnp.arange(total))), momenta, rtol=1e-12)


@given(
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    patience=st.integers(0, 3),
    cooldown=st.integers(0, 2),
    min_lr=st.sampled_from([0.0, 1e-3]),
    seed=st.integers(0, 2**16),
)
def test_reduce_lr_on_plateau_follows_torch_and_reaches_the_optimizer(
    mode, threshold_mode, patience, cooldown, min_lr, seed
):
    metrics = np.round(np.random.default_rng(seed).uniform(0, 1, 40), 2)  # rounded: ties and plateaus happen
    kw = dict(mode=mode, factor=0.5, patience=patience, threshold=0.01, threshold_mode=threshold_mode)
    kw.update(cooldown=cooldown, min_lr=min_lr)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], 0.1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    ours = lr_scheduler.ReduceLROnPlateau(0.1, **kw)
    for m in metrics:
        theirs.step(m)
        assert ours.step(m) == opt.param_groups[0]["lr"]
    resumed = lr_scheduler.ReduceLROnPlateau(0.1, **kw)
    resumed.load_state_dict(ours.state_dict())
    assert [resumed.step(m) for m in metrics] == [ours.step(m) for m in metrics]

    tx = optim.sgd(0.1, momentum=0.9)
    params = {"w": jnp.zeros(3)}  # the update is then the step itself, however small
    state = optim.set_lr(tx.init(params), ours.lr)
    updates, state = jax.jit(tx.update)({"w": jnp.full(3, 2.0)}, state, params)
    np.testing.assert_allclose(np.asarray(updates["w"]), -np.float32(ours.lr) * 2.0, rtol=1e-6)
    assert float(state.lr) == np.float32(ours.lr)


def test_param_groups_give_each_group_its_own_rate_and_decay_like_torch():
    x, y, p0 = _model(5)
    tx = optim.param_groups(
        {"decay": optim.adamw(0.003, weight_decay=0.1), "no_decay": optim.adamw(0.01, weight_decay=0.0)},
        optim.label_params(lambda name, p: "no_decay" if p.ndim == 1 else "decay"),
    )
    with jax.enable_x64(True):
        ours, _ = _jax_run(tx, 5, np.float64, 1.0)

    def make(ps):
        return torch.optim.AdamW(
            [{"params": [ps[0]], "weight_decay": 0.1}, {"params": ps[1:], "lr": 0.01, "weight_decay": 0.0}], 0.003
        )

    theirs, _ = _torch_run(make, None, None, None, 5, torch.float64, 1.0)
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-12, err_msg=k)
    with pytest.raises(ValueError, match=r"labels name groups \['other'\]"):
        optim.param_groups({"decay": optim.sgd(0.1)}, lambda p: jax.tree.map(lambda _: "other", p)).init(p0)


@given(
    norm_type=st.sampled_from([2.0, 1.0, math.inf, 3.5, 0.5]),
    max_norm=st.sampled_from([0.1, 1.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_clipping_matches_torch_and_returns_the_norm(norm_type, max_norm, seed):
    r = np.random.default_rng(seed)
    grads = {"a": r.standard_normal((3, 4)), "b": r.standard_normal(5) * 3}
    ts = [torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64)) for v in grads.values()]
    for t, v in zip(ts, grads.values(), strict=True):
        t.grad = torch.tensor(v)
    norm = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type)
    with jax.enable_x64(True):
        clipped, ours = optim.clip_grad_norm(grads, max_norm, norm_type)
        np.testing.assert_allclose(float(ours), norm.item(), rtol=1e-12)
        for t, v in zip(ts, clipped.values(), strict=True):
            np.testing.assert_allclose(np.asarray(v), t.grad.numpy(), rtol=1e-12)
        values = optim.clip_grad_value(grads, max_norm / 10)
    for t, v in zip(ts, grads.values(), strict=True):
        t.grad = torch.tensor(v)
    torch.nn.utils.clip_grad_value_(ts, max_norm / 10)
    for t, v in zip(ts, values.values(), strict=True):
        np.testing.assert_array_equal(np.asarray(v), t.grad.numpy())


def test_clip_grad_norm_raises_on_a_non_finite_norm_where_asked_eagerly_and_jitted():
    grads = {"a": jnp.array([1.0, jnp.nan])}
    _, norm = optim.clip_grad_norm(grads, 1.0)  # PyTorch's default: scaled by the NaN norm, no error
    assert np.isnan(norm)
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    with pytest.raises(Exception, match="non-finite"):
        jax.block_until_ready(jax.jit(lambda g: optim.clip_grad_norm(g, 1.0, error_if_nonfinite=True))(grads))
    clipped, _ = jax.jit(lambda g: optim.clip_grad_norm(g, 1.0, error_if_nonfinite=True))({"a": jnp.ones(2)})
    np.testing.assert_allclose(np.asarray(clipped["a"]), 1 / (np.sqrt(2) + 1e-6), rtol=1e-6)


STATE_NAMES = {
    "sgd": (dict(momentum=0.9), torch.optim.SGD, ["momentum_buffer"]),
    "adam": (dict(amsgrad=True), torch.optim.Adam, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    "adamw": ({}, torch.optim.AdamW, ["exp_avg", "exp_avg_sq"]),
    "rmsprop": (dict(momentum=0.5, centered=True), torch.optim.RMSprop, ["square_avg", "momentum_buffer", "grad_avg"]),
    "adagrad": ({}, torch.optim.Adagrad, ["sum"]),
    "adadelta": ({}, torch.optim.Adadelta, ["square_avg", "acc_delta"]),
    "nadam": ({}, torch.optim.NAdam, ["exp_avg", "exp_avg_sq", "mu_product"]),
    "radam": ({}, torch.optim.RAdam, ["exp_avg", "exp_avg_sq"]),
}


@pytest.mark.parametrize("name", STATE_NAMES)
def test_optimizer_state_has_torchs_names_and_values(name):
    """The state after two steps holds PyTorch's per-parameter tensors under PyTorch's names."""
    kw, cls, names = STATE_NAMES[name]
    p0, g = np.linspace(-1, 1, 6), np.linspace(0.5, -2, 6)
    tx = getattr(optim, name)(0.01, **kw)
    with jax.enable_x64(True):
        params = {"w": jnp.asarray(p0)}
        state = tx.init(params)
        for _ in range(2):
            updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
            params = optax.apply_updates(params, updates)
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = cls([p], 0.01, **kw)
    for _ in range(2):
        p.grad = torch.tensor(g)
        opt.step()
    theirs = opt.state[p]
    assert sorted(state.state) == sorted(names) == sorted(set(theirs) - {"step"})
    assert int(state.step) == int(theirs.get("step", 2))  # SGD keeps no step
    for key in names:
        np.testing.assert_allclose(np.asarray(state.state[key]["w"]), theirs[key].numpy(), rtol=1e-12, err_msg=key)


def test_bad_hyperparameters_are_refused_by_name():
    for make, match in (
        (lambda: optim.adam(float("nan")), "lr"),
        (lambda: optim.adam(betas=(0.9, 1.0)), r"betas\[1\]"),
        (lambda: optim.adam(betas=0.9), "betas must be a pair"),
        (lambda: optim.sgd(0.1, momentum=-1), "momentum"),
        (lambda: optim.sgd(0.1, nesterov=True), "nesterov"),
        (lambda: optim.adadelta(rho=1.5), "rho"),
        (lambda: optim.rmsprop(eps=-1.0), "eps"),
        (lambda: optim.clip_grad_norm({}, -1.0), "max_norm"),
        (lambda: optim.clip_grad_norm({}, 1.0, norm_type="fro"), "norm_type"),
        (lambda: lr_scheduler.step_lr(0.1, 0), "step_size"),
        (lambda: lr_scheduler.one_cycle_lr(0.1), "total_steps"),
        (lambda: lr_scheduler.sequential_lr([lr_scheduler.exponential_lr(0.1, 0.9)], [3]), "one milestone fewer"),
        (lambda: lr_scheduler.ReduceLROnPlateau(0.1, factor=1.0), "factor"),
        (lambda: lr_scheduler.per_epoch(lambda k: 0.1, 0), "steps_per_epoch"),
    ):
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match="update needs params"):
        tx = optim.adam()
        tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


@settings(max_examples=10)  # each example compiles its step
@given(mode=st.sampled_from(["min", "max"]), patience=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_reduce_lr_on_plateau_drives_a_100_step_run_like_torch(mode, patience, seed):
    """A 100-step run in epochs of 10 steps, the epoch's mean loss (or its negative, for mode 'max') to
    ReduceLROnPlateau after each, its rate handed to the optimizer: the same rates and parameters as PyTorch's."""
    x, y, p0 = _model(seed)
    kw = dict(mode=mode, factor=0.5, patience=patience, threshold=0.05)
    sign = 1.0 if mode == "min" else -1.0
    with jax.enable_x64(True):
        tx = optim.adam(0.01)
        plateau = lr_scheduler.ReduceLROnPlateau(0.01, **kw)

        def loss(p):
            return jnp.mean((jnp.tanh(x @ p["w"] + p["b"]) @ p["v"] - y) ** 2)

        @jax.jit
        def step(p, s):
            value, g = jax.value_and_grad(loss)(p)
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s, value

        params, state, rates = dict(p0), tx.init(p0), []
        for _epoch in range(10):
            losses = []
            for _ in range(10):
                params, state, value = step(params, state)
                losses.append(float(value))
            rates.append(plateau.step(sign * np.mean(losses)))
            state = optim.set_lr(state, rates[-1])
    ps = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in p0.items()}
    opt = torch.optim.Adam(list(ps.values()), 0.01)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    xt, yt, theirs = torch.tensor(x), torch.tensor(y), []
    for _epoch in range(10):
        losses = []
        for _ in range(10):
            opt.zero_grad()
            value = torch.mean((torch.tanh(xt @ ps["w"] + ps["b"]) @ ps["v"] - yt) ** 2)
            value.backward()
            opt.step()
            losses.append(value.item())
        sched.step(sign * np.mean(losses))
        theirs.append(opt.param_groups[0]["lr"])
    assert rates == theirs
    for k in ps:
        np.testing.assert_allclose(np.asarray(params[k]), ps[k].detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=k)
