"""Checks for the notebooks' exercises. Each compares your function with intermoe_min's (or intermoe_tools') on
random inputs and, when they differ, says in words what is wrong. They raise AssertionError; a function that still
raises NotImplementedError gets "not done yet".

    python notebooks/make_student_version.py    # the notebooks with every solution replaced by a stub
"""
import numpy as np
import torch

import intermoe_min as im
from intermoe_tools import evaluation as ev

TODO = "not done yet: replace `raise NotImplementedError` with your code, then run this cell again"


def _call(fn, *args):
    try:
        return fn(*args)
    except NotImplementedError:
        raise AssertionError(TODO) from None


def _close(a, b, tol=1e-5) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, atol=tol, rtol=tol)


def check_rot6d_to_matrix(fn) -> str:
    """fn: (..., 6) 6D rotations in our layout [R00, R01, R10, R11, R20, R21] -> (..., 3, 3)."""
    rng = np.random.default_rng(0)
    d6 = rng.normal(size=(50, 6))
    ref, got = im.matrix_from_rot6d(d6), _call(fn, d6.copy())
    assert np.shape(got) == (50, 3, 3), f"expected matrices of shape (50, 3, 3), got {np.shape(got)}"
    eye = np.einsum("nji,njk->nik", got, got)
    assert np.allclose(eye, np.eye(3), atol=1e-6), (
        "the columns are not orthonormal: normalise the first stored column, take the part of the second "
        "across it (Gram-Schmidt) and normalise that, then the third is their cross product")
    assert np.allclose(np.linalg.det(got), 1.0, atol=1e-6), "a rotation has determinant +1: is the cross product x cross y?"
    assert _close(got, ref), ("the matrix is a rotation, but not the one stored: the 6D vector holds the first two "
                              "*columns*, read row by row (d6 reshaped to (3, 2))")
    return "correct: your map agrees with im.matrix_from_rot6d on 50 random rotations"


def check_causal_conv(fn) -> str:
    """fn(x (B, C, T), weight (C_out, C, k), bias (C_out,)) -> (B, C_out, T): a causal convolution in time."""
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 3, 12, generator=g), torch.randn(4, 3, 3, generator=g), torch.randn(4, generator=g)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (2, 0)), w, b)
    got = _call(fn, x.clone(), w, b)
    assert tuple(got.shape) == tuple(ref.shape), (
        f"expected shape {tuple(ref.shape)} (as many frames out as in), got {tuple(got.shape)}: pad k - 1 frames")
    later = x.clone()
    later[..., 6:] += 1.0  # change only frames 6 and after
    leak = (_call(fn, later, w, b)[..., :6] - got[..., :6]).abs().max().item()
    assert leak < 1e-6, ("output frames before 6 changed when only frames 6 and later changed: your convolution looks "
                         "into the future. All the k - 1 padding frames go in front, none after")
    assert torch.allclose(got, ref, atol=1e-5), "causal, but not the same numbers: is the padding zeros, k - 1 in front?"
    return "correct: causal, and equal to the reference on random inputs"


def check_ddim_cfg_step(fn) -> str:
    """fn(x_t, x0_cond, x0_uncond, s, ab_t, ab_prev) -> x at the earlier level (DDIM, eta = 0, with guidance)."""
    g = torch.Generator().manual_seed(0)
    x_t, c, u = (torch.randn(2, 2, 5, 8, generator=g) for _ in range(3))
    diff = im.Diffusion(1000)
    t, t_prev, s = 600, 500, 3.5
    ab_t, ab_prev = float(diff.sqrt_ab[t] ** 2), float(diff.sqrt_ab[t_prev] ** 2)
    ref = diff.ddim_step(x_t, s * c + (1 - s) * u, t, t_prev)
    got = _call(fn, x_t, c, u, s, ab_t, ab_prev)
    other = diff.ddim_step(x_t, c + s * (c - u), t, t_prev)
    assert not torch.allclose(got, other, atol=1e-5), ("your guidance is cond + s (cond - uncond); this project, like "
                                                       "InterGen, uses s * cond + (1 - s) * uncond")
    assert torch.allclose(got, ref, atol=1e-4), (
        "not the reference step: guide x0 first, then eps = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t) and "
        "x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps (ab values are alpha-bar, not their square roots)")
    return "correct: one guided DDIM step, equal to im.Diffusion.ddim_step"


def check_router_fusion(fn) -> str:
    """fn(h (N, T, d), emb (N, d_cond), W_m (E, d), W_t (E, d_cond), alpha) -> R_comb (N, T, E)."""
    torch.manual_seed(0)
    router = im.SynergisticRouter(16, 12, 4)
    h, emb = torch.randn(3, 7, 16), torch.randn(3, 12)
    with torch.no_grad():
        ref = router(h, emb)
        got = _call(fn, h, emb, router.w_motion.weight, router.w_text.weight, 0.5)
        assert tuple(got.shape) == (3, 7, 4), (f"expected (N, T, E) = (3, 7, 4), got {tuple(got.shape)}: the text "
                                               "logits (N, E) must be broadcast over the frames")
        swapped = 0.5 * torch.einsum("ntd,ed->nte", h, router.w_motion.weight)
        assert not torch.allclose(got, swapped, atol=1e-6), "the text half is missing: R_text = emb W_t^T joins in"
        alpha_odd = _call(fn, h, emb, router.w_motion.weight, router.w_text.weight, 0.8)
        r_m = torch.einsum("ntd,ed->nte", h, router.w_motion.weight)
        r_t = (emb @ router.w_text.weight.T)[:, None]
        assert torch.allclose(alpha_odd, 0.8 * r_m + 0.2 * r_t, atol=1e-5), (
            "with alpha = 0.8 the motion logits should weigh 0.8 and the text ones 0.2: is alpha on the right side?")
        assert torch.allclose(got, ref, atol=1e-5), "not the router's R_comb"
    return "correct: R_comb = alpha h W_m^T + (1 - alpha) emb W_t^T, as im.SynergisticRouter computes it"


def check_dts_gate(fn) -> str:
    """fn(logits (N, T, E), bias (E,), mask (N, T) bool) -> selection (N, T, E) bool."""
    g = torch.Generator().manual_seed(0)
    logits, bias = 2 * torch.randn(4, 9, 8, generator=g), -torch.rand(8, generator=g) * 0.9 - 0.05
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[1, 5:] = False
    ref = (torch.sigmoid(logits) + bias > 0) & mask[..., None]
    got = _call(fn, logits, bias, mask)
    assert tuple(got.shape) == tuple(ref.shape) and got.dtype == torch.bool, (
        f"expected a bool selection of shape {tuple(ref.shape)}, got {got.dtype} {tuple(got.shape)}")
    extra = int((got & ~ref).sum())
    if extra or int((ref & ~got).sum()):
        if torch.equal(got, (torch.sigmoid(logits + bias) > 0.5) & mask[..., None]) or \
                torch.equal(got, (torch.sigmoid(logits + bias) > 0) & mask[..., None]):
            raise AssertionError(f"your gate selects {extra} tokens the reference does not: is the bias added "
                                 f"after the sigmoid? M = sigmoid(R) + b, select where M > 0")
        if bool(got[1, 5:].any()):
            raise AssertionError("padding frames select experts: and the selection with the mask")
        raise AssertionError(f"{extra} selections the reference does not make, {int((ref & ~got).sum())} missing")
    return "correct: expert e takes token s exactly where sigmoid(R[s, e]) + b_e > 0"


def check_bias_rule(fn) -> str:
    """fn(bias (E,), counts (E,), S, capacity, step) -> new bias (E,)."""
    bias = torch.tensor([-0.5, -0.5, -0.0002, -0.9999, -0.3])
    counts, S = torch.tensor([30, 10, 0, 40, 20]), 100  # the third and fourth would leave (-1, 0) unclamped
    E = len(bias)
    ref = (bias - 0.001 * torch.sign(counts * E - S)).clamp(-1 + im.BIAS_EPS, -im.BIAS_EPS)
    got = _call(fn, bias.clone(), counts, S, 1.0, 0.001)
    wrong_way = (bias + 0.001 * torch.sign(counts * E - S)).clamp(-1 + im.BIAS_EPS, -im.BIAS_EPS)
    assert not torch.allclose(got, wrong_way), ("an expert over its share (count > k) must become *harder* to select: "
                                                "b_e -= step * sign(count_e - k)")
    unclamped = bias - 0.001 * torch.sign(counts * E - S)
    assert not (torch.allclose(got, unclamped) and not torch.allclose(got, ref)), (
        "the paper keeps the bias strictly inside (-1, 0): clamp it to [-1 + 1e-4, -1e-4]")
    assert torch.allclose(got, ref), "not the bias rule: k = capacity * S / E, b_e -= step * sign(count_e - k), clamp"
    ref2 = (bias - 0.01 * torch.sign(counts * E - 2.0 * S)).clamp(-1 + im.BIAS_EPS, -im.BIAS_EPS)
    assert torch.allclose(_call(fn, bias.clone(), counts, S, 2.0, 0.01), ref2), (
        "right for capacity 1 and step 0.001 only: use the capacity and step you are given (k = capacity * S / E)")
    return "correct: the bias rule"


def check_frechet(fn) -> str:
    """fn(a (N, D), b (M, D)) -> the Frechet distance between Gaussians fitted to the two sets."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 6)), rng.normal(size=(300, 6)) @ np.diag([1, 2, 1, 1, 0.5, 1]) + 0.3
    ref, got = ev.frechet_distance(a, b), float(_call(fn, a, b))
    no_sqrt = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(np.cov(a.T) + np.cov(b.T) - 2 * np.cov(a.T) @ np.cov(b.T)))
    assert abs(got - no_sqrt) > 1e-6, "the cross term is 2 tr((S1 S2)^(1/2)): take the matrix square root"
    assert abs(float(_call(fn, a, a))) < 1e-6, "the distance of a set from itself should be 0"
    assert abs(got - ref) < 1e-4 * max(1.0, abs(ref)), (
        f"got {got:.5f}, the reference {ref:.5f}: |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), covariances with N - 1")
    return "correct: your Frechet distance equals ev.frechet_distance"


def check_partner_rows(fn) -> str:
    """fn(h (2B, T, d) stacked [person a of samples 0..B-1; person b of samples 0..B-1]) -> each row's partner."""
    h = torch.arange(6 * 2 * 3, dtype=torch.float32).reshape(6, 2, 3)  # B = 3
    ref = torch.cat([h[3:], h[:3]])
    got = _call(fn, h.clone())
    assert tuple(got.shape) == tuple(h.shape), f"expected the same shape as h, {tuple(h.shape)}, got {tuple(got.shape)}"
    assert not torch.equal(got, h.flip(0)), ("flipping the batch also reverses the order of the samples: row 0 (person "
                                             "a of sample 0) must get row B (person b of sample 0)")
    assert torch.equal(got, ref), "row i must hold its partner: person a of sample j <-> person b of sample j"
    return "correct: other = cat([h[B:], h[:B]]), as CooperativeDenoiser.forward builds it"
