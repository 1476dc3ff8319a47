"""bench.onednn: the per-setting medians, ratios and logits comparison, against hand-computed values."""
import numpy as np
import pytest

from bench import onednn
from bench.tables_perf import onednn_table
from tests.bench.test_records import cells


def run(setting, tandem, ann, cpu_scale=2.0):
    return {"setting": setting, "median_s": {"tandem": tandem, "ann": ann},
            "median_cpu_s": {"tandem": cpu_scale * tandem, "ann": cpu_scale * ann}}


def test_summary_is_the_median_of_each_settings_processes_and_the_off_over_on_ratio():
    runs = [run("0", 1.0, 0.40), run("1", 0.50, 0.30), run("1", 0.70, 0.20, cpu_scale=1.0),
            run("0", 3.0, 0.50), run("0", 1.4, 0.45), run("1", 0.60, 0.25)]
    for i, r in enumerate(runs):
        r["round"] = i // 2
    off = {"tandem": np.array([[0.0, 1.0], [2.0, 0.5]]), "ann": np.array([[1.0, 0.0], [0.0, 1.0]])}
    on = {"tandem": off["tandem"] + np.array([[0.0, 1e-6], [-3e-6, 0.0]]),
          "ann": np.array([[1.0, 0.0], [1.0, 0.0]])}
    figures = onednn.summarize(runs, {"0": off, "1": on}, ["tandem", "ann"], network="cifarnet_w4", T=4,
                                policy="float32", batch=32)
    tandem, ann = figures["rows"]
    assert (tandem["mode"], ann["mode"]) == ("tandem", "ann")
    assert tandem["median_s_0"] == pytest.approx(1.4) and tandem["median_s_1"] == pytest.approx(0.6)
    assert tandem["off_over_on"] == pytest.approx(1.4 / 0.6)
    # CPU medians: off 2.0, 2.8, 6.0 -> 2.8; on 1.0, 0.7, 1.2 -> 1.0
    assert tandem["cpu_off_over_on"] == pytest.approx(2.8 / 1.0)
    assert ann["off_over_on"] == pytest.approx(0.45 / 0.25)
    assert tandem["logits_max_abs_diff"] == pytest.approx(3e-6) and tandem["argmax_agreement"] == 1.0
    assert ann["argmax_agreement"] == 0.5
    table = cells(onednn_table({"figures": figures, "date_utc": "2026-12-04T06:30:00Z"}))
    # rounds: (1.0 off, 0.5 on), (0.7 on, 3.0 off), (1.4 off, 0.6 on): tandem ratios 2.0, 4.29, 2.33
    assert table[0][:10] == ["2026-12-04 06:30", "3", "cifarnet_w4", "4", "tandem", "1.400", "0.600", "**2.33**",
                             "2.00-4.29", "2.80"]
    assert table[1][-1] == "50.0%"
