"""The metrics log (metrics.jsonl) across resumes."""

import json

import pytest

from vos_jax.training.writers import MetricWriter, read_metrics


def test_metric_log_drops_redone_steps_on_resume(tmp_path):
    writer = MetricWriter(tmp_path, start_step=0)
    for step in range(1, 6):
        writer.write(step, {"loss": 1.0 / step, "lr": 0.1})
    writer.write(6, {"loss": float("nan"), "lr": 0.1})
    writer.close()
    assert read_metrics(tmp_path)[-1]["loss"] == "nan"  # JSON has no NaN: written as a string
    MetricWriter(tmp_path, start_step=3).close()  # resumed from the checkpoint of step 3
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    replaced = (tmp_path / "metrics.jsonl.replaced").read_text().splitlines()
    assert [json.loads(line)["step"] for line in replaced] == [4, 5, 6]


def test_a_torn_last_line_is_dropped_and_a_bad_line_elsewhere_named(tmp_path, caplog):
    writer = MetricWriter(tmp_path, start_step=0)
    for step in (1, 2):
        writer.write(step, {"loss": 0.5})
    writer.close()
    log = tmp_path / "metrics.jsonl"
    with open(log, "a") as f:
        f.write('{"step": 3, "lo')  # killed while writing step 3's record
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    MetricWriter(tmp_path, start_step=2).close()  # resumed from step 2
    assert "torn last line" in caplog.text
    assert log.read_text().splitlines() == [json.dumps({"step": s, "loss": 0.5}) for s in (1, 2)]
    log.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a metrics record"):
        MetricWriter(tmp_path, start_step=2)
