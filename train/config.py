"""The configuration of one training run, :class:`TrainConfig`, in one place.

Three things make one: ``python -m train``'s flags (:func:`train.flags.to_config`), the
named budgets of the reproduction (``bench.reproduce_cifar10.recipe_values``) and a run
directory's ``config.json`` (:meth:`TrainConfig.from_dict`); ``train.recipe`` and
``train.run`` consume it. The defaults are the authors' CIFAR-10 recipe (docs/method.md
§8): CIFARNet, T=10, Adam at 1e-3 divided by 10 every 50 epochs, 150 epochs, global batch
256, no weight decay, 45k/5k train/validation split, pad-4 random crop and horizontal flip.

The values are checked where they are defined: the flags by absl (``train.flags``), the
model's arguments by the builders (``models``); a budget is a constant of the reproduction.

Example:
  >>> config = TrainConfig(model="digits", dataset="digits", time_steps=2)
  >>> config.epochs, config.lr_schedule                # the authors' recipe
  (150, 'step')
  >>> TrainConfig.from_dict(config.to_dict()) == config
  True
  >>> "time_steps" in FIXED and "epochs" in MAY_CHANGE
  True
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional


def _fixed(default: Any) -> Any:
    """A field that makes the run: a resume must keep it (``train.rundir``)."""
    return dataclasses.field(default=default, metadata={"fixed": True})


def _program(default: Any) -> Any:
    """A field of library callers only (no flag, not recorded)."""
    return dataclasses.field(default=default, metadata={"program": True})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Fields marked fixed make the run (what is trained, on which
    examples, in which order, and the step -> epoch map of the schedule: ``batch_size``);
    the others may change when a run resumes (how long, how fast, where and how it runs)."""

    # What is trained
    model: str = _fixed("cifarnet")
    time_steps: int = _fixed(10)
    decode: str = _fixed("membrane")
    mode: str = _fixed("tandem")
    dropout: Optional[float] = _fixed(None)  # None: the builder's
    width_divisor: int = _fixed(1)
    init_from: Optional[str] = _fixed(None)  # a trained ANN to convert (train.init_from)
    # On which examples, in which order
    dataset: str = _fixed("cifar10")
    image_size: Optional[int] = _fixed(None)
    validation_split: float = _fixed(0.1)
    augment: str = _fixed("auto")
    skip_bad_images: bool = _fixed(False)
    seed: int = _fixed(0)
    batch_size: int = _fixed(256)
    mixed_precision: str = _fixed("float32")
    # How long and how fast
    epochs: int = 150
    learning_rate: float = 1e-3
    lr_schedule: str = "step"
    lr_step_epochs: int = 50
    lr_step_factor: float = 0.1
    weight_decay: float = 0.0
    ema_momentum: float = _fixed(0.0)  # 0: none; the optimizer keeps a moving average of the weights
    # Where and how it runs
    data_dir: Optional[str] = None
    strategy: str = "auto"
    tpu: str = ""
    cpu_devices: int = 0
    jit_compile: bool = False
    deterministic: bool = False
    model_dir: Optional[str] = None
    export_dir: Optional[str] = None  # None: MODEL_DIR/export
    export_mode: Optional[str] = None  # None: mode
    # Library callers only (the reproduction)
    model_name: Optional[str] = _program(None)
    run_eagerly: bool = _program(False)

    def to_dict(self) -> dict:
        """The recorded fields (not the library callers' ones), for ``config.json``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.metadata.get("program")}

    def to_flags(self) -> str:
        """The recorded fields with a value as absl flag lines, for ``--flagfile``."""
        lines = []
        for name, value in self.to_dict().items():
            if isinstance(value, bool):
                lines.append(f"--{'' if value else 'no'}{name}")
            elif value is not None:
                lines.append(f"--{name}={value}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The configuration recorded as ``values`` (missing fields: the defaults).

        Raises ``ValueError`` naming the fields this version does not know.
        """
        unknown = sorted(set(values) - set(RECORDED))
        if unknown:
            raise ValueError(f"unknown fields {', '.join(unknown)}")
        return cls(**values)


RECORDED = tuple(f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("program"))
#: What makes a run (kept on resume).
FIXED = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("fixed"))
#: May change when resuming: how long, how fast, where and how it runs.
MAY_CHANGE = tuple(name for name in RECORDED if name not in FIXED)
