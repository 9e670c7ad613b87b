"""PyTorch's CPU random streams, bit for bit: ``torch.Generator`` (a Mersenne Twister, mt19937, seeded by
``manual_seed``) and the transforms PyTorch's CPU kernels apply to its output.

The draws run on the host in NumPy (PyTorch's CPU generator is host-side too) and return NumPy arrays, so that
their values are exactly what the same sequence of calls on ``torch.Generator`` returns on the CPU:

- ``rand``/``uniform``: 24 random bits of one 32-bit draw per float32 value (53 bits of a 64-bit draw, two 32-bit
  draws, per float64 value), scaled to ``[0, 1)``, then ``x * (to - from_) + from_`` in float64 with the range
  rounded to the value's dtype first, and the result rounded to that dtype.
- ``randn``/``normal``: Box-Muller. Fewer than 16 values: pairs of float64 uniforms, the cosine value first and the
  sine value kept for the next draw (in float64 for float32 tensors too). 16 values and more: all uniforms first,
  then Box-Muller on blocks of 16 (the last block recomputed on fresh uniforms where the size is no multiple of
  16). float64 blocks go through the C library's log, cos and sin. float32 blocks go through PyTorch's vector
  kernel (``normal_fill_16_AVX2``, on every x86 CPU with AVX2, AVX512 ones included): the Cephes polynomials of
  ``avx_mathfun.h`` in float32, with the fused multiply-adds the compiler made of them, reproduced here
  operation by operation. On a CPU without AVX2 (or not x86) PyTorch runs a scalar float32 kernel whose
  ``logf``/``cosf``/``sinf`` this module does not reproduce: there float32 ``normal`` from 16 values is within a
  few ulps, and :data:`EXACT_FLOAT32_NORMAL` is False.
- ``bernoulli``: one float64 uniform per value (two 32-bit draws), ``u < p`` (the CPU wheel's
  ``bernoulli_(p)``; it calls no MKL stream). ``dropout_mask`` is ``nn.Dropout``'s on the CPU:
  ``bernoulli(1 - p)`` divided by ``1 - p`` in the tensor's dtype, one value per element (``Dropout2d``: per
  sample and channel). ``p`` 0 and 1 draw nothing.
- ``randperm``: Fisher-Yates, ``r[i]`` swapped with ``r[i + random() % (n - i)]``.
- ``randint``: ``low + random() % (high - low)`` (a 64-bit draw where the range needs more than 32 bits).
- ``dataloader_order``: an epoch of ``DataLoader(shuffle=True)``: two int64 draws (the iterator's base seed, the
  sampler's seed), then ``randperm`` of a generator seeded with the second.

GPU streams (Philox) are not reproduced.

Example::

    g = jaxnn.random.Generator().manual_seed(777)      # torch.Generator().manual_seed(777)
    w = g.uniform((3, 4), -0.5, 0.5)                     # torch.empty(3, 4).uniform_(-0.5, 0.5, generator=g)
    order = g.randperm(60000)                            # torch.randperm(60000, generator=g)
"""

from __future__ import annotations

import math
import platform
from typing import Any

import numpy as np

from jaxnn import checks

__all__ = [
    "Generator",
    "default_generator",
    "manual_seed",
    "rand",
    "randn",
    "uniform",
    "normal",
    "randperm",
    "randint",
    "bernoulli",
    "dropout_mask",
    "dataloader_order",
    "EXACT_FLOAT32_NORMAL",
]


def _x86_with_avx2() -> bool:
    """Whether PyTorch's CPU dispatch picks its AVX2 (or AVX512) kernels here: x86 with AVX2 and FMA."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx2" in flags and "fma" in flags


EXACT_FLOAT32_NORMAL = _x86_with_avx2()
"""Whether float32 ``normal`` from 16 values is PyTorch's bit for bit on this CPU (see the module's note)."""

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _shape(size) -> tuple[int, ...]:
    size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    for s in size:
        checks.integer(s, "size[i]")
    return tuple(int(s) for s in size)


def _dtype(dtype) -> np.dtype:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return np.dtype(_DTYPES[name])


class Generator:
    """``torch.Generator`` on the CPU: ``manual_seed``, ``initial_seed``, ``get_state``/``set_state`` (a dict of
    plain numbers, for a JSON checkpoint), and the draws of the module's functions as methods."""

    def __init__(self):
        self.manual_seed(67280421310721)  # PyTorch's default seed of a new CPU generator

    def manual_seed(self, seed: int) -> Generator:
        """Reseed: PyTorch takes the seed modulo 2**64 and seeds mt19937 with its low 32 bits."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self._seed = int(seed) % 2**64
        self._bits = np.random.MT19937()
        self._bits._legacy_seeding(self._seed & 0xFFFFFFFF)  # mt19937's init_genrand, as std::mt19937 and PyTorch
        self._next_normal: float | None = None  # the sine of the last Box-Muller pair, for the next small draw
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict[str, Any]:
        state = self._bits.state["state"]
        return {
            "seed": self._seed,
            "key": [int(v) for v in state["key"]],
            "pos": int(state["pos"]),
            "next_normal": self._next_normal,
        }

    def set_state(self, state: dict[str, Any]) -> Generator:
        key = np.asarray(state["key"], np.uint32)
        if key.shape != (624,) or not 0 <= int(state["pos"]) <= 624:
            raise ValueError("state is not an mt19937 state (624 words and a position in [0, 624])")
        self._seed = int(state["seed"])
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": int(state["pos"])}}
        self._next_normal = state["next_normal"]
        return self

    # -- PyTorch's raw draws -----------------------------------------------------------------------------------
    def random(self, n: int) -> np.ndarray:
        """``n`` 32-bit draws (``generator->random()``), as uint64."""
        return self._bits.random_raw(n).astype(np.uint64)

    def skip(self, n: int) -> Generator:
        """Advance past ``n`` 32-bit draws without making them (mt19937 has no jump ahead: it runs them)."""
        self._bits.random_raw(checks.integer(n, "n"), output=False)
        return self

    def random64(self, n: int) -> np.ndarray:
        """``n`` 64-bit draws (``generator->random64()``): two 32-bit draws each, the first the high half."""
        words = self.random(2 * n)
        return (words[0::2] << np.uint64(32)) | words[1::2]

    def _unit(self, n: int, dtype: np.dtype) -> np.ndarray:
        """``n`` uniforms in [0, 1): 24 bits of a 32-bit draw (float32) or 53 of a 64-bit one (float64)."""
        if dtype == np.float32:
            return (self.random(n) & np.uint64(0xFFFFFF)).astype(np.float32) * np.float32(2.0**-24)
        return (self.random64(n) & np.uint64((1 << 53) - 1)).astype(np.float64) * 2.0**-53

    # -- distributions -------------------------------------------------------------------------------------------
    def uniform(self, size, from_: float = 0.0, to: float = 1.0, dtype="float32") -> np.ndarray:
        """``torch.empty(size, dtype=dtype).uniform_(from_, to, generator=self)``."""
        dtype, shape = _dtype(dtype), _shape(size)
        checks.finite(from_, "from_", -math.inf, strict=True)
        checks.finite(to, "to", -math.inf, strict=True)
        if not from_ <= to:
            raise ValueError(f"uniform needs from_ <= to, got from_={from_!r}, to={to!r}")
        low, high = dtype.type(from_), dtype.type(to)
        unit = self._unit(math.prod(shape), dtype)
        return _fma(unit, high - low, low).reshape(shape)  # PyTorch's kernel is compiled to one fused multiply-add

    def rand(self, size, dtype="float32") -> np.ndarray:
        """``torch.rand(size, generator=self)``."""
        return self.uniform(size, 0.0, 1.0, dtype)

    def normal(self, size, mean: float = 0.0, std: float = 1.0, dtype="float32") -> np.ndarray:
        """``torch.empty(size, dtype=dtype).normal_(mean, std, generator=self)`` (see the module's note on float32
        from 16 values on)."""
        dtype, shape = _dtype(dtype), _shape(size)
        checks.finite(mean, "mean", -math.inf, strict=True)
        checks.finite(std, "std", strict=False)
        n = math.prod(shape)
        if n >= 16:
            out = self._normal_blocks(n, dtype, mean, std)
        else:
            values = np.array([self._normal_one() for _ in range(n)], np.float64)
            out = _fma(values, std, mean).astype(dtype)  # in float64, then rounded: PyTorch's double path
        return out.reshape(shape)

    def randn(self, size, dtype="float32") -> np.ndarray:
        """``torch.randn(size, generator=self)``."""
        return self.normal(size, 0.0, 1.0, dtype)

    def _normal_one(self) -> float:
        """``at::normal_distribution<double>``: a Box-Muller pair from two float64 uniforms; cosine now, sine next."""
        if self._next_normal is not None:
            value, self._next_normal = self._next_normal, None
            return value
        u1, u2 = self._unit(2, np.dtype(np.float64))
        radius = math.sqrt(-2.0 * math.log1p(-float(u2)))
        theta = 2.0 * math.pi * float(u1)
        self._next_normal = radius * math.sin(theta)
        return radius * math.cos(theta)

    def _normal_blocks(self, n: int, dtype: np.dtype, mean: float, std: float) -> np.ndarray:
        """PyTorch's ``normal_fill``: every uniform first, then Box-Muller on each block of 16."""
        data = self._unit(n, dtype)
        full = n // 16 * 16
        data[:full] = _box_muller_16(data[:full].reshape(-1, 16), mean, std).reshape(-1)
        if n % 16:
            data[n - 16 :] = _box_muller_16(self._unit(16, dtype).reshape(1, 16), mean, std).reshape(-1)
        return data

    def bernoulli(self, size, p: float = 0.5, dtype="float32") -> np.ndarray:
        """``torch.empty(size, dtype=dtype).bernoulli_(p, generator=self)``: ones with probability ``p``."""
        dtype, shape = _dtype(dtype), _shape(size)
        checks.finite(p, "p", 0.0, strict=False, maximum=1.0)
        return (self._unit(math.prod(shape), np.dtype(np.float64)) < p).astype(dtype).reshape(shape)

    def dropout_mask(self, size, p: float = 0.5, dtype="float32") -> np.ndarray:
        """The factor ``F.dropout(x, p, training=True)`` multiplies ``x`` by, for an ``x`` of ``size`` (``p`` is
        the probability of a zero): ``bernoulli(1 - p)`` divided by ``1 - p``. ``Dropout2d``'s is this of size
        ``(N, C)``, one value per channel."""
        checks.finite(p, "p", 0.0, strict=False, maximum=1.0)
        if p in (0, 1):  # PyTorch returns x, or multiplies it by zero, and draws nothing
            return np.full(_shape(size), 1 - p, _dtype(dtype))
        keep = self.bernoulli(size, 1 - p, dtype)
        return keep / keep.dtype.type(1 - p)

    def randperm(self, n: int) -> np.ndarray:
        """``torch.randperm(n, generator=self)``: int64."""
        n = checks.integer(n, "n")
        draws = self.random(max(n - 1, 0)) if n < 2**32 else self.random64(max(n - 1, 0))
        out = np.arange(n, dtype=np.int64)
        for i in range(n - 1):
            z = int(draws[i] % np.uint64(n - i))
            out[i], out[i + z] = out[i + z], out[i]
        return out

    def random_int64(self) -> int:
        """``torch.empty((), dtype=torch.int64).random_(generator=self).item()``: a 64-bit draw modulo 2**63."""
        return int(self.random64(1)[0]) % 2**63

    def dataloader_order(self, n: int) -> np.ndarray:
        """The sample order of one epoch of ``DataLoader(dataset_of_n, shuffle=True)`` iterated with this generator
        as PyTorch's global one (``num_workers=0``, no ``generator=``): the iterator draws its base seed, the
        ``RandomSampler`` a seed for a generator of its own, and that generator's ``randperm(n)`` is the order."""
        self.random_int64()  # _BaseDataLoaderIter's base seed
        return Generator().manual_seed(self.random_int64()).randperm(n)

    def randint(self, low: int, high: int, size) -> np.ndarray:
        """``torch.randint(low, high, size, generator=self)``: int64 in ``[low, high)``."""
        shape = _shape(size)
        if not (isinstance(low, (int, np.integer)) and isinstance(high, (int, np.integer)) and low < high):
            raise ValueError(f"randint needs ints low < high, got low={low!r}, high={high!r}")
        span = int(high) - int(low)
        n = math.prod(shape)
        draws = self.random(n) if span < 2**32 else self.random64(n)
        return ((draws % np.uint64(span)).astype(np.int64) + int(low)).reshape(shape)


def _two_sum(a, b):
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _split(a):
    c = 134217729.0 * a  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves
    high = c - (c - a)
    return high, a - high


def _fma(x: np.ndarray, scale, offset) -> np.ndarray:
    """``fma(x, scale, offset)`` in ``x``'s dtype, rounded once, as PyTorch's compiled ``x * (to - from) + from``.
    ``scale`` and ``offset`` are numbers or arrays of ``x``'s dtype."""
    dtype = x.dtype
    x, scale, offset = (np.asarray(v, np.float64) for v in (x, scale, offset))
    product = x * scale
    if dtype == np.float64:  # Dekker's exact product, then the three-term sum rounded once
        (xh, xl), (sh, sl) = _split(x), _split(scale)
        product_error = ((xh * sh - product) + xh * sl + xl * sh) + xl * sl
        head, error1 = _two_sum(product, offset)
        tail, error2 = _two_sum(error1, product_error)
        return head + _toward(tail, error2)
    total, error = _two_sum(product, offset)  # the 24-bit product is exact in float64
    return _toward(total, error).astype(dtype)


def _toward(value, remainder):
    """``value`` moved one unit toward ``remainder`` where that is not zero, so that rounding ``value`` to a coarser
    format goes the way the exact ``value + remainder`` would at a tie."""
    with np.errstate(invalid="ignore"):
        return np.where(remainder != 0, np.nextafter(value, np.where(remainder > 0, np.inf, -np.inf)), value)


def _box_muller_16(blocks: np.ndarray, mean: float, std: float) -> np.ndarray:
    """``normal_fill_16`` on each row of ``blocks`` (k, 16): ``u1 = 1 - row[:8]``, ``u2 = row[8:]``, the cosines
    first and the sines after, then ``* std + mean`` as one fused multiply-add."""
    u1, u2 = 1 - blocks[:, :8], blocks[:, 8:]
    if blocks.dtype == np.float64:  # PyTorch's scalar kernel, through the C library (NumPy's log rounds otherwise)
        out = np.empty_like(blocks)
        for (i, j), a in np.ndenumerate(u1):
            radius = math.sqrt(-2.0 * math.log(float(a)))
            theta = 2.0 * math.pi * float(u2[i, j])
            out[i, j], out[i, j + 8] = radius * math.cos(theta), radius * math.sin(theta)
        return _fma(out, std, mean)
    f = np.float32
    radius = np.sqrt(f(-2) * _log_ps(u1))
    sin, cos = _sincos_ps(f(2 * math.pi) * u2)
    return _fma(np.concatenate([radius * cos, radius * sin], axis=1), f(std), f(mean))


# avx_mathfun.h's float32 Cephes polynomials, in the order PyTorch's wheel runs them: the compiler fused each
# multiply that feeds an add into one fused multiply-add (_fma32), which changes the last bit of about 1 value in 10.
_LOG_POLY = (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
    2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
)  # fmt: skip


def _fma32(a, b, c) -> np.ndarray:
    return _fma(np.asarray(a, np.float32), np.asarray(b, np.float32), np.asarray(c, np.float32))


def _log_ps(x: np.ndarray) -> np.ndarray:
    """``log256_ps``: ``x = m * 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)), then a degree-9 polynomial in ``m - 1``."""
    f = np.float32
    x = np.maximum(x, np.array(0x00800000, np.uint32).view(f))  # the smallest normal float
    bits = x.view(np.uint32)
    e = ((bits >> np.uint32(23)).astype(np.int32) - 0x7F).astype(f) + f(1)
    x = ((bits & np.uint32(0x807FFFFF)) | np.array(0.5, f).view(np.uint32)).view(f)
    small = x < f(0.707106781186547524)
    e = e - np.where(small, f(1), f(0))
    x = (x - f(1)) + np.where(small, x, f(0))
    z = x * x
    y = np.full_like(x, _LOG_POLY[0])
    for c in _LOG_POLY[1:]:
        y = _fma32(y, x, c)
    y = _fma32(y * x, z, e * f(-2.12194440e-4))
    y = _fma32(z, -0.5, y)
    return _fma32(e, 0.693359375, x + y)


def _sincos_ps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sincos256_ps``: reduce by multiples of pi/4 in three parts, then Cephes' sine and cosine polynomials."""
    f = np.float32
    bits = x.view(np.uint32)
    sign_sin = bits & np.uint32(0x80000000)
    x = (bits & np.uint32(0x7FFFFFFF)).view(f)
    octant = ((x * f(1.27323954473516)).astype(np.int32) + 1) & ~1  # 4/pi; truncation, then the next even
    sign_sin = sign_sin ^ ((octant & 4).astype(np.uint32) << np.uint32(29))
    sign_cos = (~(octant - 2) & 4).astype(np.uint32) << np.uint32(29)
    sine_poly = (octant & 2) == 0
    q = octant.astype(f)
    for part in (-0.78515625, -2.4187564849853515625e-4, -3.77489497744594108e-8):
        x = _fma32(q, part, x)
    z = x * x
    c = _fma32(_fma32(2.443315711809948e-5, z, -1.388731625493765e-3), z, 4.166664568298827e-2) * z
    c = _fma32(c, z, -(z * f(0.5))) + f(1)
    s = _fma32(_fma32(-1.9515295891e-4, z, 8.3321608736e-3), z, -1.6666654611e-1) * z
    s = _fma32(s, x, x)
    sin = np.where(sine_poly, s, c).view(np.uint32) ^ sign_sin
    cos = np.where(sine_poly, c, s).view(np.uint32) ^ sign_cos
    return sin.view(f), cos.view(f)


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """``torch.manual_seed``: reseed :data:`default_generator` and return it."""
    return default_generator.manual_seed(seed)


def rand(size, generator: Generator | None = None, dtype="float32") -> np.ndarray:
    """``torch.rand(size, generator=generator, dtype=dtype)``."""
    return (generator or default_generator).rand(size, dtype)


def randn(size, generator: Generator | None = None, dtype="float32") -> np.ndarray:
    """``torch.randn(size, generator=generator, dtype=dtype)``."""
    return (generator or default_generator).randn(size, dtype)


def uniform(size, from_: float = 0.0, to: float = 1.0, generator: Generator | None = None, dtype="float32"):
    """``torch.empty(size, dtype=dtype).uniform_(from_, to, generator=generator)`` (the Tensor method: PyTorch has
    no function of this name; ``from_`` because ``from`` is Python's)."""
    return (generator or default_generator).uniform(size, from_, to, dtype)


def normal(size, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None, dtype="float32"):
    """``torch.empty(size, dtype=dtype).normal_(mean, std, generator=generator)``: the Tensor method's arguments,
    after the size (``torch.normal(mean, std, size)`` takes the size last)."""
    return (generator or default_generator).normal(size, mean, std, dtype)


def randperm(n: int, generator: Generator | None = None) -> np.ndarray:
    """``torch.randperm(n, generator=generator)``."""
    return (generator or default_generator).randperm(n)


def randint(low: int, high: int, size, generator: Generator | None = None) -> np.ndarray:
    """``torch.randint(low, high, size, generator=generator)``."""
    return (generator or default_generator).randint(low, high, size)


def bernoulli(size, p: float = 0.5, generator: Generator | None = None, dtype="float32") -> np.ndarray:
    """``torch.empty(size, dtype=dtype).bernoulli_(p, generator=generator)``."""
    return (generator or default_generator).bernoulli(size, p, dtype)


def dropout_mask(size, p: float = 0.5, generator: Generator | None = None, dtype="float32") -> np.ndarray:
    """``F.dropout``'s factor on the CPU (see :meth:`Generator.dropout_mask`)."""
    return (generator or default_generator).dropout_mask(size, p, dtype)


def dataloader_order(n: int, generator: Generator | None = None) -> np.ndarray:
    """One epoch's sample order of ``DataLoader(..., shuffle=True)`` (see :meth:`Generator.dataloader_order`)."""
    return (generator or default_generator).dataloader_order(n)
