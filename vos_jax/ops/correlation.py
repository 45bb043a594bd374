"""Depthwise cross-correlation (SiamMask, Wang et al. CVPR 2019, Sec. 3.1; SiamRPN++).

Each channel of a search feature map is correlated with the same channel of its own template
feature map (a per-sample, per-channel kernel): no flip, no padding, as the official
`conv2d_dw_group` (models/rpn.py), which folds the batch into the channels of one grouped
convolution. The same fold here: one `feature_group_count = B * C` convolution, which XLA lowers
to a depthwise convolution on every backend.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def depthwise_xcorr(
    search: Float[ArrayLike, "B H W C"], kernel: Float[ArrayLike, "B h w C"]
) -> Float[Array, "B H-h+1 W-w+1 C"]:
    """out[b, y, x, c] = sum_{i, j} search[b, y + i, x + j, c] * kernel[b, i, j, c]."""
    search, kernel = jnp.asarray(search), jnp.asarray(kernel)
    batch, height, width, channels = search.shape
    kh, kw = kernel.shape[1:3]
    lhs = jnp.moveaxis(search, 0, -2).reshape(1, height, width, batch * channels)
    rhs = jnp.moveaxis(kernel, 0, -2).reshape(kh, kw, 1, batch * channels)
    out = jax.lax.conv_general_dilated(
        lhs,
        rhs.astype(lhs.dtype),
        window_strides=(1, 1),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=batch * channels,
    )
    out = out.reshape(height - kh + 1, width - kw + 1, batch, channels)
    return jnp.moveaxis(out, 2, 0)
