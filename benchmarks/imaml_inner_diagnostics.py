"""Is iMAML's implicit meta-gradient right on a run's checkpoint? The measurements behind
docs/results/omniglot.md ("why the GD inner solver does not work here").

On ``--tasks`` training tasks of RUN_DIR's last checkpoint, with the run's inner loop (or
``--inner-lr`` / ``--inner-steps``):

- the support-loss Hessian's extreme eigenvalues at φ, per task (power iteration, then power
  iteration shifted by the largest |eigenvalue|; bounds, not exact values). Below −λ the proximal
  objective Φ = L̂ + λ/2‖φ − θ‖² is not convex and the paper's matrix I + H/λ is indefinite;
- ‖∇Φ‖ at θ and at φ: how far the inner loop is from solving the inner problem;
- the cosine and norm ratio of each CG matrix's implicit meta-gradient (and of the first-order
  gradient) against the true gradient of the same query loss through the unrolled inner steps.

    python benchmarks/imaml_inner_diagnostics.py runs/imaml-5w1s-code
    python benchmarks/imaml_inner_diagnostics.py runs/imaml-5w1s-code --tasks 4 --inner-lr 0.02 --inner-steps 250
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metaloop import build, checkpoint
from metaloop.config import Config
from metaloop.functional import Params, detach, expand_tasks
from metaloop.learners.sgd import task_gradients
from metaloop.meta.imaml import CG_MATRICES, hessian_vector_product
from metaloop.train import checkpoint_path


def per_task_dot(a: Params, b: Params) -> torch.Tensor:
    return sum((a[k] * b[k]).flatten(1).sum(1) for k in a)


def extreme_eigenvalues(hvp, like: Params, iters: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """(largest-magnitude, smallest) eigenvalue estimates per task of the operator ``hvp``."""
    def power(shift: torch.Tensor) -> torch.Tensor:
        v = {k: torch.randn_like(p) for k, p in like.items()}
        for _ in range(iters):
            norm = per_task_dot(v, v).sqrt()
            v = {k: x / norm.view(-1, *[1] * (x.dim() - 1)) for k, x in v.items()}
            hv = hvp(v)
            hv = {k: hv[k] - shift.view(-1, *[1] * (hv[k].dim() - 1)) * v[k] for k in v}
            rayleigh = per_task_dot(v, hv)
            v = hv
        return rayleigh + shift

    top = power(torch.zeros(()))
    return top, power(1.05 * top.abs())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--inner-lr", type=float)
    parser.add_argument("--inner-steps", type=int)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = Config.load(args.run_dir / "config.yaml")
    state = checkpoint.load(checkpoint_path(args.run_dir))
    learner = build.learner(cfg, build.model(cfg))
    learner.load_state_dict(state["learner"])
    learner.inner_solver = "gd"
    learner.inner_lr = args.inner_lr or learner.inner_lr
    learner.inner_steps = args.inner_steps or learner.inner_steps
    tasks = build.task_distribution(cfg).sample(args.tasks, cfg.task.support, cfg.task.query,
                                                torch.Generator().manual_seed(args.seed))
    print(f"{args.run_dir}, meta-step {state['step']}, {args.tasks} tasks, λ {learner.lam}, "
          f"{learner.inner_steps} GD steps of {learner.inner_lr}")

    theta = learner.meta_params()
    unrolled = expand_tasks(theta, tasks.num_tasks)
    trajectory = learner.inner_trajectory(unrolled, tasks.support_x, tasks.support_y, create_graph=True)
    for _ in range(learner.inner_steps):
        unrolled = next(trajectory)
    true = torch.autograd.grad(learner.query_losses(unrolled, tasks).sum(), tuple(theta.values()))
    true = torch.cat([g.flatten() for g in true]) / tasks.num_tasks

    phi = learner.solve_inner(tasks)
    support = task_gradients(learner.forward_tasks, learner.loss_fn, phi, tasks.support_x, tasks.support_y,
                             create_graph=True)
    top, low = extreme_eigenvalues(hessian_vector_product(support, phi), phi)
    fmt = lambda t: " ".join(f"{x:7.2f}" for x in t.tolist())
    print(f"Hessian, largest |eigenvalue| per task  {fmt(top)}")
    print(f"Hessian, smallest eigenvalue per task   {fmt(low)}")

    anchor = expand_tasks(theta, tasks.num_tasks)

    def proximal_gradient_norm(params: Params) -> torch.Tensor:
        params = detach(params, requires_grad=True)
        grads = task_gradients(learner.forward_tasks, learner.loss_fn, params, tasks.support_x, tasks.support_y)
        return torch.cat([(g + learner.lam * (params[k] - anchor[k].detach())).flatten(1)
                          for k, g in zip(params, grads)], 1).norm(dim=1)

    print(f"‖∇Φ‖ at θ per task                     {fmt(proximal_gradient_norm(anchor))}")
    print(f"‖∇Φ‖ at φ per task                     {fmt(proximal_gradient_norm(phi))}")

    cosine = lambda a: float(a @ true / (a.norm() * true.norm()))
    ratio = lambda a: float(a.norm() / true.norm())
    first_order = torch.autograd.grad(learner.query_losses(phi, tasks).sum(), tuple(phi.values()))
    first_order = torch.cat([g.mean(0).flatten() for g in first_order])
    print(f"against the gradient through the unrolled inner steps:\n{'':24s} cosine  norm ratio")
    print(f"{'first-order':24s} {cosine(first_order):6.3f}  {ratio(first_order):6.3f}")
    for matrix in CG_MATRICES:
        learner.cg_matrix = matrix
        grads, _ = learner.implicit_gradient(phi, tasks)
        g = torch.cat([grads[k].mean(0).flatten() for k in theta])
        print(f"{'implicit, ' + matrix:24s} {cosine(g):6.3f}  {ratio(g):6.3f}")


if __name__ == "__main__":
    main()
