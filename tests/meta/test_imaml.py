"""iMAML (metaloop/meta/imaml.py): batched CG, and implicit gradients against closed forms.

With a linear model the support loss L̂(φ) = (1/k) ‖Zφ − y‖² is quadratic, with Hessian
H = (2/k) ZᵀZ and c = (2/k) Zᵀy, so the proximal inner problem has the closed form

    φ*(θ) = (H + λI)⁻¹ (λθ + c),    dL_test(φ*)/dθ = (I + H/λ)⁻¹ ∇L_test(φ*),

which the tests differentiate directly, without Lemma 1.
"""

from __future__ import annotations

import pytest
import torch

import metaloop as ml
from metaloop.meta.imaml import conjugate_gradient, gauss_newton_vector_product

LAM = 2.0


# --- conjugate gradient -------------------------------------------------------------------------

SHAPES = {"a": (2, 3), "b": (2,)}  # two parameter tensors, n = 8 unknowns per task
N = 8


def as_params(flat: torch.Tensor) -> dict:
    """(tasks, n) -> task-batched dict with :data:`SHAPES`."""
    a, b = flat.split([6, 2], dim=1)
    return {"a": a.reshape(-1, *SHAPES["a"]), "b": b}


def as_flat(params: dict) -> torch.Tensor:
    return torch.cat([params["a"].flatten(1), params["b"]], dim=1)


def matrix_operator(a: torch.Tensor):
    """A task-batched v ↦ A_i v_i for matrices ``a: (tasks, n, n)``."""
    return lambda v: as_params(torch.bmm(a, as_flat(v).unsqueeze(2)).squeeze(2))


def random_spd(tasks: int, generator: torch.Generator) -> torch.Tensor:
    m = torch.randn(tasks, N, N, generator=generator, dtype=torch.float64)
    return m @ m.transpose(1, 2) + 0.5 * torch.eye(N, dtype=torch.float64)


def test_cg_solves_batched_spd_system_in_n_steps():
    generator = torch.Generator().manual_seed(0)
    a = random_spd(5, generator)
    a[1] = 2 * torch.eye(N)  # converges after one step, then must idle without NaN
    b = torch.randn(5, N, generator=generator, dtype=torch.float64)
    b[2] = 0  # already solved: x = 0

    x = as_flat(conjugate_gradient(matrix_operator(a), as_params(b), steps=N))
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)

    # Fewer steps than unknowns leave a residual, so the step count above is what solved it.
    partial = as_flat(conjugate_gradient(matrix_operator(a), as_params(b), steps=N // 2))
    assert (partial - torch.linalg.solve(a, b))[[0, 3, 4]].abs().max() > 1e-4


def test_cg_one_step_is_steepest_descent():
    generator = torch.Generator().manual_seed(1)
    a, b = random_spd(3, generator), torch.randn(3, N, generator=generator, dtype=torch.float64)
    x = as_flat(conjugate_gradient(matrix_operator(a), as_params(b), steps=1))
    ab = torch.bmm(a, b.unsqueeze(2)).squeeze(2)
    alpha = (b * b).sum(1) / (b * ab).sum(1)
    torch.testing.assert_close(x, alpha[:, None] * b)


def test_cg_product_is_a_times_the_partial_solution():
    generator = torch.Generator().manual_seed(3)
    a = random_spd(4, generator)
    b = torch.randn(4, N, generator=generator, dtype=torch.float64)
    b[2] = 0  # an idle task keeps A x = 0
    x, ax = conjugate_gradient(matrix_operator(a), as_params(b), steps=N // 2, with_product=True)
    x, ax = as_flat(x), as_flat(ax)
    torch.testing.assert_close(ax, torch.bmm(a, x.unsqueeze(2)).squeeze(2), rtol=1e-10, atol=1e-12)
    assert (ax - b).abs().max() > 1e-4  # a partial solve, so A x is not just b


def test_cg_indefinite_system_stays_finite_and_spares_other_tasks():
    generator = torch.Generator().manual_seed(2)
    a = random_spd(4, generator)
    a[0] = torch.diag(torch.tensor([1.0, -1.0] * (N // 2), dtype=torch.float64))  # pᵀAp = 0 along b
    a[1] = torch.diag(torch.tensor([2.0, -1.0] * (N // 2), dtype=torch.float64))  # turns negative at step 2
    a[2] = -random_spd(1, generator)[0]  # negative definite
    b = torch.ones(4, N, dtype=torch.float64)

    x = as_flat(conjugate_gradient(matrix_operator(a), as_params(b), steps=2 * N))
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x[3], torch.linalg.solve(a[3], b[3]), rtol=1e-8, atol=1e-10)


# --- implicit gradient on a quadratic inner problem ---------------------------------------------

def linear_regression_tasks(tasks=3, support=6, query=8, dim=3, seed=0) -> ml.TaskBatch:
    generator = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)
    w, b = draw(tasks, dim, 1), draw(tasks, 1, 1)
    sx, qx = draw(tasks, support, dim), draw(tasks, query, dim)
    return ml.TaskBatch(sx, sx @ w + b + 0.1 * draw(tasks, support, 1), qx, qx @ w + b + 0.1 * draw(tasks, query, 1))


def linear_model(dim=3, seed=1) -> ml.MLP:
    model = ml.MLP(dim, [], 1).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return model


def closed_form_meta_gradients(model: ml.MLP, tasks: ml.TaskBatch, lam: float) -> torch.Tensor:
    """d L_test,i(φ*_i(θ)) / dθ for every task, by autograd through the closed-form φ*: (tasks, dim + 1)."""
    w, b = model.layers[0].weight.detach(), model.layers[0].bias.detach()
    theta = torch.cat([w.flatten(), b]).requires_grad_()
    ones = lambda x: torch.ones(*x.shape[:2], 1, dtype=x.dtype)
    zs, zq = torch.cat([tasks.support_x, ones(tasks.support_x)], 2), torch.cat([tasks.query_x, ones(tasks.query_x)], 2)
    k = zs.shape[1]
    h = 2 / k * zs.transpose(1, 2) @ zs
    c = 2 / k * zs.transpose(1, 2) @ tasks.support_y
    eye = torch.eye(theta.numel(), dtype=torch.float64)
    grads = []
    for i in range(tasks.num_tasks):
        phi = torch.linalg.solve(h[i] + lam * eye, lam * theta[:, None] + c[i])
        test_loss = (zq[i] @ phi - tasks.query_y[i]).square().mean()
        grads.append(torch.autograd.grad(test_loss, theta)[0])
    return torch.stack(grads)


def implicit_meta_gradients(learner: ml.IMAML, tasks: ml.TaskBatch) -> torch.Tensor:
    """iMAML's per-task meta-gradients, flattened like :func:`closed_form_meta_gradients`: (tasks, dim + 1)."""
    grads, _ = learner.implicit_gradient(learner.solve_inner(tasks), tasks)
    return torch.cat([grads["layers.0.weight"].flatten(1), grads["layers.0.bias"]], dim=1)


def test_implicit_gradient_equals_closed_form_on_quadratic():
    tasks, model = linear_regression_tasks(), linear_model()
    expected = closed_form_meta_gradients(model, tasks, LAM)
    # H + λI has eigenvalues in [2, ~12] here: steps of 0.05 contract by ≤ 0.9, 400 of them to ~1e-18.
    learner = ml.IMAML(model, inner_lr=0.05, inner_steps=400, lam=LAM, cg_steps=4)

    torch.testing.assert_close(implicit_meta_gradients(learner, tasks), expected, rtol=1e-8, atol=1e-10)
    learner.meta_backward(tasks)
    torch.testing.assert_close(model.layers[0].weight.grad.flatten(), expected[:, :3].mean(0), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(model.layers[0].bias.grad, expected[:, 3:].mean(0), rtol=1e-8, atol=1e-10)


def test_code_cg_matrix_solves_the_reference_codes_damped_system():
    """cg_matrix='code': (2I + H/(λ + 10)) x = ∇L_query(φ), checked against an explicit solve; it is
    6× the paper-form solution with δ = 22 at λ = 2 (the same matrix up to scale)."""
    tasks, model = linear_regression_tasks(), linear_model()
    learner = ml.IMAML(model, inner_lr=0.05, inner_steps=400, lam=LAM, cg_steps=4, cg_matrix="code")
    phi = learner.solve_inner(tasks)
    got, _ = learner.implicit_gradient(phi, tasks)
    got = torch.cat([got["layers.0.weight"].flatten(1), got["layers.0.bias"]], dim=1)

    ones = lambda x: torch.ones(*x.shape[:2], 1, dtype=x.dtype)
    zs, zq = torch.cat([tasks.support_x, ones(tasks.support_x)], 2), torch.cat([tasks.query_x, ones(tasks.query_x)], 2)
    flat_phi = torch.cat([phi["layers.0.weight"].flatten(1), phi["layers.0.bias"]], dim=1)[..., None]
    hessian = 2 / zs.shape[1] * zs.transpose(1, 2) @ zs
    g_query = (2 / zq.shape[1] * zq.transpose(1, 2) @ (zq @ flat_phi - tasks.query_y)).squeeze(-1)
    eye = torch.eye(hessian.shape[-1], dtype=torch.float64)
    expected = torch.linalg.solve(2 * eye + hessian / (LAM + 10), g_query)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)

    paper = ml.IMAML(model, inner_lr=0.05, inner_steps=400, lam=LAM, cg_steps=4, damping=22.0)
    torch.testing.assert_close(implicit_meta_gradients(paper, tasks) * 6, got, rtol=1e-8, atol=1e-10)


def test_gd_pullback_runs_plain_gd_then_one_proximal_step():
    """inner_solver='gd_pullback' (imaml_dev): φ_{t+1} = (I − αH) φ_t + α c from θ for k steps, then
    φ ← φ − αλ (φ − θ), in closed form with the support Hessian H and c = (2/k) Zᵀy; adaptation at test
    time is the plain GD part alone."""
    tasks, model = linear_regression_tasks(), linear_model()
    alpha, steps = 0.05, 7
    learner = ml.IMAML(model, inner_lr=alpha, inner_steps=steps, lam=LAM, cg_steps=4, inner_solver="gd_pullback")
    flat = lambda p: torch.cat([p["layers.0.weight"].flatten(1), p["layers.0.bias"]], dim=1)
    zs = torch.cat([tasks.support_x, torch.ones(*tasks.support_x.shape[:2], 1, dtype=torch.float64)], 2)
    hessian = 2 / zs.shape[1] * zs.transpose(1, 2) @ zs
    c = (2 / zs.shape[1] * zs.transpose(1, 2) @ tasks.support_y).squeeze(-1)
    theta = torch.cat([model.layers[0].weight.detach().flatten(), model.layers[0].bias.detach()]).expand(3, -1)
    phi = theta.clone()
    eye = torch.eye(hessian.shape[-1], dtype=torch.float64)
    for _ in range(steps):
        phi = ((eye - alpha * hessian) @ phi[..., None]).squeeze(-1) + alpha * c
    torch.testing.assert_close(flat(learner.adapt(tasks.support_x, tasks.support_y, steps)), phi, rtol=1e-10, atol=1e-12)
    expected = phi - alpha * LAM * (phi - theta)
    torch.testing.assert_close(flat(learner.solve_inner(tasks)), expected, rtol=1e-10, atol=1e-12)


def test_gauss_newton_cg_matrix_is_the_papers_on_a_linear_model_and_positive_definite_on_an_mlp(make_model, tasks):
    # squared error of a linear model: G = H, so the systems agree
    quad, model = linear_regression_tasks(), linear_model()
    paper = ml.IMAML(model, inner_lr=0.05, inner_steps=400, lam=LAM, cg_steps=4)
    gn = ml.IMAML(model, inner_lr=0.05, inner_steps=400, lam=LAM, cg_steps=4, cg_matrix="gauss_newton")
    torch.testing.assert_close(implicit_meta_gradients(gn, quad), implicit_meta_gradients(paper, quad),
                               rtol=1e-8, atol=1e-10)
    # an MLP: G is positive semi-definite and the solution differs from the paper's
    mlp = make_model("mlp")
    learner = ml.IMAML(mlp, inner_lr=0.02, inner_steps=5, lam=LAM, cg_steps=3, cg_matrix="gauss_newton")
    phi = learner.solve_inner(tasks)
    gvp = gauss_newton_vector_product(learner.forward_tasks, learner.loss_fn, phi, tasks.support_x, tasks.support_y)
    for seed in range(5):
        torch.manual_seed(seed)
        v = {k: torch.randn_like(p) for k, p in phi.items()}
        gv = gvp(v)
        assert (sum((v[k] * gv[k]).flatten(1).sum(1) for k in v) >= -1e-9).all()  # vᵀGv ≥ 0 per task
    g_paper, _ = ml.IMAML(mlp, inner_lr=0.02, inner_steps=5, lam=LAM, cg_steps=3).implicit_gradient(phi, tasks)
    g_gn, _ = learner.implicit_gradient(phi, tasks)
    assert not all(torch.allclose(g_paper[k], g_gn[k]) for k in phi)


def test_hessian_free_inner_solver_solves_the_quadratic_proximal_problem_in_one_step():
    # On a linear model the Gauss-Newton matrix is the Hessian, so one Gauss-Newton step with
    # n = dim + 1 CG iterations is an exact Newton step onto φ*, and the gradient is the closed form.
    tasks, model = linear_regression_tasks(), linear_model()
    learner = ml.IMAML(model, inner_lr=1.0, inner_steps=1, lam=LAM, cg_steps=4, inner_solver="hessian_free")
    torch.testing.assert_close(implicit_meta_gradients(learner, tasks), closed_form_meta_gradients(model, tasks, LAM),
                               rtol=1e-8, atol=1e-10)


def test_gauss_newton_product_is_positive_semidefinite_on_an_mlp(make_model, tasks, task_mse):
    from metaloop.functional import expand_tasks
    from metaloop.meta.imaml import gauss_newton_vector_product

    model = make_model("mlp", hidden=6)
    learner = ml.IMAML(model)
    params = {k: v.detach().clone().requires_grad_() for k, v in expand_tasks(learner.meta_params(), 3).items()}
    gvp = gauss_newton_vector_product(learner.forward_tasks, learner.loss_fn, params, tasks.support_x, tasks.support_y)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        v = {k: torch.randn(p.shape, generator=generator, dtype=p.dtype) for k, p in params.items()}
        curvature = sum((v[k] * g).flatten(1).sum(1) for k, g in gvp(v).items())
        assert (curvature >= -1e-12).all()


def test_implicit_gradient_converges_with_inner_and_cg_steps_on_quadratic():
    tasks, model = linear_regression_tasks(seed=3), linear_model(seed=4)
    expected = closed_form_meta_gradients(model, tasks, LAM)
    errors = []
    for inner_steps, cg_steps in [(1, 1), (5, 1), (20, 2), (60, 3), (400, 4)]:
        learner = ml.IMAML(model, inner_lr=0.05, inner_steps=inner_steps, lam=LAM, cg_steps=cg_steps)
        errors.append((implicit_meta_gradients(learner, tasks) - expected).norm().item())
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-9 * expected.norm().item(), errors


# --- implicit gradient on a non-quadratic inner problem -----------------------------------------

def unrolled_proximal_gradient(model, tasks, inner_lr, inner_steps, lam, task_mse) -> torch.Tensor:
    """d L_test(φ_K(θ)) / dθ by backpropagating through K proximal gradient steps; per task, flattened.

    As K grows, φ_K → φ*(θ) and this converges to the exact gradient of the proximal problem.
    """
    theta = dict(model.named_parameters())
    grads = []
    for i in range(tasks.num_tasks):
        phi = dict(theta)
        for _ in range(inner_steps):
            g = torch.autograd.grad(task_mse(model, phi, tasks.support_x[i], tasks.support_y[i]),
                                    tuple(phi.values()), create_graph=True)
            phi = {k: v - inner_lr * (gk + lam * (v - theta[k])) for (k, v), gk in zip(phi.items(), g)}
        loss = task_mse(model, phi, tasks.query_x[i], tasks.query_y[i])
        grads.append(torch.cat([d.flatten() for d in torch.autograd.grad(loss, tuple(theta.values()))]))
    return torch.stack(grads)


def test_implicit_gradient_approaches_exact_proximal_gradient_on_mlp(make_model, tasks, task_mse):
    lam, inner_lr = 5.0, 0.02
    model = make_model("mlp")
    expected = unrolled_proximal_gradient(model, tasks, inner_lr, 500, lam, task_mse)
    errors = []
    for inner_steps, cg_steps in [(1, 1), (10, 2), (50, 5), (500, 13)]:
        learner = ml.IMAML(model, inner_lr=inner_lr, inner_steps=inner_steps, lam=lam, cg_steps=cg_steps)
        grads, _ = learner.implicit_gradient(learner.solve_inner(tasks), tasks)
        errors.append((torch.cat([g.flatten(1) for g in grads.values()], 1) - expected).norm().item())
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6 * expected.norm().item(), errors


# --- batching -----------------------------------------------------------------------------------

def per_task_imaml(model, tasks, learner: ml.IMAML, task_mse):
    """Reference iMAML: per task, unbatched proximal GD, an explicit Hessian, and textbook CG.

    Returns the mean query loss and the mean meta-gradient (flattened).
    """
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])

    def unflatten(v):
        return dict(zip(names, (t.view(s) for t, s in zip(v.split([s.numel() for s in shapes]), shapes))))

    losses, grads = [], []
    for i in range(tasks.num_tasks):
        sx, sy, qx, qy = tasks.support_x[i], tasks.support_y[i], tasks.query_x[i], tasks.query_y[i]
        support_loss = lambda v: task_mse(model, unflatten(v), sx, sy)
        query_loss = lambda v: task_mse(model, unflatten(v), qx, qy)
        phi = theta.clone()
        for _ in range(learner.inner_steps):
            g = torch.autograd.functional.jacobian(support_loss, phi)
            phi = phi - learner.inner_lr * (g + learner.lam * (phi - theta))
        hessian = torch.autograd.functional.hessian(support_loss, phi)
        eye = torch.eye(phi.numel(), dtype=phi.dtype)
        a = eye + (hessian + learner.damping * eye) / learner.lam
        assert torch.linalg.eigvalsh(a).min() > 0  # the system is SPD, so plain CG applies
        b = torch.autograd.functional.jacobian(query_loss, phi)
        x, r = torch.zeros_like(b), b.clone()
        p = r.clone()
        for _ in range(learner.cg_steps):
            alpha = (r @ r) / (p @ a @ p)
            x, r_new = x + alpha * p, r - alpha * (a @ p)
            p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
        losses.append(query_loss(phi))
        grads.append(x)
    return torch.stack(losses).mean(), torch.stack(grads).mean(0)


def test_batched_equals_per_task_loop(make_model, tasks, task_mse, model_kind):
    model = make_model(model_kind)
    learner = ml.IMAML(model, inner_lr=0.02, inner_steps=5, lam=LAM, cg_steps=3, damping=0.1)
    loss = learner.meta_backward(tasks)
    expected_loss, expected_grad = per_task_imaml(make_model(model_kind), tasks, learner, task_mse)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in model.parameters()]), expected_grad,
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kwargs, match", [({"lam": 0.0}, "lam"), ({"cg_steps": 0}, "cg_steps"),
                                           ({"inner_solver": "newton"}, "inner_solver"),
                                           ({"cg_matrix": "exact"}, "cg_matrix")])
def test_invalid_hyperparameters_rejected(make_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ml.IMAML(make_model("mlp"), **kwargs)
