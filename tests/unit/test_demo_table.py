"""The demo table's apology-lean row: probabilities in significant digits, the paired interval beside."""

from sftflow.pipeline.demo_table import rows


def test_apology_lean_row():
    metrics = {"openings": {"apology": {"base": {"mean": 0.0041572}, "tuned": {"mean": 1.508e-06},
                                        "paired": {"diff": -0.0041557, "diff_low": -0.0117, "diff_high": -0.00229,
                                                   "n": 40}}}}
    row = next(r for r in rows(metrics) if r[0] == "P(opens with an apology)")
    assert row == ("P(opens with an apology)", "0.0042", "1.5e-06", "-", "-0.0042 [-0.012, -0.0023]")
    assert all(r[0] != "P(opens with an apology)" for r in rows({}))      # not measured: no row
