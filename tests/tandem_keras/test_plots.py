"""Plots are written as valid, non-blank PNG files."""
import numpy as np
import pytest

from tandem_keras import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path, min_bytes=5000):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes
    import matplotlib.pyplot as plt

    image = plt.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # something was drawn


def test_all_plots(tmp_path):
    rng = np.random.default_rng(0)
    report = {"inference_time_steps": 16, "layers": [
        {"name": "encoder", "avg_spike_count": 1.5}, {"name": "conv1", "avg_spike_count": 0.7},
        {"name": "logits", "avg_spike_count": None}]}
    report5 = {"inference_time_steps": 11, "layers": [
        {"name": "encoder", "avg_spike_count": 0.9}, {"name": "conv1", "avg_spike_count": 0.3}]}
    _check_png(plots.plot_spike_counts([report, report5], str(tmp_path / "fig11.png")))
    trains = {"encoder": (rng.random((4, 6, 6, 3)) < 0.3).astype("float32"),
              "dense": (rng.random((4, 20)) < 0.2).astype("float32")}
    _check_png(plots.plot_spike_raster(trains, str(tmp_path / "raster.png")))
    counts = {k: v.sum(0) for k, v in trains.items()}
    _check_png(plots.plot_count_maps(counts, str(tmp_path / "sub" / "maps.png"),
                                     ann_counts={"encoder": counts["encoder"] + 0.3},
                                     time_steps=4))
    _check_png(plots.plot_error_vs_time_steps([10, 1, 5], [9.9, 12.0, 10.5],
                                              str(tmp_path / "fig8b.png")))
    preservation = {"conv1": {"angle_deg": rng.uniform(10, 30, 16), "pcc": rng.uniform(.8, 1, 16)},
                    "dense": {"angle_deg": np.full(16, np.nan), "pcc": None}}
    _check_png(plots.plot_direction_preservation(preservation, str(tmp_path / "fig9.png")))
    _check_png(plots.plot_representation_error(
        [{"name": "a", "mean_abs_diff": 0.0}, {"name": "b", "mean_abs_diff": 0.4}],
        str(tmp_path / "fig7c.png")))


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="as many errors"):
        plots.plot_error_vs_time_steps([1, 2], [3.0], str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="count map"):
        plots.plot_count_maps({"dense": np.zeros(4)}, str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="no spiking layer"):
        plots.plot_spike_counts({"layers": [{"name": "a", "avg_spike_count": None}]},
                                str(tmp_path / "x.png"))


def test_reproduction_plots(tmp_path):
    """The figures of bench.reproduce_cifar10: Fig. 8A/8B curves, Fig. 7C lines, Table II."""
    _check_png(plots.plot_error_curves({"ANN": [50.0, 45.0], "SNN": [55.0, 48.0]},
                                       str(tmp_path / "fig8a.png")))
    _check_png(plots.plot_error_curves({"tandem": {1: 60.0, 2: 55.0, 8: 54.0}},
                                       str(tmp_path / "fig8b.png"), xlabel="T", log2_x=True))
    rows = [{"name": "a", "mean_abs_diff": 0.0}, {"name": "b", "mean_abs_diff": 0.4}]
    _check_png(plots.plot_representation_error({"T=2": rows, "T=4": rows[::-1]},
                                               str(tmp_path / "fig7c.png")))
    report = {"synops_ann": 100.0, "encoder_macs": 10.0, "synops_ratio": 0.3,
              "synops_ratio_with_encoder": 0.4,
              "layers": [{"name": "encoder", "synops": 20.0, "avg_spike_count": 0.5, "ann_macs": 10.0},
                         {"name": "conv1", "synops": 10.0, "avg_spike_count": 0.2, "ann_macs": 60.0},
                         {"name": "logits", "synops": 0.0, "avg_spike_count": None, "ann_macs": 30.0}]}
    _check_png(plots.plot_synops({4: report, 8: report}, str(tmp_path / "table2.png")))
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_error_curves({}, str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_synops({}, str(tmp_path / "x.png"))
