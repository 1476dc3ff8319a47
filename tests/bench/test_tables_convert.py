"""bench.tables' conversion tables pick the right records and cells."""
from bench import records, tables


def _record(step, date, figures, **config):
    base = {"name": "net", "time_steps": 4, "step": step, "percentile": 99.9, "initial_potential": 0.5,
            "schedule": "all", "epochs": 2, "quantized_epochs": 0}
    return records.write("conversion", figures, dict(base, **config), path=None, command="test", date_utc=date)


def _zero_shot(date="2026-01-01T00:00:00Z", ann=10.0):
    rows = [{"method": "ann", "val_error": ann}]
    for v0, offset in ((0.0, 50.0), (0.5, 20.0)):
        rows.append({"method": "converted", "percentile": None, "initial_potential": v0, "val_error": 80.0 + v0})
        for p in (99.0, 99.9):
            rows.append({"method": "calibrated", "percentile": p, "initial_potential": v0,
                         "val_error": offset + (1.5 if p == 99.9 else 0.25)})
    return _record("zero_shot", date, {"rows": rows, "ann_error": ann})


def _finetune(schedule, error, date="2026-01-02T00:00:00Z", **config):
    figures = {"ann_error": 10.0, "start_error": 21.0, "val_error": error, "per_epoch": [],
               "train_wall_s": 600.0, "train_cpu_s": 300.0, "steps": 100, "examples_seen": 45000}
    return _record("finetune", date, figures, schedule=schedule, **config)


def test_summary_row_takes_the_fine_tuning_calibration_and_latest_records():
    rs = [_zero_shot("2025-01-01T00:00:00Z", ann=99.0), _zero_shot(), _finetune("all", 12.5),
          _finetune("progressive", 11.25), _finetune("all", 11.0, quantized_epochs=1)]
    text, used = tables.conversion(rs)
    row = text.splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["net", "4", "10.00%", "80.00%", "51.50%", "21.50%"]
    assert cells[6].startswith("**12.50%** (1.0 epochs, 10.0 min)")
    assert cells[7].startswith("**11.25%**")
    assert len(used) == 3 and used[0]["figures"]["ann_error"] == 10.0   # the latest zero-shot record
    finetune, used = tables.conversion_finetune(rs)
    assert len(used) == 3 and "quantized mode 1 epoch, then tandem" in finetune
    zero, _ = tables.conversion_zero_shot(rs)
    assert zero.count("| net ") == 2 and "| p99.9 " in zero.splitlines()[0] + " "


def test_finetune_table_keeps_one_row_per_budget_and_the_summary_the_latest():
    rs = [_zero_shot(), _finetune("all", 12.5, epochs=2),
          _finetune("all", 11.0, date="2026-01-03T00:00:00Z", epochs=8),
          _finetune("all", 13.0, date="2026-01-01T12:00:00Z", epochs=2)]   # older, same budget
    finetune, used = tables.conversion_finetune(rs)
    assert sorted(r["figures"]["val_error"] for r in used) == [11.0, 12.5]
    assert "**11.00%**" in finetune and "**12.50%**" in finetune and "13.00%" not in finetune
    text, _ = tables.conversion(rs)
    assert "**11.00%**" in text.splitlines()[2] and "12.50%" not in text


def test_zero_shot_defaults_and_negative_spikes_are_their_own_rows_and_keep_the_summary():
    """A zero-shot record with --negative_spikes does not replace the 0/1 one (nor enter the
    summary, which compares 0/1 conversions); tk.convert's defaults and their quantized ANN
    are a column of both of its rows."""
    signed = _zero_shot("2026-01-05T00:00:00Z", ann=10.0)
    signed["config"]["negative_spikes"] = True
    for row in signed["figures"]["rows"][1:]:
        row["negative_spikes"] = True
    signed["figures"]["rows"].insert(1, {"method": "default", "val_error": 29.5, "quantized_error": 24.25})
    rs = [_zero_shot(), signed, _finetune("all", 12.5)]
    zero, used = tables.conversion_zero_shot(rs)
    assert len(used) == 2
    lines = zero.splitlines()
    assert "spikes" in lines[0] and "tk.convert's defaults" in lines[0]
    signed_rows = [line for line in lines[2:] if "-1/0/1" in line]
    assert len(signed_rows) == 2
    assert all("29.50% (its quantized ANN 24.25%)" in line for line in signed_rows)
    assert "21.50%" in signed_rows[1]   # V(0) = 0.5 theta, p99.9
    text, used = tables.conversion(rs)
    assert len(used) == 2 and "-1/0/1" not in text and "29.50%" not in text
    one = tables.conversion_record_table(signed)
    [default] = [line for line in one.splitlines() if "tk.convert's defaults" in line]
    assert "29.50% (its quantized ANN 24.25%)" in default
    assert "V(0)=0.5θ, negative spikes" in one
