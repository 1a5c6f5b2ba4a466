"""Generative replay: brain-inspired replay (BI-R), its ablations, RtF and DGR.

One method, :class:`BIR`, with one explicit switch per component of van de Ven et al. (2020):

- ``feedback``: replay-through-feedback. The main model is a VAE whose encoder's top hidden layer
  also feeds the classifier; it is trained on current data with classification + reconstruction
  + KL, and on replayed data with distillation (or hard targets) + reconstruction + KL. Without
  it, a separate VAE generator is trained alongside a plain classifier, with its own optimiser
  stepped in the same iteration (deep generative replay).
- ``conditional``: the prior is a Gaussian mixture with one learnable mode per class; replay
  picks a previously seen class and samples its mode.
- ``gating``: each class (``gate_by="class"``) or task (``"task"``) owns a fixed random mask that
  silences a proportion ``gate_prop`` of every decoder hidden layer.
- ``internal``: a frozen, pre-trained extractor feeds the network; the VAE reconstructs and
  replays the extractor's output instead of raw inputs.
- ``distill``: replayed samples are trained toward the temperature-``T`` soft outputs of the model
  as it was after the previous task (otherwise toward its argmax, as in DGR).

Replay and current losses are weighted ``1 - 1/t`` and ``1/t`` by :meth:`Method.loss`; every
iteration replays as many freshly generated samples as there are in the current batch.

Details that follow the authors' code: reconstruction is averaged over input elements (BCE on a
sigmoid output for data in [0, 1], half the squared error on a linear output otherwise); the KL
term is a one-sample estimate for the mixture prior (analytic for the standard one), averaged
over the batch and divided by the number of raw input elements; replayed samples use the
teacher's soft prediction (at temperature ``T``) both to weight the prior's modes in the KL term
and to mix the class gates; in task-incremental learning an equal share of the replay comes
from each previous task and is scored by that task's head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from birram.cache import claim_inductor_cache
from birram.errors import ConfigError
from birram.methods.base import (
    MASKED_LOGIT,
    Batch,
    Context,
    CurrentLoss,
    Known,
    Method,
    PreviousModel,
    Regulariser,
    TrainingSet,
    distillation_loss,
    masked,
    one_hot,
    prediction_loss,
    soft_target_loss,
)
from birram.methods.replay_pictures import sample_grid  # part of this module's interface
from birram.models.conv import freeze
from birram.models.mlp import Classifier, extractor_output_size
from birram.models.prior import kl_to_standard_normal, log_normal_diag
from birram.models.vae import ReplayVAE

ReconLoss = Literal["auto", "bce", "mse"]
GateBy = Literal["class", "task"]


@dataclass
class Replay:
    """One iteration's replayed samples and what the previous model says about them."""

    x: torch.Tensor  # [N, D] in replay space (flattened inputs, or features if internal)
    task_ids: torch.Tensor  # [N] task each sample stands for (heads in task-IL, task gates)
    teacher: torch.Tensor  # [N, n_outputs] previous model's logits, masked to its outputs
    hard: torch.Tensor  # [N] teacher's argmax
    student_mask: torch.Tensor  # [N, n_outputs] outputs the replay loss may use
    logits: torch.Tensor | None = None  # [N, n_outputs] the previous model's logits, unmasked


@dataclass
class ReplayDraws:
    """What one iteration's replay draws before any arithmetic, and the masks it reads."""

    classes: torch.Tensor  # [N] class each replayed sample stands for
    task_ids: torch.Tensor  # [N] its task
    noise: torch.Tensor  # [N, z] the generator's latent noise
    teacher_mask: torch.Tensor  # [N, n_outputs] the previous model's outputs for each sample
    student_mask: torch.Tensor  # [N, n_outputs] the outputs its replay loss may use


@dataclass
class StepDraws:
    """Every random number one step uses, drawn in the order a step drawing as it goes would
    draw them (so the streams are the same), and everything it reads of the loop's state (the
    task's masks and loss weights). Given these, the rest of the step is arithmetic on tensors
    alone: what ``train.compile`` compiles as one graph."""

    latent_noise: torch.Tensor  # [current + replayed rows, z] the VAE's reparameterisation
    # Weights of the current and the replayed loss (0-d tensors when compiled, so one graph
    # serves every task; floats otherwise).
    weights: tuple[float | torch.Tensor, float | torch.Tensor]
    replay: ReplayDraws | None = None


@dataclass
class GenerativeCurrentLoss(CurrentLoss):
    """The current loss of generative replay, with the replay loss of the same forward pass."""

    # Without feedback: the separate generator's loss on current and replayed data, weighted
    # as the classifier's (its parameters are disjoint from the classifier's).
    generator_loss: torch.Tensor | None = None


def log_one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    """log of a one-hot matrix, with a finite stand-in for log 0."""
    out = torch.full((labels.shape[0], n), MASKED_LOGIT, device=labels.device)
    return out.scatter_(1, labels[:, None], 0.0)


class BIR(Method):
    """Generative replay with every BI-R component a switch (all on: BI-R; all off: DGR)."""

    name = "bir"

    def __init__(
        self,
        *,
        feedback: bool,
        conditional: bool,
        gating: bool,
        internal: bool,
        distill: bool,
        gate_prop: float = 0.8,
        z_dim: int = 100,
        temperature: float = 2.0,
        recon_loss: ReconLoss = "auto",
        kl_weight: float = 1.0,
        gate_by: GateBy = "class",
        extractor: nn.Module | None = None,
        generator_hidden: list[int] | None = None,
        regularisers: list[Regulariser] | None = None,
        t_squared: bool = True,
        independent_gates: bool = False,
        task_replay_heads: Literal["one", "all"] = "one",
    ) -> None:
        super().__init__(regularisers)
        self.t_squared, self.independent_gates = t_squared, independent_gates
        # Task-IL with an unconditional generator: each replayed sample scored by one previous
        # head ("one") or by every previous head, the losses averaged ("all", the references).
        self.task_replay_heads = task_replay_heads
        if internal and extractor is None:
            raise ConfigError("internal replay needs a pre-trained extractor (extractor=None)")
        if not 0.0 <= gate_prop < 1.0:
            raise ConfigError(f"gate_prop={gate_prop} must be in [0, 1)")
        if recon_loss not in ("auto", "bce", "mse"):
            raise ConfigError(f"recon_loss={recon_loss!r}; allowed: auto, bce, mse")
        if gate_by not in ("class", "task"):
            raise ConfigError(f"gate_by={gate_by!r}; allowed: class, task")
        if z_dim < 1 or temperature <= 0:
            raise ConfigError(f"z_dim={z_dim} must be >= 1 and temperature={temperature} > 0")
        self.feedback, self.conditional, self.gating = feedback, conditional, gating
        self.internal, self.distill = internal, distill
        self.gate_prop, self.z_dim, self.temperature = gate_prop, z_dim, temperature
        self.recon_loss: ReconLoss = recon_loss
        if kl_weight <= 0:
            raise ConfigError(f"kl_weight={kl_weight} must be > 0")
        self.kl_weight = kl_weight
        self.gate_by: GateBy = gate_by
        self.extractor = freeze(extractor)
        self.generator_hidden = list(generator_hidden) if generator_hidden else None
        # The model after the previous task (the teacher; with feedback also the replay's
        # source), and what a stream had shown it.
        self.snapshot = PreviousModel()
        self.generator: ReplayVAE | None = None  # separate generator (without feedback)
        self.gen_optimizer: torch.optim.Optimizer | None = None
        # The separate generator after the previous task (the replay's source without feedback).
        self.generator_snapshot = PreviousModel("previous_generator", with_known=False)
        self._compiled_loss: Callable[..., tuple[torch.Tensor, dict]] | None = None

    @property
    def previous(self) -> nn.Module | None:
        return self.snapshot.model

    @property
    def previous_generator(self) -> ReplayVAE | None:
        return self.generator_snapshot.model  # type: ignore[return-value]

    @property
    def known(self) -> Known | None:
        """On a stream: what the previous model had been shown."""
        return self.snapshot.known

    # -- named combinations ---------------------------------------------------------------
    @classmethod
    def full(cls, extractor: nn.Module | None, **kwargs: Any) -> BIR:
        """Every component; internal replay exactly when an extractor is given."""
        return cls(feedback=True, conditional=True, gating=True, internal=extractor is not None,
                   distill=True, extractor=extractor, **kwargs)

    @classmethod
    def rtf(cls, **kwargs: Any) -> BIR:
        """Replay-through-feedback alone: feedback + distillation, standard prior, no gates."""
        method = cls(feedback=True, conditional=False, gating=False, internal=False,
                     distill=True, **kwargs)
        method.name = "rtf"
        return method

    # -- model ------------------------------------------------------------------------------
    def _configure(self, ctx: Context) -> None:
        p = ctx.protocol
        self._input_shape = p.input_shape
        raw_dim = math.prod(p.input_shape)
        self._feat_dim = (extractor_output_size(self.extractor, p.input_shape)
                          if self.extractor is not None else raw_dim)
        self._replay_dim = self._feat_dim if self.internal else raw_dim
        # The reference divides the KL term by the number of raw input elements (also for
        # internal replay), matching reconstruction losses that are averaged per element.
        # kl_weight < 1 (a beta-VAE) sharpens samples of low-dimensional inputs, where the
        # per-element normalisation leaves the KL term too strong.
        self._kl_scale = self.kl_weight / raw_dim
        if self.recon_loss == "auto":
            x = p.tasks[0].x_train
            in_unit_range = bool(x.min() >= 0) and bool(x.max() <= 1)
            self._recon: str = "bce" if in_unit_range and not self.internal else "mse"
        else:
            self._recon = self.recon_loss
        self._n_outputs, self._n_tasks = p.n_outputs, p.n_tasks
        self._regression = p.regression is not None
        if self._regression and (self.conditional or (self.gating and self.gate_by == "class")):
            # A real-valued target has no classes to pick a prior mode or a gate by.
            raise ConfigError("replay conditioned on classes (a mixture prior, class gates) "
                              "needs class labels; for a regression target use the standard "
                              "prior and gates by task or none")
        self._n_contexts = (p.n_outputs if self.gate_by == "class" else p.n_tasks) \
            if self.gating else 0
        # For every output unit, the (first) task that uses it; and each task's outputs.
        output_task = torch.zeros(p.n_outputs, dtype=torch.long)
        for task in reversed(p.tasks):
            output_task[list(task.outputs)] = task.index
        self._output_task = output_task
        self._task_outputs = torch.tensor([list(t.outputs) for t in p.tasks], dtype=torch.long)

    def _make_vae(self, ctx: Context, hidden: list[int], with_head: bool) -> ReplayVAE:
        return ReplayVAE(
            # The main model reads raw inputs (through the extractor, if any); a separate
            # generator only ever sees replay-space samples.
            n_in=self._feat_dim if with_head else self._replay_dim,
            n_out=self._replay_dim,
            hidden=hidden,
            z_dim=self.z_dim,
            generator=ctx.generator,
            n_classes=self._n_outputs if with_head else 0,
            n_modes=self._n_outputs if self.conditional else 0,
            n_contexts=self._n_contexts,
            gate_prop=self.gate_prop if self.gating else 0.0,
            output="sigmoid" if self._recon == "bce" else "linear",
            extractor=self.extractor if with_head else None,
            independent_gates=self.independent_gates,
        )

    def build_model(self, ctx: Context) -> nn.Module:
        self._configure(ctx)
        hidden = list(ctx.settings.hidden)
        if self.feedback:
            return self._make_vae(ctx, hidden, with_head=True)
        return Classifier(ctx.protocol.input_shape, ctx.protocol.n_outputs, hidden,
                          extractor=self.extractor)

    @staticmethod
    def _adam(params: list[nn.Parameter], ctx: Context) -> torch.optim.Optimizer:
        # The fused kernel: one pass over all parameters instead of a dozen elementwise ops.
        return torch.optim.Adam(params, lr=ctx.settings.lr, betas=ctx.settings.betas,
                                fused=True)

    def make_optimizer(self, ctx: Context) -> torch.optim.Optimizer:
        return self._adam([p for p in ctx.model.parameters() if p.requires_grad], ctx)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        if not self.feedback:
            hidden = self.generator_hidden or list(ctx.settings.hidden)
            self.generator = self._make_vae(ctx, hidden, with_head=False).to(ctx.device)
            self.gen_optimizer = self._adam(list(self.generator.parameters()), ctx)

    # -- spaces -----------------------------------------------------------------------------
    def to_replay_space(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs as the generator sees them (features for internal replay)."""
        if self.internal:
            return self.extractor(x).flatten(1)
        return x.flatten(1)

    def _encoder_input(self, r: torch.Tensor) -> torch.Tensor:
        """Replay-space samples as the feedback model's encoder reads them."""
        if self.internal or self.extractor is None:
            return r
        return self.extractor(r.view(-1, *self._input_shape)).flatten(1)

    def classify_replay_space(self, model: nn.Module, r: torch.Tensor) -> torch.Tensor:
        """Logits of ``model`` (a feedback VAE or a classifier) for replay-space samples."""
        if isinstance(model, ReplayVAE):
            return model.classify_encoded(self._encoder_input(r))
        if self.internal:
            return model.head(model.body(r))
        return model(r.view(-1, *self._input_shape))

    def _contexts(self, classes: torch.Tensor, task_ids: torch.Tensor,
                  class_probs: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per-sample gate weights: one-hot (or soft, over classes) context vectors."""
        if not self.gating:
            return None
        if self.gate_by == "task":
            return one_hot(task_ids, self._n_tasks)
        if class_probs is not None:
            return class_probs
        return one_hot(classes, self._n_outputs)

    # -- replay -----------------------------------------------------------------------------
    def _draw_contexts(self, ctx: Context, n: int,
                       gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Classes and tasks to replay, uniformly over what the previous model has seen."""
        seen = ctx.task  # tasks finished so far
        scenario = ctx.protocol.scenario
        if self._regression:  # one shared output: only the task (for task gates) is drawn
            classes = torch.zeros(n, dtype=torch.long)
            task_ids = torch.randint(seen, (n,), generator=gen)
        elif scenario == "task":  # an equal share from every previous task
            task_ids = torch.arange(seen).repeat_interleave(-(-n // seen))
            pick = torch.randint(self._task_outputs.shape[1], task_ids.shape, generator=gen)
            classes = self._task_outputs[task_ids, pick]
        elif scenario == "class":
            allowed = self._task_outputs[:seen].flatten()
            classes = allowed[torch.randint(allowed.numel(), (n,), generator=gen)]
            task_ids = self._output_task[classes]
        else:  # domain: every output belongs to every task; the task only matters for gates
            classes = torch.randint(self._n_outputs, (n,), generator=gen)
            task_ids = torch.randint(seen, (n,), generator=gen)
        return classes.to(ctx.device), task_ids.to(ctx.device)

    def _draw_known(self, ctx: Context, n: int,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """On a stream: classes and tasks to replay, uniformly over what the previous model
        had been shown (its labels and task ids), as :meth:`_draw_contexts` over past tasks."""
        assert self.known is not None
        tasks = self.known.task_list
        scenario = ctx.protocol.scenario
        if scenario == "task":
            task_ids = tasks.repeat_interleave(-(-n // tasks.numel()))
            pick = torch.randint(self._task_outputs.shape[1], task_ids.shape, generator=gen)
            classes = self._task_outputs[task_ids, pick]
        elif scenario == "class":
            allowed = self.known.output_list
            classes = allowed[torch.randint(allowed.numel(), (n,), generator=gen)]
            task_ids = self._output_task[classes]
        else:
            classes = torch.randint(self._n_outputs, (n,), generator=gen)
            task_ids = tasks[torch.randint(tasks.numel(), (n,), generator=gen)]
        return classes.to(ctx.device), task_ids.to(ctx.device)

    @torch.no_grad()
    def generate(self, ctx: Context, source: ReplayVAE, classes: torch.Tensor,
                 task_ids: torch.Tensor, gen: torch.Generator | None = None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """Decode samples of ``classes`` (their prior modes and gates, where those are used);
        the latent noise is ``noise``, or drawn from ``gen``, or from each seed's own
        generator."""
        if noise is None and gen is None:
            noise = ctx.rows.randn(ctx.rows.per_seed(classes.shape[0]), source.z_dim,
                                   device=ctx.device)
        elif noise is None:
            noise = torch.randn(classes.shape[0], source.z_dim, generator=gen).to(ctx.device)
        z = source.prior.sample(classes, noise) if source.prior is not None else noise
        return source.decode(z, self._contexts(classes, task_ids))

    def _draw_replay(self, ctx: Context, n: int) -> ReplayDraws:
        """The classes, tasks and latent noise of ``n`` replayed samples per seed, and the
        teacher's and student's output masks for them."""
        draw = self._draw_contexts if self.known is None else self._draw_known
        classes, task_ids = ctx.rows.draw(lambda gen: draw(ctx, n, gen))
        noise = ctx.rows.randn(ctx.rows.per_seed(classes.shape[0]), self.z_dim,
                               device=ctx.device)
        if self.known is not None:
            teacher_mask = self.known.teacher_mask(ctx, task_ids)
        elif ctx.protocol.scenario == "task":
            teacher_mask = ctx.masks[task_ids]
        else:
            teacher_mask = ctx.masks[ctx.task - 1].expand(classes.shape[0], -1)
        return ReplayDraws(classes, task_ids, noise, teacher_mask, ctx.sample_mask(task_ids))

    def _replay_from(self, ctx: Context, drawn: ReplayDraws) -> Replay:
        """The replayed samples and what the previous model says about them."""
        source = self.previous if self.feedback else self.previous_generator
        x = self.generate(ctx, source, drawn.classes, drawn.task_ids, noise=drawn.noise)
        with torch.no_grad():
            logits = self.classify_replay_space(self.previous, x)
        teacher = masked(logits, drawn.teacher_mask)
        return Replay(x, drawn.task_ids, teacher, teacher.argmax(1), drawn.student_mask,
                      logits)

    def _replay(self, ctx: Context, n: int) -> Replay:
        return self._replay_from(ctx, self._draw_replay(ctx, n))

    def draw_step(self, ctx: Context, batch: Batch) -> StepDraws:
        """Everything random in a step on ``batch``, in the order the step uses it."""
        rows = ctx.rows
        n = rows.per_seed(batch.x.shape[0])
        replay = self._draw_replay(ctx, n) if self.previous is not None else None
        replayed = 0 if replay is None else rows.per_seed(replay.classes.shape[0])
        latent = rows.randn(n + replayed, self.z_dim, device=ctx.device)
        w = self.current_weight(ctx, batch)
        weights: tuple[float | torch.Tensor, float | torch.Tensor] = (w, 1.0 - w)
        if self._compiled_loss is not None and not isinstance(w, torch.Tensor):
            # As tensors (the same float32 values a float would give): no graph per task.
            weights = (torch.tensor(w, device=ctx.device),
                       torch.tensor(1.0 - w, device=ctx.device))
        return StepDraws(latent, weights, replay)

    # -- losses -----------------------------------------------------------------------------
    def _vae_terms(self, ctx: Context, vae: ReplayVAE, enc_in: torch.Tensor,
                   target: torch.Tensor, contexts: torch.Tensor | None,
                   log_mode_weights: torch.Tensor | None, noise: torch.Tensor,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample reconstruction and (scaled) KL terms, and the encoder's top layer."""
        mu, logvar, top = vae.encode(enc_in)
        z = mu + torch.exp(0.5 * logvar) * noise
        out = vae.decode_logits(z, contexts)
        if self._recon == "bce":
            recon = F.binary_cross_entropy_with_logits(out, target, reduction="none").mean(1)
        else:  # -log N(target; out, I) up to a constant, as the reference's "MSE"
            recon = 0.5 * (out - target).pow(2).mean(1)
        if vae.prior is None:
            kl = kl_to_standard_normal(mu, logvar)
        else:  # one-sample estimate: log q(z|x) - log p(z)
            kl = log_normal_diag(z, mu, logvar) - vae.prior.log_prob(z, log_mode_weights)
        return recon, kl * self._kl_scale, top

    def _replay_targets(self, replay: Replay) -> tuple[torch.Tensor, torch.Tensor]:
        """(class weights for the gates, log weights of the prior's modes) of replayed samples."""
        if self.distill:
            log_p = F.log_softmax(replay.teacher / self.temperature, dim=1)
            return log_p.exp(), log_p
        return (one_hot(replay.hard, self._n_outputs),
                log_one_hot(replay.hard, self._n_outputs))

    def _scores_every_head(self, ctx: Context) -> bool:
        """Task-IL replay scored by every previous head: as the reference, only where the
        generator is unconditional (a conditional one replays each task for its own head)."""
        return (ctx.protocol.scenario == "task" and self.task_replay_heads == "all"
                and not self.conditional and not self.gating)

    def _prediction_loss(self, ctx: Context, logits: torch.Tensor,
                         replay: Replay) -> torch.Tensor:
        if self._scores_every_head(ctx):
            assert replay.logits is not None
            heads = range(ctx.task) if self.known is None else self.known.task_list.tolist()
            return torch.stack([self._head_loss(masked(logits, ctx.masks[h]),
                                                masked(replay.logits, ctx.masks[h]))
                                for h in heads]).mean()
        student = masked(logits, replay.student_mask)
        if self.distill or self._regression:  # a regression teacher's output is its one target
            return soft_target_loss(ctx, student, replay.teacher, self.temperature,
                                    self.t_squared)
        return F.cross_entropy(student, replay.hard)

    def _head_loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.distill:
            return distillation_loss(student, teacher, self.temperature, self.t_squared)
        return F.cross_entropy(student, teacher.argmax(1))

    def current(self, ctx: Context, batch: Batch) -> GenerativeCurrentLoss:
        """Loss on the current batch; the replayed batch goes through the same forward pass
        (one pass over both is cheaper than two), its loss handed on as ``replay``."""
        return self.current_from(ctx, batch, self.draw_step(ctx, batch))

    def current_from(self, ctx: Context, batch: Batch,
                     draws: StepDraws) -> GenerativeCurrentLoss:
        """:meth:`current` given the step's draws: arithmetic on tensors only."""
        rows = ctx.rows  # stacked seeds: n rows per seed, concatenated seed by seed
        n = rows.per_seed(batch.x.shape[0])
        replay = self._replay_from(ctx, draws.replay) if draws.replay is not None else None
        target = self.to_replay_space(batch.x)
        cur_contexts = self._contexts(batch.y, batch.task_ids)
        cur_log_w = log_one_hot(batch.y, self._n_outputs) if self.conditional else None
        if self.feedback:
            if self.internal or self.extractor is None:
                enc_in = target
            else:
                enc_in = self.extractor(batch.x).flatten(1)
        if replay is not None:
            rep_probs, rep_log_w = self._replay_targets(replay)
            rep_contexts = self._contexts(replay.hard, replay.task_ids, rep_probs)
            target = rows.cat([target, replay.x])
            if cur_contexts is not None:
                cur_contexts = rows.cat([cur_contexts, rep_contexts])
            if cur_log_w is not None:
                cur_log_w = rows.cat([cur_log_w, rep_log_w])
            if self.feedback:
                enc_in = rows.cat([enc_in, self._encoder_input(replay.x)])

        noise = draws.latent_noise
        if self.feedback:
            vae = ctx.model
            recon, kl, top = self._vae_terms(ctx, vae, enc_in, target, cur_contexts, cur_log_w,
                                             noise)
            logits = vae.head(top)
        else:
            vae = self.generator
            recon, kl, _ = self._vae_terms(ctx, vae, target, target, cur_contexts, cur_log_w,
                                           noise)
            logits = self.classify_replay_space(ctx.model, target)

        pred = prediction_loss(ctx, rows.head(logits, n), batch.y, batch.mask)
        recon_cur, kl_cur = rows.head(recon, n).mean(), rows.head(kl, n).mean()
        logs: dict[str, Any] = {"loss_class": pred.detach(), "loss_recon": recon_cur.detach(),
                                "loss_kl": kl_cur.detach()}
        gen_cur = recon_cur + kl_cur
        loss = pred + gen_cur if self.feedback else pred
        replay_loss = None
        gen_loss = gen_cur
        if replay is not None:
            pred_r = self._prediction_loss(ctx, rows.tail(logits, n), replay)
            recon_r, kl_r = rows.tail(recon, n).mean(), rows.tail(kl, n).mean()
            gen_rep = recon_r + kl_r
            loss_r = pred_r + gen_rep if self.feedback else pred_r
            replay_loss = (loss_r, {
                "loss_replay": loss_r.detach(), "loss_replay_pred": pred_r.detach(),
                "loss_replay_recon": recon_r.detach(), "loss_replay_kl": kl_r.detach()})
            # The generator weighs its data as the classifier does.
            w_cur, w_rep = draws.weights
            gen_loss = w_cur * gen_cur + w_rep * gen_rep
        logs["loss_current"] = loss.detach()
        return GenerativeCurrentLoss(loss, logs, replay=replay_loss,
                                     generator_loss=None if self.feedback else gen_loss)

    def loss(self, ctx: Context, batch: Batch) -> tuple[torch.Tensor, dict]:
        draws = self.draw_step(ctx, batch)
        if self._compiled_loss is not None:
            return self._compiled_loss(self, ctx, batch, draws)
        return self.loss_from(ctx, batch, draws)

    def loss_from(self, ctx: Context, batch: Batch,
                  draws: StepDraws) -> tuple[torch.Tensor, dict]:
        """The step's loss given its draws (what ``train.compile`` compiles)."""
        current = self.current_from(ctx, batch, draws)
        loss, logs = self.total_loss(ctx, batch, current, draws.weights)
        if current.generator_loss is not None:
            # Disjoint parameters: one backward pass gives both models their own gradients;
            # the generator's optimiser steps in after_step.
            logs["loss_generator"] = current.generator_loss.detach()
            loss = loss + ctx.rows.loss_sum(current.generator_loss)
        return loss, logs

    def compile_step(self, ctx: Context) -> None:
        # A lasting cache: a later run of the same step loads its code instead of compiling.
        claim_inductor_cache()
        # fullgraph: a graph break would split the step and lose most of what fusing gains.
        # The class's function, called with ``self``: a copy of this method (stacked seeds
        # train a copy) must not run the step of the object it was copied from.
        self._compiled_loss = torch.compile(type(self).loss_from, fullgraph=True,
                                            dynamic=False, mode=ctx.settings.compile_mode)

    def eager_step(self) -> None:
        self._compiled_loss = None

    def after_step(self, ctx: Context) -> None:
        super().after_step(ctx)
        if self.gen_optimizer is not None:
            self.gen_optimizer.step()
            self.gen_optimizer.zero_grad(set_to_none=True)

    def after_task(self, ctx: Context, data: TrainingSet) -> None:
        super().after_task(ctx, data)
        self._snapshot(ctx)

    def consolidate(self, ctx: Context) -> None:
        # As after a task: the model (and generator) as they are now become the replay's source
        # and teacher, for the classes and tasks the stream has shown so far.
        super().consolidate(ctx)
        self._snapshot(ctx)

    def _snapshot(self, ctx: Context) -> None:
        self.snapshot.take(ctx, ctx.model)
        if self.generator is not None:
            self.generator_snapshot.take(ctx, self.generator)

    # -- the current generator (for pictures and checks) ------------------------------------
    def current_generator(self, ctx: Context) -> ReplayVAE:
        return ctx.model if self.feedback else self.generator  # type: ignore[return-value]

    # -- seeds trained together ---------------------------------------------------------------
    def seed_modules(self) -> dict[str, nn.Module]:
        return {} if self.generator is None else {"generator": self.generator}

    def set_seed_module(self, name: str, module: nn.Module, ctx: Context) -> None:
        if name != "generator" or self.generator is None:
            raise KeyError(name)
        self.generator = module  # type: ignore[assignment]
        self.gen_optimizer = self._adam(list(module.parameters()), ctx)

    # -- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), **self.snapshot.state_dict()}
        if self.generator is not None:
            state["generator"] = self.generator.state_dict()
            state["gen_optimizer"] = self.gen_optimizer.state_dict()
            state.update(self.generator_snapshot.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any], ctx: Context) -> None:
        super().load_state_dict(state, ctx)
        self.snapshot.load(state, ctx.model)
        if self.generator is not None and "generator" in state:
            self.generator.load_state_dict(state["generator"])
            self.gen_optimizer.load_state_dict(state["gen_optimizer"])
            self.generator_snapshot.load(state, self.generator)


class DGR(BIR):
    """Deep generative replay (Shin et al. 2017): a classifier and a separate VAE generator;
    replayed samples are labelled by the previous classifier (argmax, or soft with ``distill``)."""

    def __init__(self, distill: bool = False, z_dim: int = 100, recon_loss: ReconLoss = "auto",
                 generator_hidden: list[int] | None = None, temperature: float = 2.0,
                 kl_weight: float = 1.0, regularisers: list[Regulariser] | None = None,
                 t_squared: bool = True, task_replay_heads: Literal["one", "all"] = "one",
                 ) -> None:
        super().__init__(feedback=False, conditional=False, gating=False, internal=False,
                         distill=distill, gate_prop=0.0, z_dim=z_dim, temperature=temperature,
                         recon_loss=recon_loss, kl_weight=kl_weight,
                         generator_hidden=generator_hidden, regularisers=regularisers,
                         t_squared=t_squared, task_replay_heads=task_replay_heads)
        self.name = "dgr-distill" if distill else "dgr"


__all__ = ["BIR", "DGR", "Replay", "sample_grid"]
