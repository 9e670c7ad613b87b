"""Run by test_parallel.py in a fresh process with 8 host devices: trains on 8 devices and on 1 and compares."""

import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxnn import parallel, train  # noqa: E402
from jaxnn.labs.char import make_lab  # noqa: E402
from jaxnn.models import MnistCNN  # noqa: E402


def run(model, x, y, batch_size, lr, devices, steps=20):
    mesh = parallel.make_mesh(devices)
    params = train.init_params(model, jax.random.key(0), jnp.asarray(x[:1]))
    state = train.create_train_state(model, params, train.adam(lr))
    state = parallel.replicate(state, mesh)
    x, y = parallel.replicate((jnp.asarray(x), jnp.asarray(y)), mesh)
    step = jax.jit(train.train_step)
    shuffle_rng, step_rng = jax.random.split(jax.random.key(1))
    losses = []
    epoch = 0
    while len(losses) < steps:  # whole epochs until at least `steps` steps
        batches = train.epoch_batches(x, y, batch_size, shuffle_rng, epoch)
        batches = (parallel.shard_batch(b, mesh) for b in batches)
        state, _ = train.train_epoch(step, state, batches, step_rng, after_step=lambda s, so_far: losses.append(None))
        epoch += 1
    batch = {"inputs": x[:batch_size], "labels": y[:batch_size]}
    final_loss = float(jax.jit(train.eval_step)(state, batch)["loss"])
    return state, final_loss, int(state.step)


def compare(name, a, b, atol):
    (sa, la, na), (sb, lb, nb) = a, b
    assert na == nb >= 20, (na, nb)
    np.testing.assert_allclose(la, lb, rtol=1e-5, err_msg=f"{name} loss")
    worst = 0.0
    for pa, pb in zip(jax.tree_util.tree_leaves(sa.params), jax.tree_util.tree_leaves(sb.params), strict=True):
        pa, pb = np.asarray(pa), np.asarray(pb)
        np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=atol, err_msg=f"{name} params")
        worst = max(worst, float(np.max(np.abs(pa - pb))))
    print(f"{name}: steps {na}, loss {la:.6f} vs {lb:.6f}, worst parameter difference {worst:.2e}")


def main():
    devices = jax.devices()
    assert len(devices) == 8, devices
    from jaxnn.data import mnist

    data = mnist.load_mnist(sys.argv[1], verbose=False)
    x = mnist.normalize(data["train"].images[:640])
    y = data["train"].labels[:640]
    lab = make_lab("longseq")
    lx, ly = lab.x[:168], lab.y[:168]
    # float32 to the project's tolerance (rtol 1e-5, atol 1e-6): Adam's step lr * g / (|g| + eps) magnifies the
    # last-bit differences of near-zero gradients that a different summation order gives, to ~1e-7 absolute.
    compare("MnistCNN", run(MnistCNN(), x, y, 32, 1e-3, devices), run(MnistCNN(), x, y, 32, 1e-3, devices[:1]), 1e-6)
    compare("CharRNN", run(lab.model, lx, ly, 24, 1e-3, devices), run(lab.model, lx, ly, 24, 1e-3, devices[:1]), 1e-6)
    # float64: only the order of the gradient sum differs, so every parameter agrees to 1e-5 relative (atol 1e-9
    # only for the few weights that sit within 1e-4 of zero, where a relative measure means nothing).
    with jax.enable_x64(True):
        x64 = x.astype(np.float64)
        compare(
            "MnistCNN float64",
            run(MnistCNN(), x64, y, 32, 1e-3, devices),
            run(MnistCNN(), x64, y, 32, 1e-3, devices[:1]),
            1e-9,
        )
        compare(
            "CharRNN float64",
            run(lab.model, lx, ly, 24, 1e-3, devices),
            run(lab.model, lx, ly, 24, 1e-3, devices[:1]),
            1e-9,
        )


if __name__ == "__main__":
    main()
