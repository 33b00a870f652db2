"""Training and fine-tuning the DEVC networks end to end (``vsexcolor train``).

``train(load_config("run.toml"))`` is the Python API; see :mod:`vsexcolor.train.trainer` for
what a run writes and :mod:`vsexcolor.train.config` for the settings.
"""
from .config import ConfigError, TrainConfig, load_config
from .data import DataError
from .checkpointing import CheckpointError
from .trainer import train

__all__ = ["CheckpointError", "ConfigError", "DataError", "TrainConfig", "load_config", "train"]
