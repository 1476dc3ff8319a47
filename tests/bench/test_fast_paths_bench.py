"""The benchmarks' MAC counts and compute bounds against hand-computed values."""

import pytest

from bench import harness


def test_layer_macs_and_bounds_hand_computed():
    # widths 2, 4, 8, 16, 8; dense 16
    model = harness.compiled_network("cifarnet_w64", time_steps=2, mode="tandem", compiled=False)
    rows = {r["layer"]: r for r in harness.layer_macs(model)}
    expected = {
        "encoder_conv": 32 * 32 * 9 * 3 * 2,     # 32x32 out, 3x3x3 -> 2
        "tandem_conv1": 16 * 16 * 9 * 2 * 4,     # stride 2
        "tandem_conv2": 8 * 8 * 9 * 4 * 8,       # stride 2
        "tandem_conv3": 8 * 8 * 9 * 8 * 16,
        "tandem_conv4": 8 * 8 * 9 * 16 * 8,
        "tandem_dense1": 8 * 8 * 8 * 16,
        "logits": 16 * 10,
    }
    assert {k: r["macs"] for k, r in rows.items()} == expected
    assert [k for k, r in rows.items() if r["spiking"]] == [
        "tandem_conv1", "tandem_conv2", "tandem_conv3", "tandem_conv4", "tandem_dense1"]
    total, spiking = 247968, 192512
    backward = 2 * total - 55296
    bounds = harness.compute_bounds(harness.layer_macs(model), 2)
    assert bounds["macs_forward"] == total and bounds["macs_spiking"] == spiking
    assert bounds["bound_issue"] == pytest.approx((total + 2 * spiking + backward) / (total + backward))
    assert bounds["bound_shared"] == pytest.approx(881120 / 688608)
    assert harness.compute_bounds(harness.layer_macs(model), 1)["bound_shared"] == pytest.approx(1.0)


def test_benchmark_networks_are_models_by_name_with_an_optional_width_divisor():
    assert harness.is_network("cifarnet") and harness.is_network(["cifarnet_w4", "alexnet_cifar"])
    for bad in ("resnet99", "cifarnet_w0", "cifarnet_w", "cifarnet_wide", ""):
        assert not harness.is_network(bad), bad
    with pytest.raises(ValueError, match="unknown network 'cifarnet_w0'"):
        harness.compiled_network("cifarnet_w0", time_steps=2, mode="tandem", compiled=False)
    model = harness.compiled_network("cifarnet_w64", time_steps=2, mode="ann")
    assert model.name == "cifarnet_w64" and model.get_layer("tandem_conv1").filters == 256 // 64
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)  # constant: no schedule
