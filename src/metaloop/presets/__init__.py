"""Named presets: one per paper result. ``get_preset(name)`` returns a fresh, validated Config."""

from __future__ import annotations

import difflib

from metaloop.config import Config, set_value
from metaloop.errors import ConfigError
from metaloop.presets import dqn, dqn_meta, mgrl, omniglot, rl, sinusoid

PRESETS: dict[str, tuple[str, dict]] = {**sinusoid.PRESETS, **omniglot.PRESETS, **rl.PRESETS, **dqn.PRESETS,
                                      **mgrl.PRESETS, **dqn_meta.PRESETS}


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `metaloop presets` to list them"
        raise ConfigError(f"unknown preset {name!r}{hint}")
    description, overrides = PRESETS[name]
    config = Config(preset=name, description=description)
    for key, value in overrides.items():
        set_value(config, key, value)
    return config.validate()
