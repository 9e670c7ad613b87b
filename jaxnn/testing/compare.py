"""``compare_with_torch``: run a jaxnn model and its PyTorch original on the same weights and inputs, and report
the worst error of every layer's output, every parameter's gradient, every buffer and the loss over a few steps.

The PyTorch module gets the jaxnn variables through :func:`jaxnn.interop.state_dict.to_state_dict` (so any model
that state_dict interop maps can be compared), layer outputs come from PyTorch forward hooks and Flax's captured
intermediates, matched by name (``layer1/0/conv1`` is ``layer1.0.conv1``), and every comparison goes through
:func:`jaxnn.testing.assert_close`'s tolerance model: in float32 the float64 PyTorch run is the exact reference; in
float64 (``dtype='float64'``, x64 enabled for this call only) the bound is plain rtol/atol, which is where a
ReLU's kink cannot flip a gradient by rounding.

Example::

    report = compare_with_torch(resnet18(num_classes=10), variables, torch_resnet, images, train=True)
    print(report)            # one row per layer output, gradient and buffer, in PyTorch's order
    report.check()           # AssertionError naming the first layer that diverges

Imports torch when called.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxnn.interop.state_dict import _Names, _trace
from jaxnn.testing.tolerance import ATOL, EXACT_FACTOR, RTOL, as_numpy, assert_close, worst_error

_CHANNELS_LAST_1D = ("Conv1d", "MaxPool1d", "AvgPool1d", "BatchNorm1d")
_RECURRENT = ("RNN", "RNNCell", "LSTMCell", "GRUCell")


@dataclasses.dataclass(frozen=True)
class Row:
    """One comparison: ``kind`` is ``'output'``, ``'grad'``, ``'buffer'``, ``'loss'`` or ``'param'``; ``name`` the
    PyTorch module name or state_dict key; ``worst`` the largest absolute error against PyTorch's value;
    ``accuracy`` (with a float64 reference) jaxnn's worst error against the exact answer over PyTorch's own: 1 is as
    accurate as PyTorch, 2 twice as far off."""

    kind: str
    name: str
    shape: tuple[int, ...]
    worst: float
    ok: bool
    detail: str = ""
    accuracy: float | None = None
    step: int | None = None  # the training step of a 'loss' or 'param' row (1 is the first optimizer step)


@dataclasses.dataclass(frozen=True)
class Report:
    """Every comparison of one :func:`compare_with_torch` call, in PyTorch's order (outputs in the order the
    layers ran, then gradients and buffers in state_dict order, then the optimizer steps)."""

    rows: tuple[Row, ...]
    mode: str
    dtype: str
    unmatched: tuple[str, ...] = ()  # PyTorch modules with an output but no jaxnn counterpart (a shared ReLU...)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def first_divergence(self) -> Row | None:
        """The first row that fails: with outputs first, the earliest layer whose output differs."""
        return next((r for r in self.rows if not r.ok), None)

    def check(self) -> Report:
        """Raise ``AssertionError`` naming the first diverging layer, gradient or buffer; return self otherwise."""
        row = self.first_divergence
        if row is not None:
            failed = sum(not r.ok for r in self.rows)
            raise AssertionError(
                f"{self.mode} ({self.dtype}): first divergence at {row.kind} {row.name} "
                f"({failed} of {len(self.rows)} comparisons fail): {row.detail}"
            )
        return self

    def __str__(self) -> str:
        layers = [r for r in self.rows if r.step is None]
        width = max([len(r.name) for r in layers] + [4])
        lines = [
            f"compare_with_torch: {self.mode}, {self.dtype}, {sum(r.ok for r in self.rows)} of {len(self.rows)} agree",
            f"{'kind':<7} {'name':<{width}} {'shape':<18} {'worst error':>11} {'vs torch':>8}  ok",
        ]
        for r in layers:
            shape = "x".join(map(str, r.shape)) or "()"
            accuracy = "" if r.accuracy is None else f"{r.accuracy:.2f}x"
            lines.append(
                f"{r.kind:<7} {r.name:<{width}} {shape:<18} {r.worst:>11.3g} {accuracy:>8}  {'yes' if r.ok else 'NO'}"
            )
        steps = sorted({r.step for r in self.rows if r.step is not None})
        if steps:  # one line per training step: its loss, and the parameter farthest from PyTorch's after it
            head = f"{'step':>5} {'loss error':>11} {'worst parameter error':>22} {'vs torch':>8}"
            lines.append(f"{head}  {'parameter':<{width}} ok")
            for step in steps:
                rows = [r for r in self.rows if r.step == step]
                loss = next((r.worst for r in rows if r.kind == "loss"), float("nan"))
                params = [r for r in rows if r.kind == "param"]
                far = max(params, key=lambda r: r.worst) if params else None
                accuracy = "" if far is None or far.accuracy is None else f"{far.accuracy:.2f}x"
                lines.append(
                    f"{step:>5} {loss:>11.3g} {far.worst if far else float('nan'):>22.3g} {accuracy:>8}  "
                    f"{far.name.split(' ', 2)[-1] if far else '':<{width}} {'yes' if all(r.ok for r in rows) else 'NO'}"
                )
        return "\n".join(lines)


def _judge(kind, name, actual, expected, exact, tolerance, step=None) -> Row:
    a, e = as_numpy(actual), as_numpy(expected)
    accuracy = None
    if exact is not None:
        ours, theirs = worst_error(a, exact), worst_error(e, exact)
        accuracy = ours / theirs if theirs else (1.0 if ours == 0 else float("inf"))
    try:
        assert_close(a, e, exact=exact, what=f"{kind} {name}", **tolerance)
    except AssertionError as err:
        ok, detail = False, str(err)
    else:
        ok, detail = True, ""
    return Row(kind, name, tuple(e.shape), worst_error(a, e), ok, detail, accuracy, step)


def _to_torch_layout(value, kind: str | None):
    """A jaxnn activation in PyTorch's layout: NHWC -> NCHW, and (N, L, C) -> (N, C, L) for the 1-D layers; a
    recurrent layer's outputs and states have PyTorch's layout already."""
    value = np.asarray(value)
    if kind in _RECURRENT:
        return value
    if value.ndim == 4 or (value.ndim == 3 and kind in _CHANNELS_LAST_1D):
        return np.moveaxis(value, -1, 1)
    return value


def _row_major(torch, value, float_dtype):
    """A tensor with PyTorch's default strides. (N, 1, H, W) from NHWC by moveaxis would otherwise keep strides that
    PyTorch reads as channels-last, and then the labs' ``.view()`` of a convolution's output fails."""
    value = np.asarray(value)
    tensor = torch.from_numpy(value.ravel().copy()).reshape(value.shape)
    return tensor.to(float_dtype) if np.issubdtype(value.dtype, np.floating) else tensor


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(type(model).__call__).parameters


def _cast(tree, dtype):
    """Float leaves as NumPy arrays of ``dtype`` (cast on the host: no small XLA program per shape)."""
    return jax.tree.map(lambda v: np.asarray(v, dtype) if np.issubdtype(np.asarray(v).dtype, np.floating) else v, tree)


class _Recorder:
    """PyTorch forward hooks: each named module's outputs (cloned, since in-place ReLUs overwrite them), in order."""

    def __init__(self, module):
        self.outputs: dict[str, list] = {}
        self.order: list[str] = []
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in module.named_modules() if name]

    def _hook(self, name):
        def hook(module, inputs, output):
            if name not in self.outputs:
                self.order.append(name)
            self.outputs.setdefault(name, []).append(_detach(output))

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _detach(output):
    if isinstance(output, (tuple, list)):
        return tuple(_detach(o) for o in output)
    return output.detach().clone().cpu().numpy() if hasattr(output, "detach") else output


def _torch_run(tm, torch_inputs, train, loss_of, steps, training):
    """Outputs per module, final output, parameter gradients, state after the forward, and ``steps`` training steps'
    losses and state after each, all as NumPy. ``training`` holds the optimizer, scheduler and clipping factories."""
    tm.train(train)
    recorder = _Recorder(tm)
    tm.zero_grad()
    out = tm(*torch_inputs)
    recorder.remove()
    loss = loss_of(out)
    loss.backward()
    # Views, not copies (21 M parameters copy in 0.3 s here): each backward pass makes new gradient tensors, and the
    # state is copied only when the steps below will change it in place.
    grads = {k: p.grad.detach().numpy() for k, p in tm.named_parameters() if p.grad is not None}
    state = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    if steps:
        state = {k: v.copy() for k, v in state.items()}
    result = {"outputs": recorder.outputs, "order": recorder.order, "out": _detach(out), "grads": grads, "state": state}
    if steps:
        params = list(tm.parameters())
        opt = training["optimizer"](params)
        scheduler = training["scheduler"](opt) if training["scheduler"] else None
        losses, after = [], []
        for i in range(steps):
            opt.zero_grad()
            step_loss = loss_of(tm(*torch_inputs))
            step_loss.backward()
            if training["clip"]:
                training["clip"](params)
            opt.step()
            if scheduler is not None and (i + 1) % training["every"] == 0:
                scheduler.step()
            losses.append(step_loss.item())
            after.append({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
        result["losses"] = np.array(losses)
        result["after"] = after
    return result


def compare_with_torch(
    model: nn.Module,
    variables: Mapping,
    torch_module,
    *inputs,
    train: bool = False,
    grads: bool = True,
    steps: int = 0,
    labels=None,
    torch_inputs: Sequence | None = None,
    dtype: str = "float32",
    exact: bool = True,
    rename: Mapping[str, str] | None = None,
    flatten_chw: Mapping[str, tuple[int, int, int] | None] | None = None,
    lr: float = 0.01,
    momentum: float = 0.9,
    optimizer: optax.GradientTransformation | None = None,
    torch_optimizer: Callable | None = None,
    torch_scheduler: Callable | None = None,
    scheduler_every: int = 1,
    torch_clip: Callable | None = None,
    loss: tuple[Callable, Callable] | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    exact_factor: float = EXACT_FACTOR,
    check: bool = False,
    apply_kwargs: Mapping | None = None,
) -> Report:
    """Compare ``model`` with ``variables`` against ``torch_module`` on ``inputs``, layer by layer.

    Args:
      model, variables: the jaxnn model and its ``{'params': ..., 'batch_stats': ...}``; they are copied into a
        copy of ``torch_module`` (the original is not touched) through ``to_state_dict(rename=, flatten_chw=)``.
      torch_module: the PyTorch original (``torch.nn.Module``).
      inputs: jaxnn's inputs (NHWC images...). PyTorch gets each 4-D one as NCHW unless ``torch_inputs`` is given.
      train: training mode on both sides (``deterministic=False`` and BatchNorm's batch statistics; dropout must be
        off, its masks differ); the updated running statistics are compared too.
      grads: compare every parameter's gradient of the loss (by state_dict key).
      steps: after that, ``steps`` training steps on both sides, from the same weights: every step's loss and every
        parameter and buffer after every step are compared (rows with ``step`` set).
      lr, momentum: the steps' optimizer where none is given: SGD (``jaxnn.optim.sgd`` and ``torch.optim.SGD``).
      optimizer, torch_optimizer: the training run's optimizer on each side: an optax transformation (its schedule
        and clipping chained in, ``jaxnn.optim``) and ``params -> torch.optim.Optimizer``; both or neither.
      torch_scheduler, scheduler_every: ``optimizer -> LRScheduler``, stepped after every ``scheduler_every``
        optimizer steps (give the jaxnn schedule ``lr_scheduler.per_epoch`` of the same count).
      torch_clip: ``params -> None``, called between ``backward()`` and ``step()``
        (``lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0)``).
      labels: integer class labels for a mean cross-entropy loss; without them (and without ``loss``) the loss is
        ``sum(output * w)`` with distinct weights ``w`` per output element, so that every gradient is exercised.
      loss: ``(ours, theirs)``, each ``output -> scalar loss`` (the model's first output where it returns a tuple),
        in place of ``labels``: ``(lambda y: ops.mse_loss(y, t), lambda y: F.mse_loss(y, torch.tensor(t)))``.
      dtype: ``'float32'`` or ``'float64'`` (both sides; x64 is enabled for this call only).
      exact: in float32, run a float64 copy of PyTorch as the exact reference of the tolerance model.
      rtol, atol, exact_factor: the tolerance model's bounds (:func:`jaxnn.testing.assert_close`).
      check: raise ``AssertionError`` naming the first diverging layer (``report.check()``).
      apply_kwargs: extra keyword arguments of ``model.apply``.

    Returns:
      A :class:`Report`; ``print(report)`` shows the table.
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"compare_with_torch: dtype must be 'float32' or 'float64', got {dtype!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"compare_with_torch: steps must be an int >= 0, got {steps!r}")
    if steps and not grads:
        raise ValueError("compare_with_torch: steps need grads=True")
    if (optimizer is None) != (torch_optimizer is None):
        raise ValueError("compare_with_torch: give optimizer and torch_optimizer together (or neither, for SGD)")
    if not isinstance(scheduler_every, int) or isinstance(scheduler_every, bool) or scheduler_every < 1:
        raise ValueError(f"compare_with_torch: scheduler_every must be an int >= 1, got {scheduler_every!r}")
    if loss is not None and (not isinstance(loss, (tuple, list)) or len(loss) != 2 or not all(map(callable, loss))):
        raise ValueError(f"compare_with_torch: loss must be a pair of functions (ours, theirs), got {loss!r}")
    import torch

    from jaxnn import optim
    from jaxnn import train as training

    if optimizer is None:
        optimizer = optim.sgd(lr, momentum=momentum)

        def torch_optimizer(params):
            return torch.optim.SGD(params, lr=lr, momentum=momentum)

    torch_training = {"optimizer": torch_optimizer, "scheduler": torch_scheduler, "every": scheduler_every}
    torch_training["clip"] = torch_clip

    tolerance = dict(rtol=rtol, atol=atol, exact_factor=exact_factor)
    with jax.enable_x64(dtype == "float64"):
        jdtype = jnp.float64 if dtype == "float64" else jnp.float32
        tdtype = torch.float64 if dtype == "float64" else torch.float32
        inputs = tuple(_cast(np.asarray(x), jdtype) for x in inputs)
        variables = _cast({k: v for k, v in variables.items() if k in ("params", "batch_stats")}, jdtype)
        if torch_inputs is None:
            torch_inputs = [np.moveaxis(np.asarray(x), -1, 1) if x.ndim == 4 else np.asarray(x) for x in inputs]
        kw = dict(apply_kwargs or {})
        if _accepts(model, "deterministic"):
            kw["deterministic"] = not train
        types, linear_inputs, _ = _trace(model, *inputs, **kw)  # traced once: the names of every comparison
        names = _Names(types, linear_inputs, rename=rename, flatten_chw=flatten_chw)
        state_dict = names.state_dict(variables)
        has_stats = "batch_stats" in variables
        labels_np = None if labels is None else np.asarray(labels)

        def torch_side(float_dtype):
            tm = copy.deepcopy(torch_module).to(float_dtype)
            missing, unexpected = tm.load_state_dict(
                {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}, strict=False
            )
            if missing or unexpected:
                raise ValueError(
                    f"compare_with_torch: the jaxnn variables do not fit the PyTorch module: missing {list(missing)}, "
                    f"unexpected {list(unexpected)} (pass rename= or flatten_chw=)"
                )
            tin = [_row_major(torch, t, float_dtype) for t in torch_inputs]

            def loss_of(out):
                out = out[0] if isinstance(out, tuple) else out
                if loss is not None:
                    return loss[1](out)
                if labels_np is not None:
                    return torch.nn.functional.cross_entropy(out, torch.as_tensor(labels_np).long())
                w = (torch.arange(out.numel(), dtype=float_dtype) + 1) / out.numel()
                return (out.reshape(-1) * w).sum()

            return _torch_run(tm, tin, train, loss_of, steps, torch_training)

        ref = torch_side(tdtype)
        ref64 = torch_side(torch.float64) if exact and dtype == "float32" else None

        def exact_of(part, key):
            """The float64 PyTorch run's value, the tolerance model's exact answer (None without one)."""
            return None if ref64 is None else ref64[part][key]

        def loss_of(out):
            first = out[0] if isinstance(out, tuple) else out
            if loss is not None:
                return loss[0](first)
            if labels_np is not None:
                return training.cross_entropy_loss(first, jnp.asarray(labels_np))
            flat = jnp.ravel(jnp.moveaxis(first, -1, 1) if first.ndim == 4 else first)
            return jnp.sum(flat * (jnp.arange(flat.size, dtype=flat.dtype) + 1) / flat.size)

        def run(params, batch_stats, capture=True):
            """The loss, and the output, updated statistics and (``capture``) every layer's output."""
            v = {"params": params, **({"batch_stats": batch_stats} if has_stats else {})}
            mutable = (["intermediates"] if capture else []) + (["batch_stats"] if train and has_stats else [])
            out, updates = model.apply(v, *inputs, capture_intermediates=capture, mutable=mutable, **kw)
            return loss_of(out), (out, updates.get("batch_stats", batch_stats), updates.get("intermediates", {}))

        def loss_fn(params, batch_stats):
            loss, (_, new_stats, _) = run(params, batch_stats, capture=False)
            return loss, new_stats

        # One compiled program gives the layer outputs (Flax's intermediates), the statistics and the gradients.
        stats = variables.get("batch_stats", {})
        if grads:
            (_, (out, new_stats, captured)), g = jax.jit(jax.value_and_grad(run, has_aux=True))(
                variables["params"], stats
            )
        else:
            _, (out, new_stats, captured) = jax.jit(run)(variables["params"], stats)
        ours = {}
        for path, value in traverse_util.flatten_dict(dict(captured)).items():
            if path[-1] == "__call__" and path[:-1]:
                ours[names.key((*path[:-1], "_"))[:-2]] = (value, types.get(path[:-1]))
        rows = []
        unmatched = []
        for name in ref["order"]:
            theirs = ref["outputs"][name]
            if name not in ours:
                unmatched.append(name)
                continue
            values, kind = ours[name]
            if len(values) != len(theirs):
                rows.append(
                    Row("output", name, (), float("inf"), False, f"called {len(values)} times, PyTorch's {len(theirs)}")
                )
                continue
            for i, (v, t) in enumerate(zip(values, theirs, strict=True)):
                label = name if len(theirs) == 1 else f"{name} (call {i + 1})"
                exact_t = None if ref64 is None else exact_of("outputs", name)[i]
                for suffix, vj, tj, xj in _pairs(v, t, exact_t):
                    rows.append(_judge("output", label + suffix, _to_torch_layout(vj, kind), tj, xj, tolerance))
        for suffix, vj, tj, xj in _pairs(out, ref["out"], None if ref64 is None else ref64["out"]):
            rows.append(_judge("output", "(model)" + suffix, _to_torch_layout(vj, None), tj, xj, tolerance))

        if grads:
            g_sd = names.state_dict({"params": g})
            for key, value in ref["grads"].items():
                if key not in g_sd:
                    rows.append(Row("grad", key, value.shape, float("inf"), False, "no jaxnn gradient of this key"))
                    continue
                rows.append(_judge("grad", key, g_sd[key], value, exact_of("grads", key), tolerance))
        if train and has_stats:
            s_sd = names.state_dict({"batch_stats": new_stats})
            for key, value in s_sd.items():
                rows.append(_judge("buffer", key, value, ref["state"][key], exact_of("state", key), tolerance))

        if steps:
            # PyTorch's steps start from the buffers its compared forward pass updated
            params, stats = variables["params"], new_stats
            opt_state = optimizer.init(params)
            step_fn = jax.jit(lambda p, s, o: _train_step(loss_fn, optimizer, p, s, o))
            for i in range(steps):
                params, stats, opt_state, step_loss = step_fn(params, stats, opt_state)
                exact_loss = None if ref64 is None else ref64["losses"][i]
                rows.append(_judge("loss", f"step {i + 1}", step_loss, ref["losses"][i], exact_loss, tolerance, i + 1))
                after = names.state_dict({"params": params, **({"batch_stats": stats} if has_stats else {})})
                for key, value in after.items():
                    exact_value = None if ref64 is None else ref64["after"][i][key]
                    theirs = ref["after"][i][key]
                    rows.append(_judge("param", f"step {i + 1} {key}", value, theirs, exact_value, tolerance, i + 1))
        report = Report(tuple(rows), "train" if train else "eval", dtype, tuple(unmatched))
        return report.check() if check else report


def _pairs(ours, theirs, exact):
    """``(suffix, ours, theirs, exact)`` for each array of an output that may be a nested tuple (an LSTM's
    ``(output, (h_n, c_n))``): each compared in its own layout, named by its place (``[1][0]``); the suffix is ``''``
    for a single array."""
    if not isinstance(theirs, tuple):
        return [("", ours, theirs, exact)]
    ours = tuple(ours) if isinstance(ours, (tuple, list)) else (ours,)
    if len(ours) != len(theirs):
        raise ValueError(f"compare_with_torch: an output of {len(ours)} arrays against PyTorch's {len(theirs)}")
    exact = exact if exact is not None else (None,) * len(theirs)
    return [
        (f"[{i}]{suffix}", *leaf)
        for i, (o, t, x) in enumerate(zip(ours, theirs, exact, strict=True))
        for suffix, *leaf in _pairs(o, t, x)
    ]


def _train_step(loss_fn, tx, params, stats, opt_state):
    (loss, new_stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
    updates, opt_state = tx.update(g, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss


__all__ = ["Report", "Row", "compare_with_torch"]
