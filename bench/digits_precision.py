"""Accuracy of tandem training in float32 vs mixed_bfloat16 on scikit-learn's digits.

Trains ``models.digits`` (tandem mode) from the same initial weights under both dtype
policies, for every seed, and reports the SNN's test accuracy (inference: moving BN
statistics, IF dynamics) and the training time per epoch, side by side.

    python -m bench.digits_precision                    # 3 seeds, 15 epochs, T=4
    python -m bench.digits_precision --seeds=0 --epochs=5

Appends a ``bench.records`` record (``bench/results/records.jsonl``) and prints its table
(``bench.tables_perf.digits_table``).
"""
from __future__ import annotations

import time

from bench import _common
from bench._common import flags, keras, np
from bench.tables_perf import digits_table

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1", "2"], "Initialization / shuffling seeds.")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
flags.DEFINE_integer("epochs", 15, "Training epochs.")
flags.DEFINE_integer("batch", 64, "Batch size.")
flags.DEFINE_integer("time_steps", 4, "T.")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")


def digits_split():
    """sklearn digits as [0, 255] images; a fixed 75/25 stratified train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images[..., None] * (255.0 / 16.0)).astype(np.float32)
    return train_test_split(images, data.target.astype(np.int32), test_size=0.25, random_state=0,
                            stratify=data.target)


def main(argv) -> None:
    del argv
    from models.digits import digits

    x_train, x_test, y_train, y_test = digits_split()
    rows = []
    for seed in map(int, FLAGS.seeds):
        keras.utils.set_random_seed(seed)
        initial = digits(time_steps=FLAGS.time_steps).get_weights()
        for policy in FLAGS.policies:
            keras.mixed_precision.set_global_policy(policy)
            model = digits(time_steps=FLAGS.time_steps)
            keras.mixed_precision.set_global_policy("float32")
            model.set_weights(initial)
            _common.compile_model(model)
            keras.utils.set_random_seed(seed + 1000)  # same shuffling for both policies
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=FLAGS.batch, epochs=FLAGS.epochs, verbose=0)
            seconds = time.perf_counter() - start
            accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)["top1"]
            rows.append({"seed": seed, "policy": policy, "test_accuracy": accuracy,
                         "train_s_per_epoch": seconds / FLAGS.epochs})
            print(f"seed {seed}, {policy}: test accuracy {100 * accuracy:.2f}%, "
                  f"{seconds / FLAGS.epochs:.2f} s per epoch", flush=True)
    mean = {p: sum(r["test_accuracy"] for r in rows if r["policy"] == p) / len(FLAGS.seeds)
            for p in FLAGS.policies}
    _common.finish("digits_precision", {"rows": rows, "mean_accuracy": mean, "epochs": FLAGS.epochs,
                                        "time_steps": FLAGS.time_steps}, digits_table, FLAGS.out)


if __name__ == "__main__":
    _common.run(main)
