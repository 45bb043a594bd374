"""The metrics log (metrics.jsonl) across resumes."""

import json

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
