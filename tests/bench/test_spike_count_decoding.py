"""bench.spike_count_decoding on a generated image folder: one variant trained by the shared
recipe, its figures checked against the model's own predictions, and its table row."""
import numpy as np

from bench import records, tables
from bench import spike_count_decoding as scd
from bench.cifar10_budgets import load_data, make_config
from tests.bench.test_reproduce_cifar10 import _image_folder


def test_a_variant_is_measured_under_both_decision_rules_and_tabled(tmp_path):
    config = make_config("tiny", _image_folder(tmp_path / "images"), width_divisor=32)
    data = load_data(config)
    figures, model = scd.run_variant(config, data, "paper", time_steps=2)
    assert figures["data"] == {"train": 48, "validation": 6, "test": 0}
    assert len(figures["train_loss"]) == len(figures["train_accuracy"]) == config.epochs
    logits = np.asarray(model(data["x_val"], training=False))
    counts = np.round(logits)  # the paper's readout: logits are the spike counts (scale 1)
    assert figures["val"]["error"] == np.mean(np.argmax(logits, 1) != data["y_val"])
    assert figures["val"]["tie_fraction"] == np.mean([(c == c.max()).sum() > 1 for c in counts])
    assert figures["val"]["all_silent_fraction"] == np.mean(counts.max(1) == 0)
    tied = scd.membrane_rule_logits(model, data["x_val"], 16)  # c + g(V_end), g in (0, 1)
    np.testing.assert_array_equal(np.floor(tied + 1e-4), counts)
    assert figures["val_membrane_tie_rule_error"] == np.mean(np.argmax(tied, 1) != data["y_val"])
    record = records.make("spike_count_decoding", figures, {"budget": "tiny", "epochs": 1})
    [row] = [[c.strip() for c in line.strip("|").split("|")]
             for line in tables.spike_count_decoding([record])[0].splitlines()[2:]]
    assert row[:6] == ["tiny, 1 ep", "2", "spike count, the paper's", f"{100 * figures['val']['error']:.2f}%",
                       f"{100 * figures['val']['error_count_index_rule']:.2f}%",
                       f"{100 * figures['val_membrane_tie_rule_error']:.2f}%"]
