"""The Lightning module: any registered method + weighting, trained and evaluated the same way."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from .. import __version__
from ..backbones import create_backbone
from ..config import Config
from ..decoding import decode
from ..errors import CheckpointError, ConfigError, NonFiniteLossError
from ..hierarchy import Hierarchy
from ..inputs import InputSpec
from ..methods import create_method
from ..metrics import HierarchicalMetrics
from ..metrics.per_class import LevelConfusionMatrices
from ..weighting import GradientWeighting, SharedTrunk, weighting_from_config
from .checkpoint import FORMAT, load_checkpoint_file

__all__ = ["HierarchicalModule", "create_optimizer", "prepare_inputs"]


def prepare_inputs(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None,
                   channels_last: bool = False) -> torch.Tensor:
    """Batch-wise, on the model's device: uint8 images to floats in [0, 1], then normalised with the input
    spec's ``mean`` and ``std`` (when it has them); vectors pass unchanged.

    Datasets hand over images as uint8 (4x less to copy than floats). Training, evaluation and
    :class:`~hcal.engine.predictions.Predictor` (``hcal predict``, ``hcal export``) all call this.
    """
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    if mean is not None:
        x = (x - mean) / std
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def create_optimizer(param_groups: list[dict], config: Config) -> torch.optim.SGD:
    """The optimiser of every method: SGD with momentum and weight decay.

    The update is torch's fused SGD kernel (one kernel per parameter group) where every
    parameter's device has it (CPU, CUDA), else the multi-tensor (``foreach``) update; both give
    the plain SGD update. The fused kernel matters for HCAL, whose prototypes of every level are
    a parameter group of their own (per-level learning rates): on a CPU the foreach update costs
    ~0.1 ms per group in small operations, the fused one a third of that (docs/performance.md).
    benchmarks/bench.py uses this function for both sides of its HCAL/CE ratio.
    """
    params = [p for group in param_groups for p in group["params"]]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.SGD(
        param_groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        fused=fused or None, foreach=None if fused else True,
    )


class HierarchicalModule(L.LightningModule):
    """Wraps a :class:`~hcal.methods.HierarchicalMethod` and its :class:`~hcal.weighting.Weighting`.

    Constructed from plain dicts (config, hierarchy, input spec), which Lightning saves as the
    checkpoint's ``hyper_parameters``: a checkpoint alone rebuilds the model.

    Loss weightings (equal, AWA, ...) train with Lightning's automatic optimisation: the weighted
    total is minimised. A :class:`~hcal.weighting.GradientWeighting` (GradNorm, CAGrad, IMTL,
    Nash-MTL) combines the levels' gradients itself, so the module switches to manual
    optimisation (``automatic_optimization = False``): :meth:`_gradient_weighting_step` takes the
    method's level losses and shared trunk, lets the weighting fill the gradients and steps the
    optimiser; the learning-rate schedule is stepped at the end of each epoch, as Lightning would.
    """

    def __init__(self, config: dict[str, Any], hierarchy: dict[str, Any], input_spec: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = Config.from_dict(config)
        self.hierarchy = Hierarchy.from_dict(hierarchy)
        self.input_spec = InputSpec.from_dict(input_spec)
        cfg, spec = self.config, self.input_spec
        self.method = create_method(cfg.method, self.hierarchy, lambda: self._backbone(cfg, spec), cfg)
        if cfg.channels_last and spec.kind == "image":
            self.method.to(memory_format=torch.channels_last)
        name, kwargs = self.method.weighting_spec(cfg)
        self.weighting = weighting_from_config(name, self.hierarchy.num_levels, cfg, **kwargs)
        self.automatic_optimization = not isinstance(self.weighting, GradientWeighting)
        if not self.automatic_optimization and cfg.precision == "16-mixed":
            raise ConfigError(
                f"--precision 16-mixed: method {cfg.method!r} combines per-level gradients itself, which fp16 loss "
                "scaling does not support; use --precision 32 or bf16-mixed"
            )
        # --compile: the whole training loss (backbone, head, FA, PP) as one compiled function, and
        # the forward pass used for prediction; in place, so state-dict keys and checkpoints stay the same.
        self._level_losses = self.method.level_losses
        self._losses_and_features = self.method.losses_and_features
        if cfg.compile:
            self.method.compile()
            self._level_losses = torch.compile(self.method.level_losses)
            self._losses_and_features = torch.compile(self.method.losses_and_features)
        self.decode_mode = cfg.decode
        self.batch_augment: torch.nn.Module | None = None  # set by the runner for --augment-on device
        self.val_metrics = HierarchicalMetrics(self.hierarchy)
        self.test_metrics = HierarchicalMetrics(self.hierarchy)
        self.test_confusion = LevelConfusionMatrices(self.hierarchy)  # hcal test's per-class report
        self.last_confusion: list[torch.Tensor] = []
        self.register_buffer("leaf_paths", self.hierarchy.leaf_paths(), persistent=False)
        self.level_keys = [Hierarchy.level_key(k) for k in range(self.hierarchy.num_levels)]
        self.last_metrics: dict[str, dict[str, float]] = {}
        self._epoch_sums: torch.Tensor | None = None  # this epoch's summed level losses and weights
        self._epoch_steps = 0
        if spec.kind == "image" and spec.mean:
            shape = (1, spec.channels, 1, 1)
            self.register_buffer("input_mean", torch.tensor(spec.mean).view(shape), persistent=False)
            self.register_buffer("input_std", torch.tensor(spec.std).view(shape), persistent=False)
        else:
            self.input_mean = self.input_std = None

    # ------------------------------------------------------------------ inference
    @staticmethod
    def _backbone(cfg: Config, spec: InputSpec):
        return create_backbone(cfg.backbone, spec, cfg.pretrained)

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        """The global batch's ``t`` from every DDP process, gradients flowing back to each part."""
        return self.all_gather(t, sync_grads=t.is_floating_point()).flatten(0, 1)

    def prepare_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`prepare_inputs` with this model's normalisation and layout."""
        return prepare_inputs(x, self.input_mean, self.input_std, self.config.channels_last)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.method(self.prepare_inputs(x))

    def predict_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(preds, probs)``, each ``(n, m)`` finest first, with this module's decoding."""
        return decode(self(x), self.hierarchy, self.decode_mode, self.leaf_paths)

    # ------------------------------------------------------------------ training
    def check_batch_size(self, batch: int) -> None:
        """Batch normalisation needs two samples per training batch: a batch of one is refused up front."""
        if batch < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.modules()):
            raise ConfigError(f"--batch-size {batch}: backbone {self.config.backbone!r} uses batch normalisation, "
                              "which needs at least 2 samples per training batch; use --batch-size 2 or more")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.batch_augment is not None:  # --augment-on device: per-image random draws, one batch op
            x = self.batch_augment(x)
        if not self.automatic_optimization:
            losses, total, weights = self._gradient_weighting_step(self.prepare_inputs(x), y)
        else:
            if self.method.gathers_batch and self.trainer.world_size > 1:
                # Every process computes the loss of the global batch (FA's class means need it);
                # DDP's gradient averaging then gives exactly the one-process gradient, and AWA's
                # weights are the same on every process.
                losses = self._level_losses(self.prepare_inputs(x), y, gather=self._gather)
            else:
                losses = self._level_losses(self.prepare_inputs(x), y)
            total, weights = self.weighting(losses)
            self._check_finite(total, losses)
        self.log("train/loss", total, on_step=True, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        # The per-level losses and weights are summed here and logged once per epoch (their means,
        # on_train_epoch_end): each self.log call costs far more than a small model's step.
        step = torch.cat([losses.detach(), weights.detach().to(losses.dtype)])
        self._epoch_sums = step if self._epoch_sums is None else self._epoch_sums + step
        self._epoch_steps += 1
        return total

    def _check_finite(self, total: torch.Tensor, losses: torch.Tensor) -> None:
        if not torch.isfinite(total):
            detail = ", ".join(f"L_{k} = {float(v):.4g}" for k, v in zip(self.level_keys, losses.detach()))
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.current_epoch}, step {self.global_step} ({detail}); "
                "training stopped, the last good checkpoint is kept; try a lower --lr"
            )

    def on_train_epoch_start(self) -> None:
        self.weighting.new_epoch()
        self._epoch_sums, self._epoch_steps = None, 0

    def _log_level_means(self) -> None:
        """The epoch's mean loss and weight of every level (``train/loss_lK``, ``train/weight_lK``)."""
        if self._epoch_sums is None:
            return
        means = (self._epoch_sums / self._epoch_steps).tolist()
        m = len(self.level_keys)
        self.log_dict({f"train/loss_{k}": means[i] for i, k in enumerate(self.level_keys)}
                      | {f"train/weight_{k}": means[m + i] for i, k in enumerate(self.level_keys)})

    # ------------------------------------------------------------------ gradient weightings (manual optimisation)
    def _gradient_weighting_step(self, x: torch.Tensor, y: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step whose gradients the :class:`~hcal.weighting.GradientWeighting` fills.

        Returns ``(losses, total, weights)`` to log: the ``(m,)`` level losses (detached), their sum
        and the weights the weighting gave each level's gradient.
        """
        optimizer = self.optimizers()
        level_losses, features = self._losses_and_features(x, y)
        losses = torch.stack([loss.detach() for loss in level_losses])
        total, _ = self.weighting(losses)
        self._check_finite(total, losses)
        trunk = SharedTrunk(features, self.method.shared_parameters(), self.method.last_shared_parameters())
        optimizer.zero_grad()
        weights = self.weighting.backward(level_losses, trunk)
        optimizer.step()
        return losses, total, weights

    def on_train_epoch_end(self) -> None:
        self._log_level_means()
        if not self.automatic_optimization:
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

    def configure_optimizers(self):
        cfg = self.config
        groups = self.method.param_groups(cfg)
        extra = [p for p in self.weighting.parameters() if p.requires_grad]
        if extra:
            groups.append({"name": "weighting", "params": extra, "lr": cfg.lr})
        optimizer = create_optimizer(groups, cfg)
        if cfg.scheduler == "none":
            return optimizer
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch, *metrics: HierarchicalMetrics | LevelConfusionMatrices) -> None:
        x, y = batch
        preds, _ = self.predict_batch(x)
        for m in metrics:
            m.update(preds, y)

    def _eval_epoch_end(self, metrics: HierarchicalMetrics, prefix: str) -> None:
        values = metrics.compute()
        metrics.reset()
        self.last_metrics[prefix] = {f"{prefix}/{k}": v for k, v in values.items()}  # exact doubles
        self.log_dict({f"{prefix}/{k}": v for k, v in values.items()}, prog_bar=False, sync_dist=False)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end(self.val_metrics, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics, self.test_confusion)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end(self.test_metrics, "test")
        self.last_confusion = [c.cpu() for c in self.test_confusion.compute()]
        self.test_confusion.reset()

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hcal_format"] = FORMAT
        checkpoint["hcal_version"] = __version__

    @classmethod
    def from_checkpoint(cls, path, map_location: Any = "cpu") -> tuple["HierarchicalModule", dict[str, Any]]:
        """Rebuild a trained module from an hcal checkpoint (``weights_only`` load)."""
        ckpt = load_checkpoint_file(path, map_location)
        hp = dict(ckpt["hyper_parameters"])
        # The trained weights replace any pretrained ones: do not fetch those again.
        hp["config"] = {**hp["config"], "pretrained": None, "compile": False}
        module = cls(**hp)
        try:
            module.load_state_dict(ckpt["state_dict"])
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {str(path)!r} does not match its own model: "
                                  f"{str(e).splitlines()[0]}") from None
        module.eval()
        return module, ckpt
