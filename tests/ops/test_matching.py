"""FEELVOS matching ops against brute-force float64 NumPy loops; jit, vmap, gradients, memory."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.ops import matching

TOL = 1e-5


# ---------------------------------------------------------------- float64 references (plain loops)
def ref_distance(sq):
    with np.errstate(over="ignore"):
        return 1.0 - 2.0 / (1.0 + np.exp(np.asarray(sq, np.float64)))


def ref_global(q, r, lab, num_objects):
    """Per (b, y, x, o): min over reference pixels of object o; also d/dq and d/dr of the sum."""
    q, r = np.asarray(q, np.float64), np.asarray(r, np.float64)
    b_, h, w, _ = q.shape
    out = np.ones((b_, h, w, num_objects))
    gq, gr = np.zeros_like(q), np.zeros_like(r)
    for b in range(b_):
        for y in range(h):
            for x in range(w):
                for o in range(num_objects):
                    best, arg = np.inf, None
                    for n in range(r.shape[1]):
                        if lab[b, n] == o:
                            sq = ((q[b, y, x] - r[b, n]) ** 2).sum()
                            if sq < best:
                                best, arg = sq, n
                    if arg is not None:
                        out[b, y, x, o] = ref_distance(best)
                        g = 0.5 * (1 - np.tanh(best / 2) ** 2) * 2 * (q[b, y, x] - r[b, arg])
                        gq[b, y, x] += g
                        gr[b, arg] -= g
    return out, gq, gr


def ref_local(q, p, lab, num_objects, k, dilation):
    """Per (b, y, x, o): min over window positions (y + dy*s, x + dx*s) inside the frame labelled
    o; also the gradients of the sum w.r.t. q and p."""
    q, p = np.asarray(q, np.float64), np.asarray(p, np.float64)
    b_, h, w, _ = q.shape
    out = np.ones((b_, h, w, num_objects))
    gq, gp = np.zeros_like(q), np.zeros_like(p)
    for b in range(b_):
        for y in range(h):
            for x in range(w):
                best = [(np.inf, None)] * num_objects
                for dy in range(-k, k + 1):
                    for dx in range(-k, k + 1):
                        yy, xx = y + dy * dilation, x + dx * dilation
                        if not (0 <= yy < h and 0 <= xx < w):
                            continue
                        o = lab[b, yy, xx]
                        if 0 <= o < num_objects:
                            sq = ((q[b, y, x] - p[b, yy, xx]) ** 2).sum()
                            if sq < best[o][0]:
                                best[o] = (sq, (yy, xx))
                for o, (sq, at) in enumerate(best):
                    if at is not None:
                        out[b, y, x, o] = ref_distance(sq)
                        g = 0.5 * (1 - np.tanh(sq / 2) ** 2) * 2 * (q[b, y, x] - p[b, at[0], at[1]])
                        gq[b, y, x] += g
                        gp[b, at[0], at[1]] -= g
    return out, gq, gp


def random_case(seed, shape, dim=6, num_objects=4, present=3, scale=0.4):
    """Embeddings with squared distances ~ 0.1-5 (where eq. 1 is not saturated) and labels in
    {-1, 0..present-1, num_objects + 1}: ignored pixels, an absent object, an out-of-range id."""
    rng = np.random.default_rng(seed)
    a = (scale * rng.standard_normal((*shape, dim))).astype(np.float32)
    b = (scale * rng.standard_normal((*shape, dim))).astype(np.float32)
    lab = rng.choice([-1, *range(present), num_objects + 1], size=shape, p=None).astype(np.int32)
    return a, b, lab


# ---------------------------------------------------------------- normalized distance
def test_normalized_distance_matches_eq1_and_saturates():
    x = np.concatenate([np.linspace(0, 20, 101), [50.0, 1e3, 1e30, np.inf]]).astype(np.float32)
    y = np.asarray(matching.normalized_distance(jnp.asarray(x)))
    assert y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_allclose(y, ref_distance(x), atol=TOL, rtol=0)
    # Non-decreasing up to float32 rounding: XLA:CPU's elemental tanh (the tests' compile flags,
    # conftest.py) steps back by 1 ulp near saturation.
    assert y[0] == 0 and (y[-4:] == 1).all() and (np.diff(y) >= -2e-7).all()
    g = jax.grad(lambda v: matching.normalized_distance(v).sum())(jnp.asarray(x))
    assert np.isfinite(np.asarray(g)).all()
    bf = matching.normalized_distance(jnp.ones(3, jnp.bfloat16))
    assert bf.dtype == jnp.float32


# ---------------------------------------------------------------- global matching
@pytest.mark.parametrize("chunk_size", [None, 7, 1])
def test_global_matching_matches_loops(chunk_size):
    q, _, _ = random_case(0, (2, 5, 6))
    r, _, lab = random_case(1, (2, 40))
    out = matching.global_matching(q, r, lab, 4, chunk_size=chunk_size)
    expected, _, _ = ref_global(q, r, lab, 4)
    assert out.shape == (2, 5, 6, 4) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)
    assert (np.asarray(out)[..., 3] == 1.0).all()  # object 3 has no reference pixel


def test_global_matching_gradients_match_loops():
    q, _, _ = random_case(2, (1, 4, 5))
    r, _, lab = random_case(3, (1, 30))
    gq, gr = jax.jit(
        jax.grad(lambda a, b: matching.global_matching(a, b, lab, 4, 6).sum(), argnums=(0, 1))
    )(q, r)
    _, eq, er = ref_global(q, r, lab, 4)
    assert np.isfinite(gq).all() and np.isfinite(gr).all()
    np.testing.assert_allclose(gq, eq, atol=1e-4, rtol=0)
    np.testing.assert_allclose(gr, er, atol=1e-4, rtol=0)


def test_bfloat16_inputs_give_float32():
    """bf16 x bf16 products are exact in float32: the same result as on the rounded inputs."""
    q, p, lab = random_case(4, (1, 3, 4))
    r, _, rlab = random_case(5, (1, 20))
    qb, pb, rb = (jnp.asarray(a, jnp.bfloat16) for a in (q, p, r))
    q32, p32, r32 = (np.asarray(a, np.float32) for a in (qb, pb, rb))
    out = matching.global_matching(qb, rb, rlab, 4)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref_global(q32, r32, rlab, 4)[0], atol=TOL, rtol=0)
    out = matching.local_matching(qb, pb, lab, 4, 2)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref_local(q32, p32, lab, 4, 2, 1)[0], atol=TOL, rtol=0)


def test_global_matching_with_sampled_reference():
    """The training path: sample <= M pixels per object, gather, flatten to [B, O*M, D]."""
    q, _, _ = random_case(6, (2, 4, 4))
    r, _, lab = random_case(7, (2, 50))
    num_objects, m = 4, 5

    @jax.jit
    def sampled(key, q, r):
        idx, valid = matching.sample_reference(key, lab, num_objects, m)
        ref = jnp.take_along_axis(r, idx.reshape(2, -1)[..., None], axis=1)  # [B, O*M, D]
        ref_lab = jnp.where(valid, jnp.arange(num_objects)[:, None], -1).reshape(2, -1)
        return matching.global_matching(q, ref, ref_lab, num_objects), idx, valid

    out, idx, valid = sampled(jax.random.key(0), q, r)
    kept = np.full_like(lab, -1)  # the same matching on the full reference, unsampled pixels off
    for b, o, j in zip(*np.nonzero(np.asarray(valid)), strict=True):
        kept[b, idx[b, o, j]] = o
    np.testing.assert_allclose(out, ref_global(q, r, kept, num_objects)[0], atol=TOL, rtol=0)
    grads = jax.grad(lambda a, b: sampled(jax.random.key(1), a, b)[0].sum(), argnums=(0, 1))(q, r)
    assert all(np.isfinite(g).all() and np.abs(g).sum() > 0 for g in grads)


# ---------------------------------------------------------------- local matching
@pytest.mark.parametrize(
    "batch,h,w,k,dilation,tile",
    [
        (2, 5, 7, 1, 1, (8, 8)),
        (1, 3, 4, 4, 1, (8, 8)),  # the frame is smaller than the window
        (1, 17, 11, 2, 1, (8, 8)),  # several tiles, padded edges
        (1, 9, 10, 2, 1, (3, 4)),  # a non-default tile
        (1, 9, 6, 2, 2, (8, 8)),
        (2, 10, 13, 4, 2, (8, 8)),
        (1, 4, 3, 1, 2, (8, 8)),  # frame smaller than the dilated window
    ],
)
def test_local_matching_matches_loops(batch, h, w, k, dilation, tile):
    q, p, lab = random_case(10 + h * w + k, (batch, h, w))
    out = matching.local_matching(q, p, lab, 4, k, dilation, tile=tile)
    expected, _, _ = ref_local(q, p, lab, 4, k, dilation)
    assert out.shape == (batch, h, w, 4) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)
    assert (np.asarray(out)[..., 3] == 1.0).all()  # absent object


def test_local_matching_default_window_at_borders():
    """k = 15 (the default) on a small frame: every window is cut by the border."""
    q, p, lab = random_case(20, (1, 6, 20), present=4)
    out = matching.local_matching(q, p, lab, 4)
    np.testing.assert_allclose(out, ref_local(q, p, lab, 4, 15, 1)[0], atol=TOL, rtol=0)


@pytest.mark.parametrize("dilation", [1, 2])
def test_local_matching_gradients_match_loops(dilation):
    q, p, lab = random_case(21, (1, 6, 7))
    grad = jax.grad(
        lambda a, b: matching.local_matching(a, b, lab, 4, 2, dilation).sum(), argnums=(0, 1)
    )
    gq, gp = jax.jit(grad)(q, p)
    _, eq, ep = ref_local(q, p, lab, 4, 2, dilation)
    assert np.isfinite(gq).all() and np.isfinite(gp).all()
    np.testing.assert_allclose(gq, eq, atol=1e-4, rtol=0)
    np.testing.assert_allclose(gp, ep, atol=1e-4, rtol=0)


def test_local_matching_in_several_steps_with_a_padded_group(monkeypatch):
    """3 tiles, 2 per lax.map step (a small step budget): the padded 4th tile changes nothing."""
    q, p, lab = random_case(23, (1, 17, 5))
    per_tile = 4 * (8 + 4) * (5 + 4) * (6 + 8 * 5)  # window x (D + tile pixels) float32
    monkeypatch.setitem(matching._STEP_BYTES, jax.default_backend(), 2 * per_tile)
    fn = lambda a, b: matching.local_matching(a, b, lab, 4, 2)
    out, (gq, gp) = fn(q, p), jax.grad(lambda a, b: fn(a, b).sum(), argnums=(0, 1))(q, p)
    expected, eq, ep = ref_local(q, p, lab, 4, 2, 1)
    np.testing.assert_allclose(out, expected, atol=TOL, rtol=0)
    np.testing.assert_allclose(gq, eq, atol=1e-4, rtol=0)
    np.testing.assert_allclose(gp, ep, atol=1e-4, rtol=0)


def test_local_matching_rejects_bad_arguments():
    q, p, lab = random_case(22, (1, 3, 3))
    with pytest.raises(ValueError, match="dilation"):
        matching.local_matching(q, p, lab, 2, 1, 0)


# ---------------------------------------------------------------- sampling
def check_sample(labels, idx, valid, num_objects, m):
    labels, idx, valid = map(np.asarray, (labels, idx, valid))
    assert idx.shape == valid.shape == (labels.shape[0], num_objects, m) and idx.dtype == np.int32
    assert ((idx >= 0) & (idx < labels.shape[1])).all()
    for b in range(labels.shape[0]):
        for o in range(num_objects):
            chosen = idx[b, o][valid[b, o]]
            assert (labels[b, chosen] == o).all()
            assert len(set(chosen.tolist())) == len(chosen)  # without replacement
            assert len(chosen) == min(m, (labels[b] == o).sum())


@pytest.mark.parametrize("n,m", [(60, 8), (5, 8)])  # (5, 8): fewer pixels than M at all
def test_sample_reference_picks_each_object(n, m):
    rng = np.random.default_rng(n)
    labels = rng.choice([-1, 0, 0, 0, 1, 7], size=(3, n)).astype(np.int32)  # 7 >= O: ignored
    labels[0, :3] = 2  # object 2: 3 pixels in image 0, none elsewhere
    idx, valid = jax.jit(matching.sample_reference, static_argnums=(2, 3))(
        jax.random.key(0), labels, 4, m
    )
    check_sample(labels, idx, valid, 4, m)
    assert not np.asarray(valid)[:, 3].any()


def test_sample_reference_is_uniform_and_key_dependent():
    labels = np.full((1, 40), -1, np.int32)
    labels[0, :3] = 1  # a small object: 3 pixels, M = 2
    labels[0, 10:30] = 0  # 20 pixels, M = 2: each has probability 1/10 per draw
    keys = jax.random.split(jax.random.key(3), 1000)
    idx, valid = jax.vmap(lambda k: matching.sample_reference(k, labels, 2, 2))(keys)
    idx, valid = np.asarray(idx)[:, 0], np.asarray(valid)[:, 0]
    assert valid.all()
    for o, pixels in [(0, range(10, 30)), (1, range(3))]:
        counts = np.bincount(idx[:, o].ravel(), minlength=40)[list(pixels)]
        expected = 2 * 1000 / len(pixels)  # 100 or 667 picks per pixel
        assert (np.abs(counts - expected) < 5 * np.sqrt(expected)).all(), counts
    assert len({tuple(sorted(s)) for s in idx[:, 0]}) > 100  # different keys, different samples


# ---------------------------------------------------------------- transformations
def test_vmap_equals_loop_and_no_retrace():
    q, p, lab = random_case(30, (3, 2, 5, 6))  # an extra leading axis of 3
    r, _, rlab = random_case(31, (3, 2, 12))
    glob = jax.vmap(lambda a, b, c: matching.global_matching(a, b, c, 4, 9))(q, r, rlab)
    loc = jax.vmap(lambda a, b, c: matching.local_matching(a, b, c, 4, 2, 2))(q, p, lab)
    for i in range(3):
        np.testing.assert_allclose(
            glob[i], matching.global_matching(q[i], r[i], rlab[i], 4, 9), atol=1e-6
        )
        np.testing.assert_allclose(
            loc[i], matching.local_matching(q[i], p[i], lab[i], 4, 2, 2), atol=1e-6
        )

    @jax.jit
    @chex.assert_max_traces(n=1)
    def both(q, r, rlab, p, lab):
        return matching.global_matching(q, r, rlab, 4), matching.local_matching(q, p, lab, 4, 3)

    for i in range(3):  # same shapes, new values: traced once
        both(q[i], r[i], rlab[i], p[i], lab[i])


# ---------------------------------------------------------------- memory at DAVIS 480p
def test_memory_at_davis_480p():
    """Global matching without sampling at 120x214 (25,680 x 25,680 pixels, D = 100) compiles to
    <= 512 MB of temporaries + output (the full distance matrix alone would be 2.6 GB); local
    matching (k = 15) stays far below the [H, W, 961, D] float32 tensor (9.9 GB)."""
    b, h, w, d, o = 1, 120, 214, 100, 3
    emb = jax.ShapeDtypeStruct((b, h, w, d), jnp.float32)
    ref = jax.ShapeDtypeStruct((b, h * w, d), jnp.float32)
    labels = jax.ShapeDtypeStruct((b, h * w), jnp.int32)
    glob = jax.jit(matching.global_matching, static_argnums=3).lower(emb, ref, labels, o)
    mem = glob.compile().memory_analysis()
    glob_mb = (mem.temp_size_in_bytes + mem.output_size_in_bytes) / 2**20
    local_labels = jax.ShapeDtypeStruct((b, h, w), jnp.int32)
    loc = jax.jit(matching.local_matching, static_argnums=3).lower(emb, emb, local_labels, o)
    mem = loc.compile().memory_analysis()
    local_mb = (mem.temp_size_in_bytes + mem.output_size_in_bytes) / 2**20
    # Training differentiates local matching at this size: each tile is rematerialised, so the
    # backward pass stores no distances either.
    grad = jax.grad(lambda q, p, lab: matching.local_matching(q, p, lab, o).sum(), argnums=(0, 1))
    mem = jax.jit(grad).lower(emb, emb, local_labels).compile().memory_analysis()
    grad_mb = (mem.temp_size_in_bytes + mem.output_size_in_bytes) / 2**20
    print(f"compiled temp + output: global {glob_mb:.1f} MB, local {local_mb:.1f} MB, ", end="")
    print(f"local gradient {grad_mb:.1f} MB")
    assert glob_mb <= 512
    assert local_mb < 1024 and local_mb < h * w * 961 * d * 4 / 2**20 / 10
    assert grad_mb < 1024
