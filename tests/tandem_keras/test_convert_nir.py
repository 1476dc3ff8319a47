"""A converted model with the initial potential exports to NIR: the NumPy interpreter of the
graph (tests/_nir_numpy.py, v_initial from the nodes' metadata) reproduces its spikes and
logits."""
import keras
import numpy as np
import pytest

nir = pytest.importorskip("nir")

import tandem_keras as tk  # noqa: E402
from tests import _nir_numpy  # noqa: E402
from tests.tandem_keras.test_convert_reference import residual_ann  # noqa: E402
from tests.tandem_keras.test_nir import _keras_spikes, _neuron_layers  # noqa: E402


@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_converted_residual_net_in_nir(tmp_path, v0):
    ann = residual_ann()
    x = np.random.default_rng(6).normal(0.5, 1.0, (32, 6, 6, 2)).astype("float32")
    snn = tk.convert(ann, time_steps=4, calibration_data=x, percentile=99.0,
                     neuron=tk.neurons.IF(initial_potential=v0))
    path = tmp_path / "converted.nir"
    tk.export_nir(snn, path)
    graph = nir.read(str(path))
    names = _neuron_layers(snn)
    assert names == ["conv1", "add", "dense3"]
    for name in names:
        v_initial = graph.nodes[name + "_if"].metadata.get("v_initial", 0.0)
        np.testing.assert_allclose(v_initial, v0 * snn.get_layer(name).threshold, rtol=1e-6)
    values, near = _nir_numpy.run(graph, tk.encode_for_nir(snn, x))
    spikes = _keras_spikes(snn, x, names)
    for name in names:
        assert spikes[name].sum() > 10, name
        assert int(np.sum(values[name + "_if"] != spikes[name])) <= near[name + "_if"], name
    logits = values["output"].sum(axis=0)
    np.testing.assert_allclose(logits, snn.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
