"""The report's opening paragraph: this run's result against the published claim.

Go et al. (Adv. Theory Simul. 2022) reported that BI-R, storing no data, learns RRAM
compliance levels class-incrementally to about 89 % accuracy, about twice the conventional
continual-learning methods. Every number in the paragraph comes from the run's summary; the
wording follows the numbers (above or below the claim, more or less than the factor).
"""

from __future__ import annotations

import math
from typing import Any

CLAIM_ACCURACY = 0.89
CLAIM_FACTOR = 2.0
CLAIM_SOURCE = "Go et al., *Adv. Theory Simul.* 2022"
CONVENTIONAL = ("none", "ewc", "online-ewc", "si", "lwf")
CONVENTIONAL_NAMES = "none, EWC, online EWC, SI, LwF"


def applies(protocol: str, scenario: str) -> bool:
    """The claim is about class-incremental learning of RRAM compliance levels."""
    return protocol == "rram-compliance" and scenario == "class"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _pct(mean: float, se: float | None) -> str:
    return f"{100 * mean:.1f} ± {100 * se:.1f} %" if _finite(se) else f"{100 * mean:.1f} %"


def _against_claim(mean: float, se: float | None) -> str:
    diff = 100 * (mean - CLAIM_ACCURACY)
    if abs(diff) < 0.05:
        return "equal to the published figure"
    side = "above" if diff > 0 else "below"
    text = f"{abs(diff):.1f} points {side} the published figure"
    if se is not None and math.isfinite(se) and abs(diff) <= 2 * 100 * se:
        text += " (within two standard errors)"
    return text


def _against_factor(ratio: float) -> str:
    if ratio > 1.1 * CLAIM_FACTOR:
        return "more than the published factor of about two"
    if ratio < 0.9 * CLAIM_FACTOR:
        return "less than the published factor of about two"
    return "about the published factor of two"


def best_conventional(methods: dict[str, Any], key: str) -> tuple[str, float] | None:
    """The conventional method with the highest ``key`` among those that ran."""
    ran = [(name, methods[name][key]) for name in CONVENTIONAL if name in methods]
    return max(ran, key=lambda item: item[1]) if ran else None


def _ratio_sentence(bir: float, best: tuple[str, float] | None, where: str,
                    name_them: bool = True) -> str:
    if best is None:
        return f"No conventional method ({CONVENTIONAL_NAMES}) ran{where}, so the factor is " \
               "not tested."
    name, accuracy = best
    if accuracy <= 0:
        return f"The best conventional method{where} ({name}) scored 0 %, so the factor is " \
               "undefined."
    ratio = bir / accuracy
    among = f"; of those that ran among {CONVENTIONAL_NAMES}" if name_them else ""
    return (f"That is {ratio:.1f} times the best conventional method{where} ({name}, "
            f"{100 * accuracy:.1f} %{among}), {_against_factor(ratio)}.")


def headline(summary: dict[str, Any], hardware: dict[str, Any] | None = None,
             devices: str = "simulated devices") -> str | None:
    """The paragraph, or None when the run is not the protocol the claim is about.

    ``devices`` names where the data came from ("simulated devices", or measured ones)."""
    # the claim is about classifying levels, not regressing the current (summary["target"])
    if not applies(summary["protocol"], summary["scenario"]) or "target" in summary:
        return None
    methods = summary["methods"]
    seeds = len(summary["seeds"])
    intro = (f"**Result against the published claim.** The reference system ({CLAIM_SOURCE}) "
             f"reported about {100 * CLAIM_ACCURACY:.0f} % class-incremental accuracy for BI-R "
             "with no stored data, about twice the conventional continual-learning methods.")
    if "bir" not in methods:
        return intro + " BI-R did not run in this experiment, so the claim is not tested here."
    bir = methods["bir"]
    mean, se = bir["average_accuracy_mean"], bir["average_accuracy_se"]
    spread = (f"mean ± standard error over {seeds} seeds" if seeds > 1
              else "one seed, so no standard error")
    parts = [intro,
             f"Here, on {devices}, BI-R reaches {_pct(mean, se)} ({spread}), "
             f"{_against_claim(mean, se)}.",
             _ratio_sentence(mean, best_conventional(methods, "average_accuracy_mean"), "")]
    if "joint" in methods:
        joint = methods["joint"]
        gap = 100 * (joint["average_accuracy_mean"] - mean)
        relation = (f"{gap:.1f} points above BI-R" if gap >= 0.05 else
                    f"{-gap:.1f} points below BI-R" if gap <= -0.05 else "level with BI-R")
        parts.append(f"Joint training on all data seen so far, the ceiling, reaches "
                     f"{_pct(joint['average_accuracy_mean'], joint['average_accuracy_se'])}, "
                     f"{relation}.")
    else:
        parts.append("Joint training (the ceiling) did not run.")
    device = hardware["methods"] if hardware else {}
    if hardware and "bir" in device:
        on_chip = device["bir"]
        parts.append(
            f"Programmed onto simulated RRAM chips ({hardware['chip']}, {hardware['mode']}; "
            f"{on_chip['chip_instances']} chip instances), BI-R keeps "
            f"{_pct(on_chip['device_accuracy_mean'], on_chip['device_accuracy_se'])} on the "
            "devices.")
        parts.append(_ratio_sentence(on_chip["device_accuracy_mean"],
                                     best_conventional(device, "device_accuracy_mean"),
                                     " on the same devices", name_them=False))
    return " ".join(parts)
