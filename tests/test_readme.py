"""The README's API example runs as printed and meta-learns."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_adapts():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 17
    torch.manual_seed(0)
    scope = {}
    exec(compile(code, str(README), "exec"), scope)
    prediction, new = scope["prediction"], scope["new"]
    assert prediction.shape == (5, 50, 1)
    adapted_mse = (prediction - new.query_y).square().mean()
    unadapted_mse = (scope["model"](new.query_x) - new.query_y).square().mean()
    assert adapted_mse < unadapted_mse
