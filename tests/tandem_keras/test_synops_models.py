"""ANN MACs and inference time steps of the registered paper models (models/), hand-computed.

The MAC totals are derived layer by layer in tests/tandem_keras/test_synops.py (Eq. 14, fan-in x
neurons, all convolutions "same", method §7). Inference time steps = T + spiking layers
(method §5): the paper says CIFARNet 10 + 6 = 16 and AlexNet 10 + 8 = 18; these models have
6 (AlexNet CIFAR-10) and 7 (AlexNet ImageNet) spiking layers, so 16 and 17.
"""
import pytest

from tandem_keras import activity

models = pytest.importorskip("models", reason="models/ is not available")

CASES = [
    # name, ANN MACs, spiking layers (encoder + tandem)
    ("cifarnet", 792_078_336, 6),
    ("alexnet_cifar", 274_245_632, 6),
    ("alexnet_imagenet", 1_140_099_072, 7),
]


@pytest.mark.parametrize("name,macs,spiking", CASES)
def test_registered_models(name, macs, spiking):
    description = activity.describe_model(models.build(name, time_steps=10))
    assert sum(r["macs"] for r in description["layers"]) == macs
    assert description["spiking_depth"] == spiking
    assert description["inference_time_steps"] == 10 + spiking
    rows = description["layers"]
    assert [r["kind"] for r in rows] == ["encoder"] + ["tandem"] * (spiking - 1) + ["readout"]
    # Every spiking layer's spikes reach exactly the next weighted layer.
    for row, following in zip(rows[:-1], rows[1:]):
        assert [s["layer"] for s in row["fanout_specs"]] == [following["name"]]


def test_spike_count_decoding_adds_a_spiking_layer():
    description = activity.describe_model(models.build("cifarnet", time_steps=10,
                                                     decode="spike_count"))
    assert description["inference_time_steps"] == 17  # paper: 16 for both decodings
    assert description["layers"][-1]["kind"] == "tandem"
    assert description["layers"][-1]["fanout_specs"] == []
