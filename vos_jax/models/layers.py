"""Shared blocks for the model families: convolutions with BatchNorm, separable convolutions, a
masked BatchNorm, stride-aligned bilinear upsampling.

Conventions (DESIGN.md): NHWC, parameters float32, computation in `dtype` (bfloat16 on GPU/TPU),
BatchNorm statistics in float32. Padding is explicit and symmetric as in PyTorch
(`padding = dilation * (k - 1) // 2`), so a stride-s layer maps size n to ceil(n / s) and output
sample j is centred on input sample s * j; `upsample_aligned` relies on that geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from vos_jax.dtypes import accumulation_dtype

Dtype = Any

# torchvision's convolution init: kaiming_normal_(mode="fan_out", nonlinearity="relu").
KAIMING_FAN_OUT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
BN_MOMENTUM = 0.9  # flax convention: running = momentum * running + (1 - momentum) * batch
BN_EPSILON = 1e-5  # PyTorch default


def conv_padding(kernel_size: int, dilation: int = 1) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric PyTorch-style padding for a square (dilated) kernel."""
    pad = dilation * (kernel_size - 1) // 2
    return ((pad, pad), (pad, pad))


class MaskedBatchNorm(nn.Module):
    """BatchNorm over all axes but the last, with an optional mask.

    Same variables and update rule as `flax.linen.BatchNorm` ("scale", "bias"; batch_stats
    "mean", "var"). In training, statistics are sum / count over the positions where `mask` is
    true, so a padded object contributes nothing.
    """

    use_running_average: bool = False
    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: Float[Array, "*B C"], mask: Bool[ArrayLike, "*#B 1"] | None = None
    ) -> Float[Array, "*B C"]:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            acc = accumulation_dtype(x.dtype)
            xf = x.astype(acc)
            weight = jnp.ones(x.shape[:-1] + (1,), acc)
            if mask is not None:
                weight = weight * mask.astype(acc)
            axes = tuple(range(x.ndim - 1))
            sums = jnp.stack([jnp.sum(weight * xf, axes), jnp.sum(weight * xf * xf, axes)])
            count = jnp.sum(weight)
            mean = sums[0] / jnp.maximum(count, 1.0)
            var = jnp.maximum(sums[1] / jnp.maximum(count, 1.0) - mean * mean, 0.0)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = m * ra_mean.value + (1.0 - m) * mean
                ra_var.value = m * ra_var.value + (1.0 - m) * var
        mul = scale * jax.lax.rsqrt(var + self.epsilon)
        y = x.astype(accumulation_dtype(x.dtype)) * mul + (bias - mean * mul)
        return y.astype(self.dtype)


_NHWC = jax.lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # flax's layout


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    **kwargs,
):
    """`lax.conv_general_dilated` for `nn.Conv(..., conv_general_dilated=...)`, except that on
    XLA:CPU an ungrouped, unpadded 1x1 convolution of NHWC inputs runs as a matrix product (of the
    strided input): XLA:CPU's convolution reaches 70-85 GFLOP/s on ResNet's 1x1 shapes here, its
    dot 120-180 (2-core Zen 4, e.g. [1, 64, 112, 256] -> 64: 3.4 vs 1.3 ms), and the weight
    gradient of a dot is a dot too. 1x1 convs are half of a bottleneck ResNet's FLOPs."""
    zero_padding = padding in ("SAME", "VALID") or all(tuple(p) == (0, 0) for p in padding)
    pointwise = (
        jax.default_backend() == "cpu"
        and lhs.ndim == 4
        and tuple(rhs.shape[:2]) == (1, 1)
        and feature_group_count == 1
        and dimension_numbers == _NHWC
        and zero_padding
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and not kwargs
    )
    if pointwise:
        sy, sx = window_strides
        return jnp.einsum("bhwc,cd->bhwd", lhs[:, ::sy, ::sx], rhs[0, 0], precision=precision)
    return jax.lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        dimension_numbers,
        feature_group_count,
        precision=precision,
        **kwargs,
    )


def depthwise_conv(
    x: Float[Array, "B H W C"],
    kernel: Float[Array, "k k 1 C"],
    strides: int = 1,
    dilation: int = 1,
    shifted_sum: bool | None = None,
    tf_same: bool = False,
) -> Float[Array, "B h w C"]:
    """Depthwise kxk convolution with symmetric padding, output size ceil(H / strides);
    `tf_same`: TensorFlow's SAME padding instead (the extra pixel of an even total after, not
    split: 0 before and 1 after for a 3x3 stride-2 conv), same output size.

    `shifted_sum` (default: on the CPU backend) computes it as k^2 strided slices of the padded
    input, each scaled by its tap and summed, which XLA fuses into one loop: XLA:CPU runs grouped
    convolutions ~25x slower forward and 5-10x slower forward + backward (7x7 on [8, 17, 17, 35]:
    11.4 vs 0.45 ms forward, 19.9 vs 4.3 ms with gradients). Elsewhere cuDNN / the TPU
    convolution is used. Both give the same values up to float rounding.
    """
    if shifted_sum is None:
        shifted_sum = jax.default_backend() == "cpu"
    k = kernel.shape[0]
    padding = conv_padding(k, dilation)
    if tf_same:
        reach = dilation * (k - 1) + 1

        def same(n):  # TensorFlow: total = (out - 1) s + reach - n, the odd pixel after
            total = max((-(-n // strides) - 1) * strides + reach - n, 0)
            return (total // 2, total - total // 2)

        padding = (same(x.shape[1]), same(x.shape[2]))
    if not shifted_sum:
        return jax.lax.conv_general_dilated(
            x,
            kernel.astype(x.dtype),
            (strides, strides),
            padding,
            rhs_dilation=(dilation, dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=x.shape[-1],
        )
    height, width = x.shape[1:3]
    out_h, out_w = -(-height // strides), -(-width // strides)
    # Accumulate in float32 at least (as the convolution does), whatever the compute dtype.
    acc = accumulation_dtype(x.dtype)
    xp = jnp.pad(x.astype(acc), ((0, 0), *padding, (0, 0)))
    taps = kernel.astype(acc)[:, :, 0, :]  # [k, k, C]
    out = jnp.zeros((x.shape[0], out_h, out_w, x.shape[-1]), acc)
    for i in range(k):
        for j in range(k):
            y0, x0 = i * dilation, j * dilation
            window = xp[
                :,
                y0 : y0 + (out_h - 1) * strides + 1 : strides,
                x0 : x0 + (out_w - 1) * strides + 1 : strides,
            ]
            out = out + window * taps[i, j]
    return out.astype(x.dtype)


class DepthwiseConv(nn.Module):
    """A depthwise conv with the variables of `nn.Conv(C, (k, k), feature_group_count=C)`
    ("kernel" [k, k, 1, C], optional "bias" [C]), computed by `depthwise_conv`."""

    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    kernel_init: Callable = KAIMING_FAN_OUT
    tf_same: bool = False  # TensorFlow's SAME padding (`depthwise_conv`)

    @nn.compact
    def __call__(self, x: Float[Array, "B H W C"]) -> Float[Array, "B h w C"]:
        channels, k = x.shape[-1], self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, 1, channels), jnp.float32)
        y = depthwise_conv(
            x.astype(self.dtype), kernel, self.strides, self.dilation, tf_same=self.tf_same
        )
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
            y = y + bias.astype(self.dtype)
        return y


def transposed_conv_bias(module: nn.Module, x, features: int, kernel: int, name: str, dtype):
    """TFLite's `Convolution2DTransposeBias` (stride 2, TensorFlow SAME) inside `module`'s
    compact method, its parameters `{name}_kernel` [k, k, features, in] (the forward
    convolution's HWIO whose transpose this is) and `{name}_bias` (MediaPipe's models)."""
    k = module.param(f"{name}_kernel", nn.initializers.lecun_normal(in_axis=3, out_axis=2),
                     (kernel, kernel, features, x.shape[-1]), jnp.float32)  # fmt: skip
    bias = module.param(f"{name}_bias", nn.initializers.zeros, (features,), jnp.float32)
    y = jax.lax.conv_transpose(
        x, k.astype(dtype), (2, 2), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), transpose_kernel=True,
    )  # fmt: skip
    return y + bias.astype(dtype)


class ConvBNReLU(nn.Module):
    """Conv (symmetric padding, optional dilation/groups) + optional BatchNorm + activation."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    groups: int = 1
    use_bn: bool = True
    activation: Callable[[Array], Array] | None = nn.relu
    dtype: Dtype = jnp.float32
    kernel_init: Callable = KAIMING_FAN_OUT

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "B H W C"],
        train: bool,
        mask: Bool[ArrayLike, "#B 1 1 1"] | None = None,
    ) -> Float[Array, "B h w F"]:
        k = self.kernel_size
        if self.groups > 1 and self.groups == self.features == x.shape[-1]:
            conv = DepthwiseConv(
                k,
                self.strides,
                self.dilation,
                use_bias=not self.use_bn,
                dtype=self.dtype,
                kernel_init=self.kernel_init,
                name="conv",
            )
            return self._finish(conv(x), train, mask)
        x = nn.Conv(
            self.features,
            (k, k),
            strides=self.strides,
            padding=conv_padding(k, self.dilation),
            kernel_dilation=self.dilation,
            feature_group_count=self.groups,
            use_bias=not self.use_bn,
            dtype=self.dtype,
            kernel_init=self.kernel_init,
            conv_general_dilated=conv_general_dilated,
            name="conv",
        )(x)
        return self._finish(x, train, mask)

    def _finish(self, x, train: bool, mask):
        if self.use_bn:
            x = MaskedBatchNorm(not train, dtype=self.dtype, name="bn")(x, mask)
        if self.activation is not None:
            x = self.activation(x)
        return x


class SeparableConv(nn.Module):
    """Depthwise kxk (dilated) conv + pointwise 1x1 conv, each followed by BN + activation when
    `use_bn` (DeepLab's `split_separable_conv2d`, Chen et al. ECCV 2018, Sec. 3.2: the
    activation between the two convolutions is what distinguishes it from Xception's)."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    use_bn: bool = True
    activation: Callable[[Array], Array] | None = nn.relu
    dtype: Dtype = jnp.float32
    depthwise_init: Callable = KAIMING_FAN_OUT
    pointwise_init: Callable = KAIMING_FAN_OUT

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "B H W C"],
        train: bool,
        mask: Bool[ArrayLike, "#B 1 1 1"] | None = None,
    ) -> Float[Array, "B h w F"]:
        common = dict(
            use_bn=self.use_bn,
            activation=self.activation,
            dtype=self.dtype,
        )
        channels = x.shape[-1]
        x = ConvBNReLU(
            channels,
            self.kernel_size,
            self.strides,
            self.dilation,
            groups=channels,
            kernel_init=self.depthwise_init,
            name="depthwise",
            **common,
        )(x, train, mask)
        pointwise = ConvBNReLU(
            self.features, 1, kernel_init=self.pointwise_init, name="pointwise", **common
        )
        return pointwise(x, train, mask)


def _interpolation(out_size: int, in_size: int, factor: float):
    """Static indices and weights for 1-D linear interpolation at positions i / factor, clamped."""
    pos = np.clip(np.arange(out_size) / factor, 0.0, in_size - 1)
    lo = np.floor(pos).astype(np.int32)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def upsample_aligned(
    x: Float[Array, "B h w C"], size: tuple[int, int], factor: float
) -> Float[Array, "B H W C"]:
    """Bilinear upsampling by `factor` for grids whose sample j sits on output pixel factor * j.

    That is where the symmetric-padding convolutions and poolings of these backbones centre their
    outputs, so this keeps features and labels aligned (plain half-pixel `jax.image.resize`
    would shift them by (factor - 1) / 2 pixels). It equals `align_corners=True` resizing (as in
    DeepLab / FEELVOS, which use sizes factor * k + 1) when H = factor * (h - 1) + 1; pixels past
    the last sample take the edge value. Computed in float32 at least, returned in x's dtype.
    """
    y = x.astype(accumulation_dtype(x.dtype))
    for axis, out_size in ((1, size[0]), (2, size[1])):
        lo, hi, w = _interpolation(out_size, y.shape[axis], factor)
        w = w.reshape((-1,) + (1,) * (y.ndim - 1 - axis))
        y = jnp.take(y, lo, axis) * (1.0 - w) + jnp.take(y, hi, axis) * w
    return y.astype(x.dtype)


def _align_corners_matrix(out_size: int, in_size: int) -> np.ndarray:
    """[out, in] weights of 1-D linear interpolation with aligned corners: output i samples input
    position i (in - 1) / (out - 1) (PyTorch's `UpsamplingBilinear2d`; out == 1 samples 0)."""
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    pos = np.arange(out_size) * scale
    lo = np.minimum(np.floor(pos).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = pos - lo
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (np.arange(out_size), lo), 1.0 - frac)
    np.add.at(matrix, (np.arange(out_size), hi), frac)
    return matrix


def resize_align_corners(
    x: Float[Array, "B h w C"], size: tuple[int, int]
) -> Float[Array, "B H W C"]:
    """Bilinear resize to `size` with aligned corners, as PyTorch's `nn.UpsamplingBilinear2d`
    (RVOS). Two small dense matmuls (rows, then columns): exact weights, and on every backend
    faster than gathers at these sizes. Computed in float32 at least, returned in x's dtype."""
    acc = accumulation_dtype(x.dtype)
    rows = jnp.asarray(_align_corners_matrix(size[0], x.shape[1]), acc)
    cols = jnp.asarray(_align_corners_matrix(size[1], x.shape[2]), acc)
    y = jnp.einsum("Hh,bhwc->bHwc", rows, x.astype(acc), precision=jax.lax.Precision.HIGHEST)
    y = jnp.einsum("Ww,bHwc->bHWc", cols, y, precision=jax.lax.Precision.HIGHEST)
    return y.astype(x.dtype)


def max_pool_ceil(x: Float[Array, "B H W C"]) -> Float[Array, "B h w C"]:
    """2x2 max-pool, stride 2, output size rounded up (PyTorch `ceil_mode=True`): h = ceil(H / 2);
    the last row/column of an odd size pools over what is there."""
    pad = ((0, x.shape[1] % 2), (0, x.shape[2] % 2))
    return nn.max_pool(x, (2, 2), strides=(2, 2), padding=pad)


class ConvLSTMCell(nn.Module):
    """ConvLSTM cell of RVOS (Ventura et al. CVPR 2019, Sec. 3; official `clstm.py`): one kxk conv
    with bias over [input, previous mask (one-shot), spatial h, temporal h] to 4 x hidden channels,
    split as input, forget, output gate and cell candidate. The cell state comes from the spatial
    path only (the previous object of the same frame); the temporal path brings only h."""

    hidden: int
    kernel_size: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "B h w C"],
        mask: Float[Array, "B h w 1"] | None,
        spatial: tuple[Float[Array, "B h w K"], Float[Array, "B h w K"]],
        temporal: Float[Array, "B h w K"],
    ) -> tuple[Float[Array, "B h w K"], Float[Array, "B h w K"]]:
        h_spatial, c_spatial = spatial
        parts = [x, mask, h_spatial, temporal] if mask is not None else [x, h_spatial, temporal]
        stacked = jnp.concatenate([p.astype(self.dtype) for p in parts], axis=-1)
        k = self.kernel_size
        gates = nn.Conv(
            4 * self.hidden, (k, k), padding=conv_padding(k), dtype=self.dtype, name="gates"
        )(stacked)
        acc = accumulation_dtype(self.dtype)
        i, f, o, g = jnp.split(gates.astype(acc), 4, axis=-1)
        cell = jax.nn.sigmoid(f) * c_spatial.astype(acc) + jax.nn.sigmoid(i) * jnp.tanh(g)
        hidden = jax.nn.sigmoid(o) * jnp.tanh(cell)
        return hidden.astype(self.dtype), cell
