"""The report: the opening paragraph against the published claim, the device section's overlap
measures, and the self-contained HTML page rendered in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birram.headline import headline
from birram.report_html import render
from birram.rram.separability import neighbour_confusion, overlap_coefficient


def summary(accuracies: dict[str, tuple[float, float | None]], seeds: int = 3,
            protocol: str = "rram-compliance", scenario: str = "class") -> dict:
    return {"protocol": protocol, "scenario": scenario, "seeds": list(range(1, seeds + 1)),
            "methods": {name: {"average_accuracy_mean": mean, "average_accuracy_se": se}
                        for name, (mean, se) in accuracies.items()}}


# --- the opening paragraph -------------------------------------------------------------------

def test_headline_above_the_claim_states_the_run_numbers():
    text = headline(summary({"none": (0.196, 0.0), "si": (0.197, 0.001), "bir": (0.915, 0.003),
                             "joint": (0.928, 0.002)}))
    assert "91.5 ± 0.3 %" in text and "2.5 points above the published figure" in text
    assert "4.6 times the best conventional method (si, 19.7 %" in text
    assert "more than the published factor" in text
    assert "reaches 92.8 ± 0.2 %, 1.3 points above BI-R" in text
    assert "3 seeds" in text


def test_headline_below_the_claim_says_so():
    text = headline(summary({"ewc": (0.60, 0.02), "bir": (0.70, 0.05), "joint": (0.65, 0.01)},
                            seeds=1))
    assert "19.0 points below the published figure" in text and "above the published" not in text
    assert "1.2 times the best conventional method (ewc, 60.0 %" in text
    assert "less than the published factor" in text
    assert "5.0 points below BI-R" in text
    assert "one seed, so no standard error" in text


def test_headline_within_two_standard_errors_and_about_the_factor():
    text = headline(summary({"lwf": (0.45, 0.01), "bir": (0.88, 0.01)}))
    assert "1.0 points below the published figure (within two standard errors)" in text
    assert "2.0 times" in text and "about the published factor of two" in text
    assert "Joint training (the ceiling) did not run" in text


def test_headline_without_bir_or_conventional_methods_or_elsewhere():
    assert "BI-R did not run" in headline(summary({"none": (0.2, 0.0)}))
    assert "factor is not tested" in headline(summary({"bir": (0.9, 0.01)}))
    assert headline(summary({"bir": (0.9, 0.01)}, protocol="split-fashion")) is None
    assert headline(summary({"bir": (0.9, 0.01)}, scenario="task")) is None
    regression = {**summary({"bir": (0.9, 0.01)}), "target": "log10-icc"}
    assert headline(regression) is None


def test_headline_reports_accuracy_on_the_chip():
    hardware = {"chip": "rram-4bit", "mode": "program-after-task", "methods": {
        "none": {"device_accuracy_mean": 0.19, "device_accuracy_se": 0.001,
                 "chip_instances": 5},
        "bir": {"device_accuracy_mean": 0.883, "device_accuracy_se": 0.006,
                "chip_instances": 5}}}
    text = headline(summary({"none": (0.196, 0.0), "bir": (0.915, 0.003)}), hardware)
    assert "BI-R keeps 88.3 ± 0.6 % on the devices" in text
    assert "4.6 times the best conventional method on the same devices (none, 19.0 %)" in text


# --- overlap measures ------------------------------------------------------------------------

samples = st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=50).map(np.array)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(samples, samples)
def test_overlap_is_symmetric_and_a_fraction(a, b):
    value = overlap_coefficient(a, b)
    assert 0.0 <= value <= 1.0 + 1e-12
    assert value == pytest.approx(overlap_coefficient(b, a))
    assert overlap_coefficient(a, a) == pytest.approx(1.0)


def test_overlap_separates_disjoint_and_matches_gaussians():
    rng = np.random.default_rng(0)
    assert overlap_coefficient(rng.normal(0, 1, 4000), rng.normal(20, 1, 4000)) == 0.0
    # two unit Gaussians one sigma apart share 2 * Phi(-1/2) = 61.7 % of their area
    shared = overlap_coefficient(rng.normal(0, 1, 40000), rng.normal(1, 1, 40000))
    assert shared == pytest.approx(0.617, abs=0.03)


def test_neighbour_confusion_averages_both_directions():
    conf = np.array([[8, 2, 0], [4, 6, 0], [0, 0, 10]])
    np.testing.assert_allclose(neighbour_confusion(conf), [(0.2 + 0.4) / 2, 0.0])


def test_level_confusions_follow_the_levels_whatever_the_class_order():
    from birram.device_report import level_confusions
    from birram.run import SeedResult

    names = ["10uA", "100uA", "1mA"]
    conf = np.array([[8, 2, 0], [4, 6, 0], [0, 0, 10]])  # in level order
    reverse = [2, 1, 0]
    result = SeedResult("joint", 1, np.eye(3), np.zeros(3),
                        {"output_names": [names[i] for i in reverse]}, 1.0, 1.0,
                        conf[np.ix_(reverse, reverse)])
    np.testing.assert_allclose(level_confusions([result], "joint", names), [0.3, 0.0])
    assert level_confusions([result], "bir", names) is None


# --- the HTML page ---------------------------------------------------------------------------

def test_html_embeds_figures_and_escapes_raw_html(tmp_path):
    import matplotlib.pyplot as plt

    from birram.report import save_figure
    from birram.report_html import data_uri

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    save_figure(fig, tmp_path / "a.png")
    page = render("# T <b>\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n![a](a.png)\n\n<script>x</script>",
                  tmp_path)
    assert data_uri(tmp_path / "a.png") in page and 'src="a.png"' not in page
    assert "<table>" in page and "<td>1</td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<title>T &lt;b&gt;</title>" in page


TINY_RRAM = {"n_levels": 4, "n_train_devices": 6, "n_test_devices": 2, "cycles": 1,
             "trace_points": 16, "sweep_step_v": 0.01}
CHECK_IMAGES = """<script>
window.addEventListener('load', function () {
  var out = document.createElement('pre');
  out.id = 'image-check';
  out.textContent = JSON.stringify(Array.prototype.map.call(document.images, function (im) {
    return {alt: im.alt, loaded: im.complete && im.naturalWidth > 0}; }));
  document.body.appendChild(out);
});
</script>"""


def images_loaded(page, tmp_path) -> list[dict]:
    """Open ``page`` in headless Chromium; per image, whether it decoded (naturalWidth > 0)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the HTML report test needs Chromium: apt-get install -y chromium"
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_IMAGES + "\n</body>"), encoding="utf-8")
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom, re.S)
    assert found, f"the page did not finish loading: {dom[-300:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def tiny_rram_run(tmp_path_factory):
    from birram.config import resolve
    from birram.run import run_experiment

    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIRRAM_CACHE", str(root / "cache"))
        cfg = resolve(None, {
            "methods": ["none", "bir", "joint"], "seeds": [1], "scenario": "class",
            "data": {"protocol": "rram-compliance", "n_tasks": 2, "rram": TINY_RRAM},
            "train": {"iters": 20, "hidden": [16], "threads": 1},
            "method": {"z_dim": 3}})
        run_experiment(cfg, root / "run")
    return root / "run"


def test_rram_report_opens_with_the_claim_then_devices_then_learning(tiny_rram_run):
    text = (tiny_rram_run / "report.md").read_text()
    summary_json = json.loads((tiny_rram_run / "summary.json").read_text())
    bir = 100 * summary_json["methods"]["bir"]["average_accuracy_mean"]
    heads = [text.index(h) for h in ("**Result against the published claim.**",
                                     "## The simulated devices", "## Learning results")]
    assert heads == sorted(heads)
    assert f"BI-R reaches {bir:.1f} %" in text
    for figure in ("devices_iv.png", "devices_features.png", "devices_overlap.png"):
        assert f"]({figure})" in text and (tiny_rram_run / figure).stat().st_size > 0
    # 4 levels: 3 neighbouring pairs in the overlap table, with Joint's and BI-R's confusion
    assert len(re.findall(r"^\| [\d.]+ [um]A vs [\d.]+ [um]A \|", text, re.M)) == 3
    assert "Joint confuses %" in text and "BI-R confuses %" in text


def test_curves_are_the_datasets_first_cycles(tmp_path, monkeypatch):
    from birram.device_report import simulate_curves
    from birram.rram.dataset import RRAMDatasetConfig, load_rram_samples

    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path))
    cfg = RRAMDatasetConfig(**{**TINY_RRAM, "cycles": 2})
    samples = load_rram_samples(cfg)
    volts, currents, r_lrs = simulate_curves(cfg, per_level=3)
    assert currents.shape == (4, 3, volts.size) and np.abs(currents).max() > 0
    first = (samples.cycle == 0) & (samples.device_ids < 3)
    expected = np.exp(samples.features[first, 0]).reshape(4, 3)  # level-major, then device
    np.testing.assert_allclose(r_lrs, expected, rtol=1e-6)


def test_html_report_shows_every_figure_in_chromium(tiny_rram_run, tmp_path):
    page = (tiny_rram_run / "report.html").read_text(encoding="utf-8")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (tiny_rram_run / "report.md").read_text())
    assert len(figures) == 6
    assert page.count('src="data:image/png;base64,') == len(figures)
    images = images_loaded(page, tmp_path)
    assert len(images) == len(figures)
    assert all(image["loaded"] for image in images), images


def test_chromium_check_sees_a_broken_image(tmp_path):
    page = render("# broken\n\n![nothing here](missing.png)\n", tmp_path)
    assert images_loaded(page, tmp_path) == [{"alt": "nothing here", "loaded": False}]
