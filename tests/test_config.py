import pytest
import yaml

from metaloop.config import Config, apply_overrides, known_keys
from metaloop.errors import ConfigError
from metaloop.presets import PRESETS, get_preset


def test_every_preset_resolves_and_round_trips(tmp_path):
    for name in PRESETS:
        cfg = get_preset(name)
        assert cfg.preset == name and cfg.description
        cfg.save(tmp_path / "config.yaml")
        assert Config.load(tmp_path / "config.yaml") == cfg


def test_config_yaml_holds_what_the_run_reads(tmp_path):
    cfg = get_preset("a2c-minatar-freeway")
    cfg.save(tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    saved = yaml.safe_load(text)
    assert set(saved) == {"preset", "description", "seed", "algo", "train", "eval", "mgrl"}
    assert saved["algo"] == {"name": "a2c"} and saved["train"] == {"threads": 1}
    assert "γ = 0.99" in text  # written as text, not \u escapes
    saved = yaml.safe_load(_saved(get_preset("imaml-omniglot-5w1s"), tmp_path))
    assert {"task", "model", "algo", "train", "eval"} <= set(saved) and not {"rl", "dqn", "mgrl"} & set(saved)
    cfg = apply_overrides(get_preset("dqn-cartpole"), ["rl.gamma=0.5", "model.channels=8"])  # read by no DQN run
    saved = yaml.safe_load(_saved(cfg, tmp_path))
    assert saved["rl"] == {"gamma": 0.5} and saved["model"] == {"channels": 8} and "task" not in saved
    assert Config.load(tmp_path / "config.yaml") == cfg


def _saved(cfg, tmp_path):
    cfg.save(tmp_path / "config.yaml")
    return (tmp_path / "config.yaml").read_text()


def test_sinusoid_presets_use_the_paper_settings():
    for name in ("maml-sinusoid", "fomaml-sinusoid", "metasgd-sinusoid", "reptile-sinusoid", "imaml-sinusoid"):
        cfg = get_preset(name)
        assert (cfg.task.support, cfg.train.meta_batch, cfg.model.hidden) == (10, 25, (40, 40))
        assert cfg.task.amplitude == (0.1, 5.0) and cfg.task.x_range == (-5.0, 5.0)
    maml = get_preset("maml-sinusoid")
    assert (maml.algo.inner_lr, maml.algo.inner_steps, maml.train.outer_lr, maml.train.meta_steps) == (0.01, 1, 1e-3, 5000)


def test_overrides_are_typed():
    cfg = apply_overrides(get_preset("maml-sinusoid"),
                          ["train.meta_steps=7", "algo.inner_lr=1", "model.hidden=20,30", "algo.name=fomaml"])
    assert cfg.train.meta_steps == 7 and cfg.algo.inner_lr == 1.0 and isinstance(cfg.algo.inner_lr, float)
    assert cfg.model.hidden == (20, 30) and cfg.algo.name == "fomaml"


@pytest.mark.parametrize("override, message", [
    ("train.meta_step=3", "unknown config key 'train.meta_step'; did you mean 'train.meta_steps'"),
    ("rl.kl=0.1", "did you mean 'rl.max_kl'"),
    ("nosection.x=1", "unknown config key 'nosection.x'; keys are <section>.<name>, sections: task, model"),
    ("train=3", "unknown config key 'train'; the keys of 'train' are: train.meta_steps, "),
    ("train.meta_steps=abc", "train.meta_steps must be int"),
    ("train.meta_steps=1.5", "train.meta_steps must be int"),
    ("algo.inner_lr=fast", "algo.inner_lr must be float"),
    ("algo.name=mamll", "algo.name must be one of"),
    ("task.amplitude=1,2,3", "task.amplitude takes 2 values"),
    ("train.meta_steps", "expects key=value"),
    ("algo.inner_lr=-1", "algo.inner_lr must be > 0"),
    ("algo.inner_batch=5", "exist for Reptile only"),
    ("task.train_support=-1", "task.train_support, algo.inner_batch and eval.inner_batch must be >= 0"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(get_preset("maml-sinusoid"), [override])


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean maml-sinusoid"):
        get_preset("maml-sinusiod")


def test_known_keys_are_dotted():
    keys = known_keys()
    assert "train.meta_steps" in keys and "algo.lam" in keys and "seed" in keys
