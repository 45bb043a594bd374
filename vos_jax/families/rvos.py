"""RVOS as a family (Ventura et al., CVPR 2019; SPEC 2): options, variable init, training sample,
loss, the inference `(init, step)` pair and the official-weight importer, built on one
recurrence, `decode_frame` (every object slot of a frame in order, each slot's hidden states
carried to the next frame).

Training: a clip goes through the encoder (all frames at once) and the recurrence over frames (a
`lax.scan`, `decode_clip`, one backward pass through the whole clip as the official BPTT,
train_previous_inference_mask.py:152-162); each slot's sigmoid is scored with 1 - soft IoU against
its object (`losses.soft_iou_loss`, official utils/hungarian.py:62-85), every frame of the clip,
frame 0 included. `frame_losses`: a frame's loss is the mean over the (sample, object) pairs of
the batch that are valid in that frame (official `softIoULoss`, utils/objectives.py:25-35); the
clip's frame losses are summed (`frame_reduction="sum"`, train_previous_inference_mask.py:143-150)
or averaged (`"mean"`).

One-shot: slot k is object k. The previous mask of frame 0 is frame 0's own ground truth (official
`if ii == 0: prev_mask = y_mask`, train_previous_inference_mask.py:293-294); frame t in
1 .. `given_frames` takes the ground truth of frame t - 1; later frames take the model's sigmoid of
frame t - 1, without gradient (official `prev_mask = outs`, `outs = sigmoid(out_masks).data`,
:169-170, :305). The default `given_frames=1` (frame 1 also takes frame 0's ground truth) is
what inference does, as the official evaluation (eval_previous_mask.py:258-261; `propagator`),
not an official training recipe. The official recipes in these terms (imatge-upc/rvos scripts/):
- DAVIS 2017 (`train_one_shot_davis.sh`, `train_previous_inference_mask.py`): `given_frames=0`,
  clips of 5, batch 4, 240x427, Adam lr 1e-3 (encoder 1e-6), weight decay 1e-6, 20 epochs
  (configs/rvos_davis.py).
- YouTube-VOS (`train_one_shot_youtube.sh`), two stages of 20 epochs from ImageNet: stage 1
  `train_previous_mask.py` teaches with the ground truth of the previous frame everywhere
  (`prev_mask = y_mask`, train_previous_mask.py:303; `given_frames = num_frames - 1`), stage 2
  `train_previous_inference_mask.py --transfer` continues from its weights on its own outputs
  (`given_frames=0`) (configs/rvos_ytvos_stage1.py, rvos_ytvos_stage2.py).
Zero-shot (official train.py): slots are unordered proposals, matched to objects by the Hungarian
algorithm on the first frame's soft-IoU cost (train.py:119-157); the clip's other frames keep that
assignment, and each frame's validity is that of the reordered targets.

Where ours differs from the official code:
- Validity. A (sample, object) pair counts in a frame when the object is one of the clip's
  (`object_valid`: present in the clip's first frame, data/sampling.py) and has at least one pixel
  in that frame. The official DAVIS loader gives the same per-frame validity (the ids of each
  frame's own annotation, dataloader/dataset.py:234-238), but also scores objects that first
  appear later in the clip, which ours makes background. The official YouTube-VOS loader keeps
  every object of the video valid in every frame (dataset.py:221-233), so an absent object adds a
  cost of exactly 1 (no gradient) to its frame's mean; we leave it out, as on DAVIS. A frame
  with no valid pair adds 0 here, the mean of all its (constant 1) costs officially (no gradient
  either way).
- Zero-shot validity follows the targets through the Hungarian reordering; the official code
  leaves `sw_mask` in ground-truth order (train.py:165).
- Checkpoints: the official trainers keep the checkpoint of the best validation loss (evaluated
  every epoch, :347-352) and stop after 60 epochs without improvement; ours trains a fixed number
  of steps and keeps the best by validation J&F (training/checkpointing.py).
- Clips: the official clips start at frames 0, L, 2L, ... of each video, the same every epoch
  (dataloader/davis2017.py:135-150); ours start at random annotated frames (data/sampling.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vos_jax.convert import Converter
from vos_jax.convert import rvos as official
from vos_jax.data.pipeline import SampleConfig
from vos_jax.dtypes import accumulation_dtype
from vos_jax.families.options import Reduction, build, frames_after_given, require
from vos_jax.families.propagator import Prediction, Propagator
from vos_jax.losses import soft_iou_loss
from vos_jax.models.rvos import VARIANTS as VARIANTS
from vos_jax.models.rvos import Rvos, State, initial_state
from vos_jax.ops.assignment import hungarian

MODEL = Rvos
SAMPLING = "clip"
CITATION = (  # the paper a model card asks its users to cite
    "C. Ventura, M. Bellver, A. Girbau, A. Salvador, F. Marques, X. Giro-i-Nieto: RVOS: "
    "End-to-End Recurrent Network for Video Object Segmentation. CVPR 2019."
)
# The engine's background column: a pixel takes the most probable object whose sigmoid
# probability exceeds 0.5 (the official threshold), else background.
BACKGROUND_SCORE = 0.5


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    one_shot: bool = field(
        default=True, metadata={"help": "semi-supervised from first masks; False: zero-shot"}
    )


@dataclasses.dataclass(frozen=True)
class LossOptions:
    given_frames: int = field(
        default=1,
        metadata={
            "help": "frames 1..g take the ground truth of the frame before, later frames the "
            "model's own output (0: official DAVIS / YouTube stage 2; T - 1: YouTube stage 1)"
        },
    )
    # Official: each frame adds its loss (train_previous_inference_mask.py:143-150).
    frame_reduction: Reduction = field(
        default=Reduction.SUM,
        metadata={"help": "the clip's per-frame losses summed (official) or averaged"},
    )

    def __post_init__(self):
        require(self.given_frames >= 0, "given_frames", "an integer >= 0", self.given_frames)


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    max_objects: int = field(default=10, metadata={"help": "object slots (static shape)"})
    input_height: int = field(
        default=0, metadata={"help": "the height the model runs at (0: the frames')"}
    )
    input_width: int = field(
        default=0, metadata={"help": "the width the model runs at (0: the frames')"}
    )

    def __post_init__(self):
        require(self.max_objects >= 1, "max_objects", "an integer >= 1", self.max_objects)
        for key in ("input_height", "input_width"):
            value = getattr(self, key)
            require(value >= 0, key, "an integer >= 0 (0: the frames')", value)


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    checkpoint: str = field(
        metadata={"help": "official folder (encoder.pt + decoder.pt), or one .pt/.npz with both"}
    )
    decoder_prefix: str = field(
        default="decoder.", metadata={"help": "decoder entries' prefix in a combined file"}
    )


converter = Converter(
    official.convert,
    ImportOptions,
    "PyTorch's: symmetric conv padding (k // 2), ceil-mode 2x2 max-pooling of the masks, "
    "aligned-corner bilinear upsampling (the model follows all three)",
)


def init_variables(model: Rvos, key: jax.Array, sample: dict) -> dict:
    """Variables from an example batch (parameters depend on neither frame size nor O)."""
    frames = jnp.asarray(sample["frames"])[:, 0]
    return model.init(key, frames, num_objects=sample["object_valid"].shape[-1] - 1)


def training_sample(sample: SampleConfig, loss: LossOptions) -> SampleConfig:
    """The samples the loss takes: clips with a frame to predict after the given ones."""
    return frames_after_given(sample, loss.given_frames)


def encode(model: Rvos, variables, frames, normalised: bool = False, train: bool = False):
    """Skips of frames [N, H, W, 3]; `normalised`: frames are already ImageNet-normalised floats.
    With `train`, -> (skips, mutated batch_stats)."""

    def run(module, x):
        return module.encoder(x, train) if normalised else module.features(x, train)

    if train:
        return model.apply(variables, frames, method=run, mutable=["batch_stats"])
    return model.apply(variables, frames, method=run)


def decode_frame(model: Rvos, variables, skips, temporal: State, previous, size):
    """The RVOS recurrence, one frame: every slot in order from its hidden states of the previous
    frame and (one-shot) its previous mask. -> (logits [B, H, W, O] at `size`, new state)."""
    return model.apply(variables, skips, temporal, previous, size, method=Rvos.decode)


def decode_clip(model, variables, skips, teacher, num_slots, size, given_frames=0, feed_back=None):
    """`decode_frame` over a clip's frames under one `lax.scan`; skips per frame [B, T, ...].
    One-shot: `teacher` [B, T, H, W, O] holds known masks. Frame 0 takes teacher[0] as previous
    masks; frame t in 1 .. `given_frames` takes teacher[t - 1]; later frames take the sigmoid of
    the previous frame's logits (through `feed_back`, e.g. stop_gradient). Zero-shot: teacher is
    None. -> logits [B, T, H, W, O]."""
    time_major = jax.tree.map(lambda s: jnp.swapaxes(s, 0, 1), skips)
    num_frames = time_major[0].shape[0]
    state0 = initial_state(tuple(s[0] for s in time_major), num_slots, model.hidden)
    feed_back = feed_back or (lambda p: p)
    if model.one_shot:
        wide = accumulation_dtype(model.dtype)  # the dtype of the fed-back sigmoids
        teacher = jnp.swapaxes(teacher.astype(wide), 0, 1)  # [T, B, H, W, O]
        known = jnp.concatenate([teacher[:1], teacher[:-1]])  # frame t: the mask of frame t - 1
        use_known = jnp.arange(num_frames) <= max(given_frames, 0)  # frame 0 always
        xs, previous0 = (time_major, known, use_known), known[0]
    else:
        xs, previous0 = (time_major, None, None), None

    def body(carry, inputs):
        state, own = carry
        frame_skips, known_t, use_known_t = inputs
        previous = jnp.where(use_known_t, known_t, own) if model.one_shot else None
        logits, state = decode_frame(model, variables, frame_skips, state, previous, size)
        own = feed_back(jax.nn.sigmoid(logits)) if model.one_shot else None
        return (state, own), logits

    _, logits = jax.lax.scan(body, (state0, previous0), xs)
    return jnp.swapaxes(logits, 0, 1)


def rollout(model, variables, frames, first_probs, num_slots, normalised=False, given_frames=0):
    """Sigmoid probabilities [B, T, H, W, O] of a clip [B, T, H, W, 3]. One-shot: from the first
    frame's masks [B, H, W, O] (previous masks of frames 0 .. `given_frames`), the model's own
    outputs after that; zero-shot: first_probs None."""
    batch, steps, height, width = frames.shape[:4]
    skips = encode(model, variables, frames.reshape(batch * steps, height, width, 3), normalised)
    skips = tuple(s.reshape(batch, steps, *s.shape[1:]) for s in skips)
    teacher = None
    if model.one_shot:
        teacher = jnp.broadcast_to(first_probs[:, None], (batch, steps, *first_probs.shape[1:]))
    given_frames = min(given_frames, 1)  # only frame 0's masks are known
    logits = decode_clip(model, variables, skips, teacher, num_slots, (height, width), given_frames)
    return jax.nn.sigmoid(logits)


# ----------------------------------------------------------------------------- training


def object_targets(masks, object_valid):
    """Ids [B, T, H, W] (0 background, 1..O objects, 255 void) -> binary targets [B, T, H, W, O]
    per object slot 1..O and the slots' validity [B, O] (RVOS has no background slot)."""
    ids = jnp.arange(1, object_valid.shape[-1], dtype=jnp.int32)
    targets = (masks.astype(jnp.int32)[..., None] == ids).astype(jnp.float32)
    return targets, object_valid[:, 1:].astype(bool)


def hungarian_assignment(probs, targets, valid):
    """probs, targets [B, N, O], valid [B, O] -> [B, O] the target slot of each predicted slot,
    minimising the total soft-IoU loss. Invalid targets cost the same for every prediction, so
    they never change which predictions the valid targets get; those predictions are unscored."""
    cost = soft_iou_loss(
        jnp.swapaxes(probs, 1, 2)[:, :, None, :], jnp.swapaxes(targets, 1, 2)[:, None, :, :]
    )  # [B, O_pred, O_target]
    return hungarian(jnp.where(valid[:, None, :], cost, 1.0))


def frame_losses(probs, targets, valid):
    """probs, targets [B, T, N, O] (N pixels), valid [B, O] -> [T] each frame's loss: the mean of
    1 - soft IoU over the (sample, object) pairs valid in the clip and present (>= 1 target pixel)
    in that frame, 0 for a frame without any. As the official `softIoULoss` over the `sw_mask` of
    a frame, pooled over the batch (utils/objectives.py:25-35, dataloader/dataset.py:234-238)."""
    per_slot = soft_iou_loss(jnp.swapaxes(probs, -1, -2), jnp.swapaxes(targets, -1, -2))
    present = jnp.any(targets > 0, axis=2)  # [B, T, O]
    weight = (valid[:, None, :] & present).astype(per_slot.dtype)
    count = jnp.sum(weight, axis=(0, 2))
    return jnp.sum(per_slot * weight, axis=(0, 2)) / jnp.maximum(count, 1.0)


def loss(model: Rvos, params, batch_stats, batch: dict, key, step, **options):
    """-> (loss, (batch_stats, metrics)) for a batch {'frames' uint8 [B, T, H, W, 3], 'masks'
    uint8 [B, T, H, W] (255 void), 'object_valid' bool [B, O + 1]} (slot 0 background): the
    clip's `frame_losses` summed or averaged (`frame_reduction`)."""
    del key, step
    o = build(LossOptions, options)
    g = o.given_frames
    frames = batch["frames"]
    batch_size, num_frames, height, width = frames.shape[:4]
    targets, valid = object_targets(batch["masks"], batch["object_valid"])
    num_slots = valid.shape[-1]
    require(g < num_frames, "given_frames", f"0..{num_frames - 1} for T = {num_frames}", g)

    variables = {"params": params, "batch_stats": batch_stats}
    flat = frames.reshape(batch_size * num_frames, height, width, 3)
    skips, mutated = encode(model, variables, flat, train=True)
    skips = tuple(s.reshape(batch_size, num_frames, *s.shape[1:]) for s in skips)
    teacher = jnp.where(valid[:, None, None, None, :], targets, 0.0) if model.one_shot else None
    logits = decode_clip(
        model, variables, skips, teacher, num_slots, (height, width), g, jax.lax.stop_gradient
    )
    probs = jax.nn.sigmoid(logits).reshape(batch_size, num_frames, -1, num_slots)
    flat_targets = targets.reshape(batch_size, num_frames, -1, num_slots)
    if not model.one_shot:  # reorder the targets to the predicted slots, per clip
        first_valid = valid & jnp.any(flat_targets[:, 0] > 0, axis=1)  # matched on frame 0
        assignment = hungarian_assignment(probs[:, 0], flat_targets[:, 0], first_valid)
        flat_targets = jnp.take_along_axis(flat_targets, assignment[:, None, None, :], axis=-1)
        valid = jnp.take_along_axis(valid, assignment, axis=-1)  # presence: from the reordered
    per_frame = frame_losses(probs, flat_targets, valid)
    total = o.frame_reduction(per_frame)
    return total, (mutated["batch_stats"], {"loss": total})


# ----------------------------------------------------------------------------- inference


class RvosState(NamedTuple):
    temporal: State  # each slot's 4 hidden states of the previous frame, [O, B, h, w, K]
    previous: jax.Array  # [B, h, w, O] previous masks at the input size (one-shot)
    valid: jax.Array  # [B, O + 1] bool, slots in use (slot 0, background, always)


class _Resizer(NamedTuple):
    """Between the frames' size and the size the model runs at (`input_height/width`)."""

    height: int
    width: int
    max_objects: int

    def size(self, frame):
        return (self.height or frame.shape[1], self.width or frame.shape[2])

    def frame_in(self, frame):  # uint8 -> float in [0, 1] at the input size, bilinear
        x, size = frame.astype(jnp.float32) / 255.0, self.size(frame)
        if size != frame.shape[1:3]:
            x = jax.image.resize(x, (x.shape[0], *size, 3), "bilinear", antialias=False)
        return x

    def masks_in(self, masks, frame):  # [B, H, W] slot ids -> [B, h, w, O] of slots 1..O, nearest
        size = self.size(frame)
        if size != masks.shape[1:]:
            masks = jax.image.resize(masks, (masks.shape[0], *size), "nearest")
        return jax.nn.one_hot(masks, self.max_objects + 1, dtype=jnp.float32)[..., 1:]

    def scores_out(self, probs, valid, frame):  # -> [B, H, W, O + 1], background column first
        probs = jnp.where(valid[:, None, None, 1:], probs, 0.0)
        if probs.shape[1:3] != frame.shape[1:3]:
            shape = (probs.shape[0], *frame.shape[1:3], probs.shape[-1])
            probs = jax.image.resize(probs, shape, "bilinear", antialias=False)
        background = jnp.full(probs.shape[:3] + (1,), BACKGROUND_SCORE, probs.dtype)
        return jnp.concatenate([background, probs], axis=-1)


def propagator(model: Rvos, variables, **options) -> Propagator:
    """Jitted RVOS `init` / `step` (families.propagator); probs are per-slot sigmoid
    probabilities with `BACKGROUND_SCORE` in the background column.

    One-shot: frame 0 is decoded with its given masks as previous masks (to start the temporal
    state) and, as in the official evaluation (`eval_previous_mask.py`), those masks stay the
    previous masks of frame 1; from frame 2 on, the model's own outputs. Objects handed over later
    start in their slot from their given mask with a zero temporal state. Zero-shot
    (unsupervised): `init` only shapes the state and `step` decodes every frame from frame 0.
    `input_height` x `input_width` (0: the frames'): the model runs at that size, as the official
    code at 240x427 (DAVIS) or 256x448 (YouTube-VOS)."""
    o = build(InferenceOptions, options)
    io = _Resizer(o.input_height, o.input_width, o.max_objects)

    def run(frame, temporal, previous):
        skips = model.apply(variables, io.frame_in(frame), method=Rvos.features)
        logits, temporal = decode_frame(model, variables, skips, temporal, previous, io.size(frame))
        return jax.nn.sigmoid(logits), temporal

    def init(frame, masks, new):
        features = lambda f: model.apply(variables, io.frame_in(f), method=Rvos.features)
        skips = jax.eval_shape(features, frame)
        temporal = initial_state(skips, o.max_objects, model.hidden)
        if not model.one_shot:  # zero-shot: a blank state; `step` decodes frame 0 too
            blank = jnp.zeros((masks.shape[0], *io.size(frame), o.max_objects), jnp.float32)
            return RvosState(temporal, blank, jnp.ones_like(new))
        first = io.masks_in(masks, frame)
        _, temporal = run(frame, temporal, first)
        return RvosState(temporal, first, new.at[:, 0].set(True))

    def step(state: RvosState, frame, masks, new):
        probs, temporal = run(frame, state.temporal, state.previous if model.one_shot else None)
        valid = state.valid
        if model.one_shot:
            probs = jnp.where(new[:, None, None, 1:], io.masks_in(masks, frame), probs)
            slot_new = jnp.moveaxis(new[:, 1:], 1, 0)[:, :, None, None, None]  # [O, B, ...]
            temporal = tuple(jnp.where(slot_new, 0.0, t).astype(t.dtype) for t in temporal)
            valid = valid | new
            previous = jnp.where(valid[:, None, None, 1:], probs, 0.0)
        else:
            previous = probs
        return RvosState(temporal, previous, valid), Prediction(io.scores_out(probs, valid, frame))

    return Propagator(
        init=jax.jit(init),
        step=jax.jit(step),
        max_objects=o.max_objects,
        unsupervised=not model.one_shot,
    )
