"""A reference evaluator for saved Core ML ML programs: run the .mlpackage's MIL ops in numpy/torch.

Core ML itself runs only on Apple platforms; on Linux this evaluator is the Core ML runner. It loads
the saved package (spec + weight blobs) back into a pymil Program with coremltools' own milproto
loader and evaluates every op of the `main` function, one small function per op type (`OPS`).

What it checks, and what it does not:
- It verifies the graph as saved: op types, attributes, wiring, weights as stored (FP16 rounding,
  INT8 weight quantization via the constexpr ops).
- Arithmetic is float32. With `emulate_fp16=True` (the default) every op output the program types as
  fp16 is rounded to float16 before the next op reads it, so activations carry FP16 storage error as on
  a device. It does not reproduce the device's fp16 accumulation order inside an op (a conv summing
  in fp16 on the Neural Engine may differ slightly more); treat the result as a graph-and-precision
  check, not a bit-exact device simulation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from featherface_mobile.errors import FeatherfaceError

Array = np.ndarray
OpFn = Callable[..., Any]

OPS: dict[str, OpFn] = {}


def op(*names: str):
    """Register an evaluator function for one or more MIL op types."""
    def wrap(fn: OpFn) -> OpFn:
        for n in names:
            OPS[n] = fn
        return fn
    return wrap


def _t(x: Array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _f32(x) -> Array:
    return np.asarray(x, dtype=np.float32) if np.asarray(x).dtype.kind == "f" else np.asarray(x)


# ---------------------------------------------------------------- constants and constexpr (weights)

@op("const")
def const_(*, val=None) -> Array:
    """Registered so `check_supported` accepts it; const values are read from the program (`_const_value`)."""
    return val


@op("constexpr_affine_dequantize")
def constexpr_affine_dequantize(*, quantized_data: Array, zero_point: Array, scale: Array, axis: int) -> Array:
    """(q - zero_point) * scale, with per-channel zero point/scale broadcast along `axis`."""
    q = quantized_data.astype(np.float32)
    shape = [1] * q.ndim
    zp, sc = np.asarray(zero_point, np.float32), np.asarray(scale, np.float32)
    if zp.ndim == 1 and zp.size > 1:
        shape[axis] = zp.size
        zp = zp.reshape(shape)
    if sc.ndim == 1 and sc.size > 1:
        shape = [1] * q.ndim
        shape[axis] = sc.size
        sc = sc.reshape(shape)
    return (q - zp) * sc


def _expand_blocks(v: Array, shape: tuple[int, ...]) -> Array:
    """Repeat a per-block array (rank of data, each dim dividing data's) up to the data shape."""
    v = np.asarray(v, np.float32)
    for axis, (n, b) in enumerate(zip(shape, v.shape)):
        if n % b:
            raise FeatherfaceError(f"constexpr_blockwise_shift_scale: block dim {b} does not divide {n} on axis {axis}")
        if b != n:
            v = np.repeat(v, n // b, axis=axis)
    return v


@op("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(*, data: Array, scale: Array, offset: Array | None = None) -> Array:
    """(data - offset) * scale, scale/offset given per block (iOS18 weight quantization)."""
    d = data.astype(np.float32)
    if offset is not None:
        d = d - _expand_blocks(offset, d.shape)
    return d * _expand_blocks(scale, d.shape)


@op("constexpr_lut_to_dense")
def constexpr_lut_to_dense(*, indices: Array, lut: Array, shape: Array | None = None) -> Array:
    """Palettized weights (iOS18 form): lut (..., K, vector) indexed per block by `indices`."""
    if shape is not None or lut.ndim < 3:
        raise FeatherfaceError("constexpr_lut_to_dense: only the iOS18 per-block form is supported; "
                               "re-export with --int8 (linear quantization)")
    idx = indices.astype(np.int64)
    out = np.empty(idx.shape, np.float32)
    blocks = lut.shape[: idx.ndim]
    for pos in np.ndindex(*blocks):
        sl = tuple(slice(p * (n // b), (p + 1) * (n // b)) for p, n, b in zip(pos, idx.shape, blocks))
        out[sl] = lut[pos][..., 0][idx[sl]]
    return out


# ---------------------------------------------------------------- elementwise

_UNARY: dict[str, Callable[[Array], Array]] = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "abs": np.abs,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "sign": np.sign,
    "inverse": lambda x: 1.0 / x,
    "log": np.log,
    "square": np.square,
    "identity": lambda x: x,
    "logical_not": np.logical_not,
    "relu6": lambda x: np.clip(x, 0, 6),
    "erf": lambda x: torch.erf(_t(x)).numpy(),
}


def _unary(name: str) -> OpFn:
    fn = _UNARY[name]

    def run(*, x: Array, epsilon: float | None = None) -> Array:
        x = _f32(x)
        # inverse, rsqrt and log take an epsilon added to x first
        return fn(x if epsilon is None else x + np.float32(epsilon))
    run.__name__ = name
    return run


for _name in _UNARY:
    OPS[_name] = _unary(_name)


@op("silu")
def silu(*, x: Array) -> Array:
    return x / (1.0 + np.exp(-x))


@op("leaky_relu")
def leaky_relu(*, x: Array, alpha: float = 0.01) -> Array:
    return np.where(x >= 0, x, x * np.float32(alpha))


@op("clip")
def clip(*, x: Array, alpha: float, beta: float) -> Array:
    return np.clip(x, alpha, beta)


@op("softmax")
def softmax(*, x: Array, axis: int = -1) -> Array:
    return torch.softmax(_t(x), dim=int(axis)).numpy()


_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide,
    "maximum": np.maximum, "minimum": np.minimum, "pow": np.power,
    "floor_div": np.floor_divide, "mod": np.mod,
    "equal": np.equal, "not_equal": np.not_equal, "greater": np.greater, "greater_equal": np.greater_equal,
    "less": np.less, "less_equal": np.less_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}


def _binary(name: str) -> OpFn:
    fn = _BINARY[name]

    def run(*, x: Array, y: Array) -> Array:
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind == "f" or y.dtype.kind == "f":  # float math in float32, whatever the stored type
            x, y = x.astype(np.float32), y.astype(np.float32)
        return fn(x, y)
    run.__name__ = name
    return run


for _name in _BINARY:
    OPS[_name] = _binary(_name)


@op("select")
def select(*, cond: Array, a: Array, b: Array) -> Array:
    return np.where(cond, a, b)


@op("cast")
def cast(*, x: Array, dtype: str) -> Array:
    kinds = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "int16": np.int16, "int8": np.int8,
             "uint8": np.uint8, "bool": np.bool_, "uint16": np.uint16}
    if dtype not in kinds:
        raise FeatherfaceError(f"cast to {dtype} is not supported by the MIL evaluator")
    # Core ML casts float -> int by truncation toward zero, as numpy does.
    return np.asarray(x).astype(kinds[dtype])


# ---------------------------------------------------------------- tensor layout

@op("reshape")
def reshape(*, x: Array, shape: Array) -> Array:
    return np.reshape(x, [int(s) for s in shape])


@op("transpose")
def transpose(*, x: Array, perm: Array) -> Array:
    return np.transpose(x, [int(p) for p in perm])


@op("concat")
def concat(*, values: tuple, axis: int, interleave: bool = False) -> Array:
    if interleave:
        raise FeatherfaceError("concat with interleave=True is not supported by the MIL evaluator")
    kind = np.result_type(*values)
    return np.concatenate([np.asarray(v, kind) for v in values], axis=int(axis))


@op("expand_dims")
def expand_dims(*, x: Array, axes: Array) -> Array:
    out = np.asarray(x)
    rank = out.ndim + len(axes)
    for a in sorted(int(a) % rank for a in axes):
        out = np.expand_dims(out, a)
    return out


@op("squeeze")
def squeeze(*, x: Array, axes: Array | None = None) -> Array:
    return np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes))


@op("slice_by_index")
def slice_by_index(*, x: Array, begin: Array, end: Array, stride: Array | None = None, begin_mask: Array | None = None,
                   end_mask: Array | None = None, squeeze_mask: Array | None = None) -> Array:
    rank = x.ndim
    stride = [1] * rank if stride is None else [int(s) for s in stride]
    begin_mask = [False] * rank if begin_mask is None else list(begin_mask)
    end_mask = [False] * rank if end_mask is None else list(end_mask)
    slices = []
    for i in range(rank):
        b = None if begin_mask[i] else int(begin[i])
        e = None if end_mask[i] else int(end[i])
        slices.append(slice(b, e, stride[i]))
    out = x[tuple(slices)]
    if squeeze_mask is not None and any(squeeze_mask):
        out = np.squeeze(out, axis=tuple(i for i, s in enumerate(squeeze_mask) if s))
    return out


@op("slice_by_size")
def slice_by_size(*, x: Array, begin: Array, size: Array) -> Array:
    return x[tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s)) for b, s in zip(begin, size))]


@op("gather")
def gather(*, x: Array, indices: Array, axis: int = 0, batch_dims: int = 0, validate_indices: bool = False) -> Array:
    if batch_dims:
        raise FeatherfaceError("gather with batch_dims > 0 is not supported by the MIL evaluator")
    idx = np.asarray(indices).astype(np.int64)
    n = x.shape[int(axis)]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise FeatherfaceError(f"gather index out of range [{-n}, {n}) in the Core ML program")
    return np.take(x, idx, axis=int(axis))


@op("split")
def split(*, x: Array, axis: int, num_splits: int | None = None, split_sizes: Array | None = None) -> tuple:
    if split_sizes is not None:
        return tuple(np.split(x, np.cumsum([int(s) for s in split_sizes])[:-1], axis=int(axis)))
    return tuple(np.split(x, int(num_splits), axis=int(axis)))


@op("tile")
def tile(*, x: Array, reps: Array) -> Array:
    return np.tile(x, [int(r) for r in reps])


@op("pad")
def pad(*, x: Array, pad: Array, mode: str = "constant", constant_val: float = 0.0) -> Array:
    p = [int(v) for v in pad]
    widths = [(0, 0)] * (x.ndim - len(p) // 2) + [(p[i], p[i + 1]) for i in range(0, len(p), 2)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=constant_val)
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


# ---------------------------------------------------------------- reductions

def _reduce(fn: Callable) -> OpFn:
    def run(*, x: Array, axes: Array | None = None, keep_dims: bool = False) -> Array:
        ax = None if axes is None else tuple(int(a) for a in axes)
        return fn(_f32(x), axis=ax, keepdims=bool(keep_dims))
    return run


for _name, _fn in {"reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min, "reduce_sum": np.sum,
                   "reduce_prod": np.prod}.items():
    OPS[_name] = _reduce(_fn)


# ---------------------------------------------------------------- neural network layers

def _explicit_pad(pad_type: str, pad: Array | None, spatial: tuple[int, ...], kernel: tuple[int, ...],
                  strides: tuple[int, ...], dilations: tuple[int, ...]) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL's pad_type valid/custom/same/same_lower."""
    if pad_type == "valid":
        return [(0, 0)] * len(spatial)
    if pad_type == "custom":
        p = [int(v) for v in pad]
        return [(p[2 * i], p[2 * i + 1]) for i in range(len(spatial))]
    if pad_type in ("same", "same_lower"):
        out = []
        for n, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small, big = total // 2, total - total // 2
            out.append((big, small) if pad_type == "same_lower" else (small, big))
        return out
    raise FeatherfaceError(f"pad_type {pad_type!r} is not supported by the MIL evaluator")


@op("conv")
def conv(*, x: Array, weight: Array, bias: Array | None = None, strides: Array | None = None, pad_type: str = "valid",
         pad: Array | None = None, dilations: Array | None = None, groups: int = 1) -> Array:
    if x.ndim != 4:
        raise FeatherfaceError(f"conv on a rank-{x.ndim} input is not supported by the MIL evaluator (2-D convs only)")
    strides = tuple(int(s) for s in strides) if strides is not None else (1, 1)
    dilations = tuple(int(d) for d in dilations) if dilations is not None else (1, 1)
    pads = _explicit_pad(pad_type, pad, x.shape[2:], weight.shape[2:], strides, dilations)
    xt = F.pad(_t(x), (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    b = None if bias is None else _t(bias)
    return F.conv2d(xt, _t(weight), b, stride=strides, dilation=dilations, groups=int(groups)).numpy()


@op("linear")
def linear(*, x: Array, weight: Array, bias: Array | None = None) -> Array:
    return F.linear(_t(x), _t(weight), None if bias is None else _t(bias)).numpy()


@op("matmul")
def matmul(*, x: Array, y: Array, transpose_x: bool = False, transpose_y: bool = False) -> Array:
    a, b = _t(x), _t(y)
    if transpose_x:
        a = a.transpose(-1, -2)
    if transpose_y:
        b = b.transpose(-1, -2)
    return torch.matmul(a, b).numpy()


@op("batch_norm")
def batch_norm(*, x: Array, mean: Array, variance: Array, gamma: Array | None = None, beta: Array | None = None,
               epsilon: float = 1e-5) -> Array:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = (1.0 if gamma is None else gamma.astype(np.float32)) / np.sqrt(variance.astype(np.float32) + np.float32(epsilon))
    shift = (0.0 if beta is None else beta.astype(np.float32)) - mean.astype(np.float32) * scale
    return x * np.reshape(scale, shape) + np.reshape(shift, shape)


def _pool(kind: str) -> OpFn:
    def run(*, x: Array, kernel_sizes: Array, strides: Array, pad_type: str, pad: Array | None = None,
            ceil_mode: bool = False, exclude_padding_from_average: bool = False) -> Array:
        k = tuple(int(v) for v in kernel_sizes)
        s = tuple(int(v) for v in strides)
        pads = _explicit_pad(pad_type, pad, x.shape[2:], k, s, (1, 1))
        fill = -np.inf if kind == "max" else 0.0
        xt = F.pad(_t(x), (pads[1][0], pads[1][1], pads[0][0], pads[0][1]), value=fill)
        if kind == "max":
            return F.max_pool2d(xt, k, s, ceil_mode=bool(ceil_mode)).numpy()
        out = F.avg_pool2d(xt, k, s, ceil_mode=bool(ceil_mode))
        if exclude_padding_from_average and any(p != (0, 0) for p in pads):
            ones = F.pad(torch.ones(1, 1, *x.shape[2:]), (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
            out = out / F.avg_pool2d(ones, k, s, ceil_mode=bool(ceil_mode))
        return out.numpy()
    return run


OPS["max_pool"] = _pool("max")
OPS["avg_pool"] = _pool("avg")


@op("upsample_nearest_neighbor")
def upsample_nearest_neighbor(*, x: Array, scale_factor_height: float = 1, scale_factor_width: float = 1) -> Array:
    sh, sw = float(scale_factor_height), float(scale_factor_width)
    if sh.is_integer() and sw.is_integer():
        return np.repeat(np.repeat(x, int(sh), axis=-2), int(sw), axis=-1)
    size = (int(np.floor(x.shape[-2] * sh)), int(np.floor(x.shape[-1] * sw)))
    return F.interpolate(_t(x), size=size, mode="nearest").numpy()


# ---------------------------------------------------------------- program loading and evaluation

def _silence_coremltools() -> None:
    import logging

    for name in ("coremltools", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load_program(path: str | Path):
    """(pymil Program, spec) of a saved .mlpackage, weights read from the package's weight blobs."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    _silence_coremltools()
    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise FeatherfaceError(f"{Path(path).name} is not an ML program (neural network models are not supported); re-export it")
    program = load_milproto(spec, spec.specificationVersion, mlmodel.weights_dir)
    return program, spec


def _np_dtype(var) -> np.dtype | None:
    from coremltools.converters.mil.mil import types

    dt = var.dtype
    if dt is None or not (types.is_tensor(var.sym_type) or types.is_scalar(var.sym_type)):
        return None
    try:
        return np.dtype(types.nptype_from_builtin(dt))
    except (TypeError, KeyError):
        return None


def _const_value(operation):
    val = operation.outputs[0].val
    return np.asarray(val) if isinstance(val, (np.ndarray, np.generic)) else val


@dataclass
class MilProgram:
    """A loaded ML program, ready to evaluate on numpy inputs."""

    program: Any
    spec: Any
    emulate_fp16: bool = True

    @classmethod
    def load(cls, path: str | Path, *, emulate_fp16: bool = True) -> "MilProgram":
        program, spec = load_program(path)
        prog = cls(program, spec, emulate_fp16)
        prog.check_supported()
        return prog

    @property
    def main(self):
        return self.program.functions["main"]

    def op_types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.main.operations:
            counts[o.op_type] = counts.get(o.op_type, 0) + 1
        return counts

    def check_supported(self) -> None:
        missing = sorted(set(self.op_types()) - set(OPS))
        if missing:
            raise FeatherfaceError(f"MIL evaluator has no implementation for op type(s) {', '.join(missing)}; "
                                   f"add them to featherface_mobile.export.mil_eval.OPS")

    def __call__(self, inputs: dict[str, Array]) -> dict[str, Array]:
        """Evaluate `main` on named inputs; returns the named outputs (float32 where the program says fp32)."""
        env: dict[str, Any] = {}
        for name, var in self.main.inputs.items():
            if name not in inputs:
                raise FeatherfaceError(f"Core ML program expects input {name!r}; got {sorted(inputs)}")
            env[name] = self._store(np.asarray(inputs[name]), var)
        for operation in self.main.operations:
            self._run(operation, env)
        return {v.name: env[v.name] for v in self.main.outputs}

    def _run(self, operation, env: dict[str, Any]) -> None:
        if operation.op_type == "const":
            env[operation.outputs[0].name] = _const_value(operation)
            return
        fn = OPS.get(operation.op_type)
        if fn is None:
            raise FeatherfaceError(f"MIL evaluator has no implementation for op type {operation.op_type!r} "
                                   f"({operation.name}); add it to featherface_mobile.export.mil_eval.OPS")
        kwargs = {}
        for arg, var in operation.inputs.items():
            if isinstance(var, (tuple, list)):
                kwargs[arg] = tuple(self._value(v, env) for v in var)
            else:
                kwargs[arg] = self._value(var, env)
        try:
            result = fn(**kwargs)
        except FeatherfaceError:
            raise
        except Exception as e:  # name the op that failed, not just numpy's complaint
            raise FeatherfaceError(f"MIL evaluator failed on {operation.op_type} {operation.name!r}: {e}") from e
        results = result if isinstance(result, tuple) else (result,)
        for var, value in zip(operation.outputs, results):
            env[var.name] = self._store(value, var)

    @staticmethod
    def _value(var, env: dict[str, Any]):
        if var.name in env:
            return env[var.name]
        if var.val is not None:  # a compile-time constant known to the loader
            return np.asarray(var.val) if isinstance(var.val, (np.ndarray, np.generic)) else var.val
        raise FeatherfaceError(f"MIL evaluator: {var.name!r} has no value (ops out of order?)")

    def _store(self, value, var):
        """Keep a value in the program's declared dtype: fp16 outputs rounded when emulating, computed as float32."""
        dtype = _np_dtype(var)
        if dtype is None or not isinstance(value, (np.ndarray, np.generic, float, int, bool)):
            return value
        arr = np.asarray(value)
        if dtype == np.float16:
            return arr.astype(np.float16).astype(np.float32) if self.emulate_fp16 else arr.astype(np.float32)
        return arr.astype(dtype, copy=False)
