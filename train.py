"""Train a model as a config file says; restarting in the same workdir resumes.

python train.py --config vos_jax/configs/<family>_<dataset>.py[:runlocal] --workdir DIR \
    [--config.key=value] [--restore=exact|compatible|fresh]

Writes DIR/metrics.jsonl, DIR/tensorboard/, DIR/checkpoints/ (last N + best by val J&F),
DIR/config.json and, at the end, DIR/models/step_<N>/ (a published checkpoint for eval.py
--checkpoint). One run at a time holds DIR (a second one is refused with the first one's PID).

Exit status: 0 on success or after SIGTERM (a checkpoint is saved); 130 after Ctrl-C (a checkpoint
is saved; a second Ctrl-C stops at once); 2 on bad input (a config key or value, a workdir in use
or holding checkpoints of another config); 1 when training fails (a non-finite loss, a full
disk). Every error is one `error:` line.
"""

import errno
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from vos_jax.training.checkpointing import DiskFull
from vos_jax.training.config import ConfigError
from vos_jax.training.loop import RESTORE_MODES, NonFiniteLoss, train

config_flags.DEFINE_config_file("config", None, "Python config file (vos_jax/configs/*.py[:arg]).")
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and the final model.")
flags.DEFINE_enum(
    "restore",
    "exact",
    list(RESTORE_MODES),
    "exact: resume (checkpoints of another config's state are refused); compatible: restore the "
    "arrays that fit, the rest fresh; fresh: start at step 0, the earlier run moved to "
    "DIR/previous_runs/.",
)
flags.mark_flags_as_required(["config", "workdir"])


def _fail(code: int, message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with one-line errors: a mistyped --config.<key> raises deep inside
    ml_collections (a 50-line traceback); here it names the flag and the key."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        _fail(2, str(err).splitlines()[0])
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
        lines = [line.strip(" '\"\\") for line in str(err).replace("\\n", "\n").splitlines()]
        reason = "; ".join(line for line in lines if line)
        named = [o for o in overrides if any(o.rsplit(".", 1)[-1] in line for line in lines)]
        flag = named[0] if named else "--config"
        _fail(2, f"{flag}: not a key of the config or a bad value ({reason})")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every file it writes
    try:
        summary = train(flags.FLAGS.config, flags.FLAGS.workdir, flags.FLAGS.restore)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        _fail(2, str(err))
    except (NonFiniteLoss, DiskFull) as err:
        _fail(1, str(err) if not isinstance(err, OSError) else f"{err.filename}: {err.strerror}")
    except KeyboardInterrupt:
        _fail(130, "interrupted (Ctrl-C twice): the last saved checkpoint is kept")
    except OSError as err:  # an unwritable or full workdir
        if err.errno == errno.ENOSPC:
            _fail(1, f"{err.filename or flags.FLAGS.workdir}: no space left on device")
        _fail(2 if err.errno in (errno.EACCES, errno.EROFS, errno.ENOTDIR) else 1,
              f"{err.filename or flags.FLAGS.workdir}: {err.strerror}")  # fmt: skip
    stopped = summary.pop("stopped", None)
    print(
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
    )
    if stopped == "SIGINT":
        sys.exit(130)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
