"""Train a model as a config file says; restarting in the same workdir resumes.

python train.py --config vos_jax/configs/<family>_<dataset>.py[:runlocal] --workdir DIR \
    [--config.key=value]

Writes DIR/metrics.jsonl, DIR/tensorboard/, DIR/checkpoints/ (last N + best by val J&F) and, at
the end, DIR/models/step_<N>/ (a published checkpoint for eval.py --checkpoint). Exit status 0 on
success or after SIGTERM (a checkpoint is saved), 1 on an error (one `error:` line).
"""

import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from vos_jax.training.config import ConfigError
from vos_jax.training.loop import NonFiniteLoss, train

config_flags.DEFINE_config_file("config", None, "Python config file (vos_jax/configs/*.py[:arg]).")
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and the final model.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every file it writes
    try:
        summary = train(flags.FLAGS.config, flags.FLAGS.workdir)
    except (ConfigError, NonFiniteLoss, FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    print(
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
    )


if __name__ == "__main__":
    app.run(main)
