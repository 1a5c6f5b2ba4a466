"""Method names and how to build each one from a :class:`MethodConfig`.

Every name maps to exactly one set of switches; the ablation names spell out the one
component they remove from BI-R or add to generative replay. Names, descriptions and scenarios
need no torch (``birram methods`` lists them at once); each factory imports its method's module
when it is called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from birram.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from birram.config import MethodConfig
    from birram.methods.base import Method

BIR_COMPONENTS = ("feedback", "conditional", "gating", "internal", "distill")

Factory = Callable[["MethodConfig", "nn.Module | None"], "Method"]


@dataclass(frozen=True)
class MethodSpec:
    description: str
    factory: Factory
    # Scenarios the method runs in; methods that must know each sample's task run in task-IL only.
    scenarios: tuple[str, ...] = ("task", "domain", "class")
    # How the method is built for a real-valued target (target log10-icc); None: it cannot
    # regress (it needs classes: per-class memories, class means, one model per class).
    regression: Factory | None = None
    # Whether it learns from a task-free stream (consolidating every N iterations, if at all);
    # False for methods that need to be told where each task ends.
    stream: bool = True
    # Whether its training step compiles into one graph (train.compile): generative replay.
    compiles: bool = False


def _none(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.base import Method

    return Method()


def _joint(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.joint import Joint

    return Joint()


def _lwf(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.lwf import LwF

    return LwF(temperature=cfg.distill_temperature, t_squared=cfg.distill_t_squared,
               task_replay_heads=cfg.task_replay_heads)


def _er(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.er import ExperienceReplay

    return ExperienceReplay(samples_per_class=cfg.er_samples_per_class)


def _ewc(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.base import Method
    from birram.methods.ewc import EWC

    return Method([EWC(strength=cfg.ewc_lambda, fisher_samples=cfg.ewc_fisher_samples)])


def _online_ewc(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.base import Method
    from birram.methods.ewc import OnlineEWC

    return Method([OnlineEWC(strength=cfg.online_ewc_lambda, gamma=cfg.online_ewc_gamma,
                             fisher_samples=cfg.ewc_fisher_samples)])


def _si(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.base import Method
    from birram.methods.si import SI

    return Method([SI(strength=cfg.si_c, epsilon=cfg.si_epsilon)])


def _icarl(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.icarl import ICaRL

    return ICaRL(samples_per_class=cfg.icarl_samples_per_class)


def _agem(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.agem import AGEM

    return AGEM(samples_per_class=cfg.agem_samples_per_class)


def _fromp(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.fromp import FROMP

    return FROMP(tau=cfg.fromp_tau, samples_per_class=cfg.fromp_samples_per_class)


def _xdg(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.xdg import XdG

    return XdG(gate_prop=cfg.xdg_prop, independent_gates=cfg.gate_draw == "independent")


def _separate_networks(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.separate import SeparateNetworksMethod

    return SeparateNetworksMethod()


def _gen_classifier(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
    from birram.methods.generative_classifier import GenerativeClassifier

    return GenerativeClassifier(hidden=cfg.gc_hidden, z_dim=cfg.gc_z_dim,
                                importance_samples=cfg.gc_importance_samples,
                                recon_loss=cfg.recon_loss, extractor=extractor,
                                learned_scale=cfg.gc_output_scale == "learned")


def _bir_factory(regression: bool = False, **switches: bool) -> Factory:
    """BI-R with the given components. For a regression target (``regression``) replay cannot
    be conditioned on classes: the prior is the standard normal (no mixture), and the decoder is
    gated by task when ``gate_by = "task"`` and not at all otherwise."""

    def build(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
        from birram.methods.generative import BIR

        regs = []
        with_si = switches.get("si", False)
        if with_si:
            from birram.methods.si import SI

            strength = cfg.si_c if cfg.bir_si_c is None else cfg.bir_si_c
            regs = [SI(strength=strength, epsilon=cfg.si_epsilon, scope=cfg.bir_si_params)]
        gate_prop = cfg.bir_si_gate_prop if with_si and cfg.bir_si_gate_prop is not None \
            else cfg.gate_prop
        flags = {name: switches.get(name, True) for name in BIR_COMPONENTS}
        if regression:
            flags["conditional"] = False
            flags["gating"] = flags["gating"] and cfg.gate_by == "task"
        if flags["internal"] and extractor is None:
            # Internal replay replays the output of a pre-trained extractor; on inputs with no
            # extractor (MNIST-like MLPs, RRAM features) it is absent, as in the paper.
            flags["internal"] = False
        return BIR(**flags, gate_prop=gate_prop, z_dim=cfg.z_dim,
                   temperature=cfg.distill_temperature, recon_loss=cfg.recon_loss,
                   kl_weight=cfg.kl_weight, gate_by=cfg.gate_by,
                   generator_hidden=cfg.generator_hidden,
                   extractor=extractor if flags["internal"] else None, regularisers=regs,
                   t_squared=cfg.distill_t_squared,
                   independent_gates=cfg.gate_draw == "independent",
                   task_replay_heads=cfg.task_replay_heads)

    return build


def _dgr_factory(distill: bool) -> Factory:
    def build(cfg: MethodConfig, extractor: nn.Module | None) -> Method:
        from birram.methods.generative import DGR

        return DGR(distill=distill, z_dim=cfg.z_dim, recon_loss=cfg.recon_loss,
                   kl_weight=cfg.kl_weight,
                   generator_hidden=cfg.generator_hidden,
                   temperature=cfg.distill_temperature, t_squared=cfg.distill_t_squared,
                   task_replay_heads=cfg.task_replay_heads)

    return build


def _gr_plus(component: str) -> Factory:
    """Generative replay (separate generator, hard targets) with one BI-R component added."""
    return _bir_factory(**{name: name == component for name in BIR_COMPONENTS})


METHODS: dict[str, MethodSpec] = {
    "none": MethodSpec("fine-tuning, no protection against forgetting (lower bound)", _none,
                       regression=_none),
    "joint": MethodSpec("all data seen so far (upper bound)", _joint, regression=_joint),
    "ewc": MethodSpec("elastic weight consolidation, one penalty per task", _ewc,
                      regression=_ewc, stream=False),
    "online-ewc": MethodSpec("online EWC, one running Fisher", _online_ewc,
                             regression=_online_ewc, stream=False),
    "si": MethodSpec("synaptic intelligence", _si, regression=_si),
    "lwf": MethodSpec("learning without forgetting (distillation on current inputs)", _lwf,
                      regression=_lwf),
    "er": MethodSpec("experience replay from a class-balanced buffer", _er),
    "icarl": MethodSpec("iCaRL: herding exemplars, distillation, nearest mean", _icarl,
                        stream=False),
    "agem": MethodSpec("A-GEM: gradients projected so the loss on a sample memory cannot rise",
                       _agem),
    "fromp": MethodSpec("FROMP: functional regularisation on memorable past samples (stored)",
                        _fromp, stream=False),
    "xdg": MethodSpec("context-dependent gating: a fixed random subset of hidden units per task",
                      _xdg, scenarios=("task",)),
    "separate-networks": MethodSpec("one network per task, sharing nothing (parameter-matched)",
                                    _separate_networks, scenarios=("task",), stream=False),
    "gen-classifier": MethodSpec("generative classifier: a VAE per class, importance-sampled "
                                 "likelihood (no data stored)", _gen_classifier),
    # For a regression target DGR trains replayed inputs toward the previous model's output.
    "dgr": MethodSpec("deep generative replay, separate VAE, hard targets", _dgr_factory(False),
                      regression=_dgr_factory(False), compiles=True),
    "dgr-distill": MethodSpec("deep generative replay with distillation", _dgr_factory(True),
                              compiles=True),
    "rtf": MethodSpec("replay-through-feedback", _bir_factory(
        conditional=False, gating=False, internal=False), regression=_bir_factory(
        True, conditional=False, gating=False, internal=False), compiles=True),
    "bir": MethodSpec("brain-inspired replay, all components", _bir_factory(),
                      regression=_bir_factory(True), compiles=True),
    "bir-si": MethodSpec("brain-inspired replay combined with SI", _bir_factory(si=True),
                         regression=_bir_factory(True, si=True), compiles=True),
}
# The ablation: BI-R without each of its components, and generative replay with each one.
ABLATION_METHODS: dict[str, MethodSpec] = {
    "bir-no-feedback": MethodSpec(
        "BI-R without replay-through-feedback (ablation)", _bir_factory(feedback=False)),
    "bir-no-conditional": MethodSpec(
        "BI-R without conditional replay (ablation)", _bir_factory(conditional=False)),
    "bir-no-gating": MethodSpec(
        "BI-R without gating on internal context (ablation)", _bir_factory(gating=False)),
    "bir-no-internal": MethodSpec(
        "BI-R without internal replay (ablation)", _bir_factory(internal=False)),
    "bir-no-distill": MethodSpec(
        "BI-R without distillation (ablation)", _bir_factory(distill=False)),
    "gr-plus-feedback": MethodSpec(
        "generative replay with replay-through-feedback added (ablation)", _gr_plus("feedback")),
    "gr-plus-conditional": MethodSpec(
        "generative replay with conditional replay added (ablation)", _gr_plus("conditional")),
    "gr-plus-gating": MethodSpec(
        "generative replay with gating on internal context added (ablation)", _gr_plus("gating")),
    "gr-plus-internal": MethodSpec(
        "generative replay with internal replay added (ablation)", _gr_plus("internal")),
    "gr-plus-distill": MethodSpec(
        "generative replay with distillation added (ablation)", _gr_plus("distill")),
}
# Every ablation is generative replay, with its compiled step.
METHODS.update({name: replace(spec, compiles=True) for name, spec in ABLATION_METHODS.items()})

ABLATION = ["bir", *[f"bir-no-{c}" for c in BIR_COMPONENTS], "dgr",
            *[f"gr-plus-{c}" for c in BIR_COMPONENTS]]


def regressing_methods() -> list[str]:
    return [name for name, spec in METHODS.items() if spec.regression is not None]


def build_method(name: str, cfg: MethodConfig, extractor: nn.Module | None = None,
                 target: str = "class") -> Method:
    check_methods([name], target=target)
    spec = METHODS[name]
    factory = spec.factory if target == "class" else spec.regression
    assert factory is not None
    method = factory(cfg, extractor)
    method.consolidate_every = cfg.consolidate_every
    method.stream_current_weight = cfg.stream_current_weight
    return method


def stream_methods() -> list[str]:
    return [name for name, spec in METHODS.items() if spec.stream]


def needs_boundaries(name: str) -> ConfigError:
    # XdG runs on a stream only where each sample's task is told (task-IL): say so.
    runs = [n if "class" in METHODS[n].scenarios else f"{n} (task-IL)" for n in stream_methods()]
    return ConfigError(f"method {name!r} needs task boundaries, which a stream does not give; "
                       f"methods that run on a stream: {', '.join(runs)}")


def check_methods(names: list[str], scenario: str | None = None,
                  target: str = "class", stream: bool = False,
                  compile_step: bool = False) -> list[str]:
    """``names`` if each is registered (and, given ``scenario``, runs in it, can learn
    ``target``, runs on a ``stream`` and has a compiled step if asked); else ConfigError."""
    for name in names:
        if name not in METHODS:
            raise ConfigError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}")
        if scenario is not None and scenario not in METHODS[name].scenarios:
            from birram.methods.task_identity import needs_task_identity

            raise needs_task_identity(name, scenario)
        if target != "class" and METHODS[name].regression is None:
            raise ConfigError(f"method {name} classifies and cannot predict {target}; methods "
                              f"that regress: {', '.join(regressing_methods())}")
        if stream and not METHODS[name].stream:
            raise needs_boundaries(name)
        if compile_step and not METHODS[name].compiles:
            raise ConfigError(f"method {name} has no compiled training step; --compile "
                              "(train.compile) is for generative replay (bir, bir-si, rtf, "
                              "dgr, dgr-distill and the ablations): leave it out for "
                              f"{name}")
    return names


def check_cpu_compiler() -> None:
    """torch.compile on a CPU writes C++ kernels: without a compiler it fails mid-run."""
    import shutil

    if not any(shutil.which(name) for name in (os.environ.get("CXX", "g++"), "g++", "c++",
                                                "clang++")):
        raise ConfigError("--compile (train.compile) on a CPU needs a C++ compiler for "
                          "torch's code generator: install one (e.g. apt-get install g++) "
                          "or leave --compile out")
