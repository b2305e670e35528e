import torch
from torch import nn

from metaloop.rl.trpo import trpo_step


def quadratic_problem(loss_sign=1.0):
    torch.manual_seed(0)
    n = 5
    m = torch.randn(n, n, dtype=torch.float64)
    a = m @ m.T + n * torch.eye(n, dtype=torch.float64)
    g = torch.randn(n, dtype=torch.float64)
    x = nn.Parameter(torch.zeros(n, dtype=torch.float64))

    def evaluate():
        with torch.no_grad():
            return (loss_sign * g @ x).item(), (0.5 * x @ a @ x).item()

    return a, g, x, evaluate


def test_step_is_the_scaled_natural_gradient_inside_the_trust_region():
    a, g, x, evaluate = quadratic_problem()
    info = trpo_step({"x": x}, {"x": g}, lambda v: {"x": a @ v["x"]}, evaluate, 0.0, max_kl=0.01,
                     cg_steps=10, damping=0.0)
    natural = -torch.linalg.solve(a, g)
    full = natural * (2 * 0.01 / (natural @ a @ natural)).sqrt()
    assert info["step_fraction"] in (1.0, 0.8)  # the full step sits on the boundary (rounding may reject it)
    assert torch.allclose(x.detach(), info["step_fraction"] * full, atol=1e-10)
    assert info["kl"] <= 0.01 and info["loss_after"] < 0


def test_a_failed_line_search_keeps_the_old_parameters():
    a, g, x, evaluate = quadratic_problem(loss_sign=-1.0)  # every step along −F⁻¹g makes the loss worse
    info = trpo_step({"x": x}, {"x": g}, lambda v: {"x": a @ v["x"]}, evaluate, 0.0, max_kl=0.01)
    assert info["step_fraction"] == 0.0 and torch.equal(x.detach(), torch.zeros(5, dtype=torch.float64))
