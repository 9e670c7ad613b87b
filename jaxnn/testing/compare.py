"""``compare_with_torch``: run a jaxnn model and its PyTorch original on the same weights and inputs, and report
the worst error of every layer's output, every parameter's gradient, every buffer and the loss over a few steps.

The PyTorch module gets the jaxnn variables through :func:`jaxnn.interop.state_dict.to_state_dict` (so any model
that state_dict interop maps can be compared), layer outputs come from PyTorch forward hooks and Flax's captured
intermediates, matched by name (``layer1/0/conv1`` is ``layer1.0.conv1``). The functional steps between layers (an
activation, a pool, a residual add, a flatten, a global average) are compared too: on PyTorch's side a function a
forward() calls (``F.relu``, ``out += identity``) or a stateless module (``nn.ReLU``), on jaxnn's an operation of
the model's program, each matched by the module that takes it, its kind and its order there, and named by
PyTorch's module (``layer1.1``, ``layer1.0.relu (call 2)``, ``layer1.0:add``). A PyTorch module with an output that
nothing was compared with leaves ``report.ok`` false. Every comparison goes through
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

from jaxnn.interop.state_dict import _Names, _producer, _trace
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
    unmatched: tuple[str, ...] = ()  # PyTorch modules with an output that nothing of jaxnn's was compared with

    @property
    def ok(self) -> bool:
        """Every comparison agrees, and every PyTorch module with an output was compared."""
        return all(r.ok for r in self.rows) and not self.unmatched

    @property
    def first_divergence(self) -> Row | None:
        """The first row that fails: with outputs first, the earliest layer whose output differs."""
        return next((r for r in self.rows if not r.ok), None)

    def check(self) -> Report:
        """Raise ``AssertionError`` naming the first diverging layer, gradient or buffer, or the PyTorch modules
        that were not compared; return self otherwise."""
        row = self.first_divergence
        if row is None and self.unmatched:
            raise AssertionError(
                f"{self.mode} ({self.dtype}): PyTorch's {', '.join(self.unmatched)} had no jaxnn counterpart to "
                "compare (name the jaxnn module the same, or map it with rename=)"
            )
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


# Functional steps: what a model does between its layers (an activation, a pool, a residual add, a flatten), on
# PyTorch's side a function call in a forward() or a stateless module, on jaxnn's an operation in a module's scope.
_STEP_MODULES = {
    "ReLU": "relu",
    "MaxPool2d": "max_pool",
    "AvgPool2d": "avg_pool",
    "Flatten": "flatten",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "AdaptiveAvgPool2d": "adaptive_avg_pool",
}
_STEP_FUNCTIONS = {
    "relu": "relu",
    "relu_": "relu",
    "max_pool2d": "max_pool",
    "_max_pool2d": "max_pool",
    "max_pool2d_with_indices": "max_pool",
    "avg_pool2d": "avg_pool",
    "add": "add",
    "add_": "add",
    "__add__": "add",
    "__iadd__": "add",
    "__radd__": "add",
    "flatten": "flatten",
    "view": "flatten",
    "reshape": "flatten",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "adaptive_avg_pool2d": "adaptive_avg_pool",
    "mean": "adaptive_avg_pool",
}
# jaxnn ops that are several operations, under a named scope of their own: one step each, its last operation's value
_SCOPED_STEPS = {"adaptive_avg_pool2d": "adaptive_avg_pool"}


_PASS_THROUGH_MODULES = ("Dropout", "Dropout1d", "Dropout2d", "AlphaDropout", "Identity")  # identity when compared


class _Recorder:
    """PyTorch forward hooks: each named module's outputs (cloned, since in-place ReLUs overwrite them), in order;
    and the functional steps of every forward() that is not a leaf module's own (``F.relu``, ``out += identity``,
    ``torch.flatten``...), each under the module whose forward() called it."""

    def __init__(self, module):
        import torch

        self.outputs: dict[str, list] = {}
        self.seqs: dict[str, list[int]] = {}  # when each output came, in the order of everything recorded
        self.order: list[str] = []
        # (calling module, kind, output, module name or None, when)
        self.steps: list[tuple[str, str, object, str | None, int]] = []
        self.kinds = {n: _STEP_MODULES.get(type(m).__name__, "") for n, m in module.named_modules()}
        self.skip = {n for n, m in module.named_modules() if type(m).__name__ in _PASS_THROUGH_MODULES}
        self.leaf = {n for n, m in module.named_modules() if not any(True for _ in m.children())}
        self.stack: list[str] = [""]
        self.calls = 0
        self.handles = []
        for name, m in module.named_modules():
            self.handles.append(m.register_forward_pre_hook(self._enter(name)))
            if name:
                self.handles.append(m.register_forward_hook(self._hook(name)))
            else:
                self.handles.append(m.register_forward_hook(self._leave))
        recorder = self

        class Mode(torch.overrides.TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                kind = _STEP_FUNCTIONS.get(getattr(func, "__name__", ""))
                where = recorder.stack[-1]
                if kind == "flatten" and not (
                    args and getattr(args[0], "ndim", 0) == 4 and out.ndim == 2 and int(np.prod(args[0].shape[2:])) > 1
                ):
                    kind = None  # a step where it flattens an (H, W > 1) map, as on jaxnn's side ((N, C, 1, 1) is not)
                if kind == "add" and getattr(out, "ndim", 0) < 2:
                    kind = None
                if kind == "adaptive_avg_pool" and getattr(func, "__name__", "") == "mean":
                    dims = args[1] if len(args) > 1 else (kwargs or {}).get("dim")
                    dims = (dims,) if isinstance(dims, int) else dims
                    spatial = args[0].ndim == 4 and dims is not None and {d % 4 for d in dims} == {2, 3}
                    kind = kind if spatial else None
                if kind and where not in recorder.leaf and isinstance(out, torch.Tensor):
                    recorder.steps.append((where, kind, _detach(out), None, len(recorder.steps) + recorder.calls))
                return out

        self.mode = Mode()

    def _leave(self, *_):
        self.stack.pop()  # (a forward hook that returns a value replaces the output)

    def _enter(self, name):
        def hook(module, inputs):
            self.stack.append(name)

        return hook

    def _hook(self, name):
        def hook(module, inputs, output):
            self.stack.pop()
            self.calls += 1
            when = len(self.steps) + self.calls
            if self.kinds[name]:  # a stateless module: a step of the module that called it, if jaxnn has no module
                self.steps.append((self.stack[-1], self.kinds[name], _detach(output), name, when))
            if name in self.skip:
                return
            if name not in self.outputs:
                self.order.append(name)
            self.outputs.setdefault(name, []).append(_detach(output))
            self.seqs.setdefault(name, []).append(when)

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
    with recorder.mode:
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
    result["steps"], result["seqs"], result["leaf"] = recorder.steps, recorder.seqs, recorder.leaf
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

    torch_training = dict(optimizer=torch_optimizer, scheduler=torch_scheduler, every=scheduler_every, clip=torch_clip)

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
            shared = {}  # a module registered twice (DeepCNN's fc1 is layer4.0 too) has its tensors under both names
            for key, tensor in tm.state_dict(keep_vars=True).items():
                shared.setdefault(id(tensor), []).append(key)
            loaded = set(state_dict)
            missing = [
                k for k in missing if not any(k in names_ and loaded & set(names_) for names_ in shared.values())
            ]
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

        # One compiled program gives the layer outputs (Flax's intermediates), the functional steps between them,
        # the statistics and the gradients.
        stats = variables.get("batch_stats", {})
        closed, shapes = jax.make_jaxpr(run, return_shape=True)(variables["params"], stats)
        our_steps = _steps_of(closed.jaxpr, types, type(model).__name__)
        keep = {i for i, _, _ in our_steps}

        def run_steps(params, batch_stats):
            flat, kept = _interpret(closed.jaxpr, closed.consts, jax.tree.leaves((params, batch_stats)), keep)
            loss_value, aux = jax.tree.unflatten(jax.tree.structure(shapes), flat)
            return loss_value, (*aux, kept)

        if grads:
            (_, (out, new_stats, captured, kept)), g = jax.jit(jax.value_and_grad(run_steps, has_aux=True))(
                variables["params"], stats
            )
        else:
            _, (out, new_stats, captured, kept) = jax.jit(run_steps)(variables["params"], stats)
        ours = {}
        for path, value in traverse_util.flatten_dict(dict(captured)).items():
            if path[-1] == "__call__" and path[:-1]:
                ours[names.key((*path[:-1], "_"))[:-2]] = (value, types.get(path[:-1]))
        timed = []  # (when PyTorch computed it, row): layer outputs and functional steps in the order they ran
        unmatched = []
        for name in ref["order"]:
            theirs, seqs = ref["outputs"][name], ref["seqs"][name]
            if name not in ours:
                unmatched.append(name)
                continue
            values, kind = ours[name]
            if len(values) != len(theirs):
                detail = f"called {len(values)} times, PyTorch's {len(theirs)}"
                timed.append((seqs[0], Row("output", name, (), float("inf"), False, detail)))
                continue
            for i, (v, t) in enumerate(zip(values, theirs, strict=True)):
                label = name if len(theirs) == 1 else f"{name} (call {i + 1})"
                exact_t = None if ref64 is None else exact_of("outputs", name)[i]
                for suffix, vj, tj, xj in _pairs(v, t, exact_t):
                    timed.append((seqs[i], ("output", label + suffix, _to_torch_layout(vj, kind), tj, xj)))
        timed += _step_rows(our_steps, kept, ref["steps"], None if ref64 is None else ref64["steps"], ours, names)
        timed.sort(key=lambda item: item[0])
        rows = [r if isinstance(r, Row) else _judge(*r, tolerance) for _, r in timed]
        # a container's output is its parts', compared as they are; a leaf module with nothing to compare is not
        unmatched = [n for n in unmatched if n in ref["leaf"] and n not in {t[3] for t in ref["steps"]}]
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


def _step_rows(our_steps, kept, theirs, theirs64, ours_by_name, names):
    """Rows comparing the functional steps, matched by the module whose forward() takes them, their kind and their
    order there: ``(when, ("output", name, ours, theirs, exact))`` to judge, or ``(when, Row)`` failing where the
    counts differ (``when``: PyTorch's call order).
    PyTorch's stateless modules that jaxnn has as modules too (by name) are compared as modules instead."""
    torch_scope = {}
    for _, scope, _ in our_steps:
        torch_scope[scope] = names.key((*scope.split("/"), "_"))[:-2] if scope else ""
    known = {names.key((*path, "_"))[:-2] for path in names.types if path} | {""}

    def owner(where):  # a container jaxnn has no module for (a Sequential): its steps are its parent's
        while where not in known:
            where = where.rsplit(".", 1)[0] if "." in where else ""
        return where

    mine: dict[tuple[str, str], list] = {}
    for i, scope, kind in our_steps:
        mine.setdefault((torch_scope[scope], kind), []).append(kept[i])
    found: dict[tuple[str, str], list] = {}
    for j, (where, kind, value, module, when) in enumerate(theirs):
        if module is not None and module in ours_by_name:
            continue
        label = module or (f"{where}:{kind}" if where else f"(model):{kind}")
        exact = None if theirs64 is None else theirs64[j][2]
        found.setdefault((owner(where), kind), []).append((label, value, exact, when))
    rows = []
    for key in [*found, *(k for k in mine if k not in found)]:
        ours, torch_calls = mine.get(key, []), found.get(key, [])
        where, kind = key
        if len(ours) != len(torch_calls):
            label = torch_calls[0][0] if torch_calls else (f"{where}:{kind}" if where else f"(model):{kind}")
            detail = f"{kind} {len(ours)} times in jaxnn's {where or 'model'}, PyTorch's {len(torch_calls)}"
            when = torch_calls[0][3] if torch_calls else -1
            rows.append((when, Row("output", label, (), float("inf"), False, detail)))
            continue
        for k, (value, (label, theirs_value, exact, when)) in enumerate(zip(ours, torch_calls, strict=True)):
            value = np.asarray(value)
            if kind == "flatten":  # jaxnn flattens (H, W, C); compare in PyTorch's (C, H, W) order
                value = np.moveaxis(value, -1, 1).reshape(value.shape[0], -1)
            else:
                value = _to_torch_layout(value, None)
            if value.shape != np.shape(theirs_value) and value.size == np.size(theirs_value):
                value = value.reshape(np.shape(theirs_value))  # a global pool: (N, C) here, (N, C, 1, 1) there
            counted = label if len(torch_calls) == 1 else f"{label} (call {k + 1})"
            rows.append((when, ("output", counted, value, theirs_value, exact)))
    return rows


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


_NAMED_STEPS = {
    "relu": "relu",
    "_avg_pool2d": "avg_pool",
    "_max_pool2d": "max_pool",
    "avg_pool2d": "avg_pool",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}


def _inner_eqns(eqn):
    from jax.extend import core as jex

    for sub in jex.jaxprs_in_params(eqn.params):
        for inner in sub.eqns:
            yield inner
            yield from _inner_eqns(inner)


def _step_kind(eqn) -> str | None:
    """The functional step an operation of a module's own scope is (see ``_STEP_MODULES``), or None."""
    name = eqn.primitive.name
    shape = tuple(getattr(eqn.outvars[0].aval, "shape", ()))
    if name in ("add", "add_any"):
        return "add" if len(shape) >= 2 else None
    if name == "reshape":
        source = tuple(eqn.invars[0].aval.shape)
        return "flatten" if len(source) == 4 and len(shape) == 2 and source[1] * source[2] > 1 else None
    if name in ("tanh", "logistic"):
        return "tanh" if name == "tanh" else "sigmoid"
    if name == "max" and any(getattr(v, "val", None) == 0 for v in eqn.invars):
        return "relu"
    if name in ("jit", "pjit") and eqn.params.get("name") in _NAMED_STEPS:
        return _NAMED_STEPS[eqn.params["name"]]
    if name.startswith("custom_"):
        inner = list(_inner_eqns(eqn))
        named = [_NAMED_STEPS.get(e.params.get("name")) for e in inner if e.primitive.name in ("jit", "pjit")]
        if named and named[0]:
            return named[0]
        if len(shape) == 4 and any(e.primitive.name in ("reduce_max", "reduce_window_max") for e in inner):
            if not any(e.primitive.name in ("conv_general_dilated", "dot_general") for e in inner):
                return "max_pool"
    return None


def _spatial_mean(eqn, producers) -> str | None:
    """``jnp.mean(x, axis=(1, 2))`` of an NHWC map (a sum over H and W, divided): a global average pool."""
    if eqn.primitive.name != "div":
        return None
    source = _producer(producers, eqn.invars[0])
    if source is None or source.primitive.name != "reduce_sum":
        return None
    if len(source.invars[0].aval.shape) == 4 and tuple(source.params.get("axes", ())) == (1, 2):
        return "adaptive_avg_pool"
    return None


def _steps_of(jaxpr, types, root: str) -> list[tuple[int, str, str]]:
    """``(equation index, module scope, kind)`` of every functional step in ``jaxpr`` (the forward of a model),
    its scope the module path without the model's own name ``root`` (``''`` for the model's own __call__; the loss
    outside the model is no step). Operations inside a jaxnn layer (``jaxnn.nn``: a PyTorch module of its own, a
    leaf there) are the layer's, not steps."""
    from jaxnn import nn as layers

    out, producers = [], {}
    for i, eqn in enumerate(jaxpr.eqns):
        for var in eqn.outvars:
            producers[var] = eqn
        stack = str(eqn.source_info.name_stack)
        op = stack.rsplit("/", 1)[-1]
        if op in _SCOPED_STEPS:  # the last operation of a scoped op is the step, under the scope that called it
            following = jaxpr.eqns[i + 1] if i + 1 < len(jaxpr.eqns) else None
            if following is not None and str(following.source_info.name_stack) == stack:
                continue
            stack, kind = stack[: -len(op) - 1], _SCOPED_STEPS[op]
        else:
            kind = _step_kind(eqn) or _spatial_mean(eqn, producers)
        if kind and (stack == root or stack.startswith(root + "/")):
            scope = stack[len(root) + 1 :]
            parts = tuple(scope.split("/")) if scope else ()
            if any(types.get(parts[:n]) in layers.__all__ for n in range(1, len(parts) + 1)):
                continue
            out.append((i, scope, kind))
    return out


def _interpret(jaxpr, consts, args, keep):
    """``jax.core.eval_jaxpr`` that also returns the equations in ``keep``: their output, or for a flatten the
    feature map it flattens."""
    from jax.extend import core as jex

    env = {}

    def read(v):
        return v.val if isinstance(v, jex.Literal) else env[v]

    for v, value in zip(jaxpr.constvars, consts, strict=True):
        env[v] = value
    for v, value in zip(jaxpr.invars, args, strict=True):
        env[v] = value
    kept = {}
    for i, eqn in enumerate(jaxpr.eqns):
        with eqn.ctx.manager:
            outs = eqn.primitive.bind(*map(read, eqn.invars), **eqn.primitive.get_bind_params(eqn.params))
        outs = outs if eqn.primitive.multiple_results else [outs]
        for v, value in zip(eqn.outvars, outs, strict=True):
            env[v] = value
        if i in keep:
            kept[i] = read(eqn.invars[0]) if eqn.primitive.name == "reshape" else outs[0]
    return [read(v) for v in jaxpr.outvars], kept


__all__ = ["Report", "Row", "compare_with_torch"]
