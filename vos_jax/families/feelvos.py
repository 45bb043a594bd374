"""FEELVOS as a family (Voigtlaender et al., CVPR 2019; SPEC 1): options, variable init, training
sample, loss and the inference `(init, step)` pair, all built on one recurrence, `predict`.

Per frame: embeddings; global matching of each pixel against the reference frame's pixels of each
object (training: at most M = 1024 sampled per object, eq. 2; inference: all of them, as the
official code); local matching against the previous frame's labels in a (2k+1)^2 window at
stride 4 (eq. 3-4); the dynamic segmentation head per object, whose previous-frame input is a
one-hot of the previous labels (official inference, vis_video.py) or the softmax; softmax over
objects. Inference runs at output stride 8 with the weights trained at 16 (official eval).

Training follows the official loss (utils/train_utils.py:112-227): each video's mean
cross-entropy over its hardest pixels of all its predicted frames (logits upsampled to the crop;
kept fraction annealed 100% -> 15%), the videos' losses summed. Frames 0 .. g-1 (g =
`given_frames`) come with ground truth, later frames take the model's own previous prediction as
inference does: g = 2, T = 3 is the paper's triplet; g = 1 over clips trains on the engine's own
recurrence, so the head learns to correct its mistakes instead of trusting a perfect previous mask
(SPEC 1: "error accumulates through the previous-frame mask"). With `data.damage` (official
`mask_damaging`, off by default) or `data.prior` (MaskTrack's simulation) the given previous mask
is a damaged one. The issue-14 note tabulates every official detail and where it is tested.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import field
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vos_jax.data.pipeline import SampleConfig
from vos_jax.dtypes import accumulation_dtype
from vos_jax.families.options import Reduction, build, frames_after_given, require
from vos_jax.families.propagator import Prediction, Propagator
from vos_jax.losses import bootstrap_fraction, bootstrapped_cross_entropy_per_example
from vos_jax.models.feelvos import VARIANTS as VARIANTS
from vos_jax.models.feelvos import Feelvos, probabilities, to_feature_grid, upsample
from vos_jax.ops.matching import global_matching, local_matching, sample_reference

MODEL = Feelvos
SAMPLING = "triplet"  # the paper's (reference, previous, current); "clip" for own predictions
CITATION = (  # the paper a model card asks its users to cite
    "P. Voigtlaender, Y. Chai, F. Schroff, H. Adam, B. Leibe, L.-C. Chen: FEELVOS: Fast "
    "End-to-End Embedding Learning for Video Object Segmentation. CVPR 2019."
)
converter = None  # no official FEELVOS weights are published


class PreviousInput(enum.Enum):
    """What the dynamic head gets as the previous frame's mask of each object."""

    LABELS = "labels"  # one-hot of the predicted labels: official inference (vis_video.py)
    PROBS = "probs"  # the softmax: official training's feedback after frame 3 (no stop-gradient)


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    fine_tune_batch_norm: bool = field(
        default=False,
        metadata={"help": "update backbone/ASPP/decoder BN statistics (official: frozen)"},
    )


@dataclasses.dataclass(frozen=True)
class LossOptions:
    anneal_steps: int = field(default=100_000, metadata={"help": "bootstrapping 100% -> 15%"})
    max_per_object: int = field(default=1024, metadata={"help": "sampled reference pixels (M)"})
    max_displacement: int = field(default=15, metadata={"help": "local window k at stride 4"})
    given_frames: int = field(
        default=2, metadata={"help": "frames with ground truth (2: triplets, 1: own predictions)"}
    )
    previous_input: PreviousInput = field(
        default=PreviousInput.LABELS,
        metadata={"help": "the head's previous mask after the given frames (labels: as inferred)"},
    )
    # Official: each video adds its loss (train_utils.py:112-227, model_deploy).
    reduction: Reduction = field(
        default=Reduction.SUM, metadata={"help": "per-video losses summed (official) or averaged"}
    )

    def __post_init__(self):
        for key in ("anneal_steps", "max_per_object", "max_displacement", "given_frames"):
            require(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    max_objects: int = field(default=10, metadata={"help": "object slots (static shape)"})
    global_every: int = field(default=1, metadata={"help": "global matching every N frames"})
    max_reference_frames: int = field(
        default=1, metadata={"help": "frames that may bring objects (YouTube-VOS)"}
    )
    max_displacement: int = field(default=15, metadata={"help": "local window k at stride 4"})
    output_stride: int = field(
        default=8, metadata={"help": "backbone stride at inference (official: trained 16, eval 8)"}
    )
    previous_input: PreviousInput = field(
        default=PreviousInput.LABELS,
        metadata={"help": "the head's previous mask: one-hot labels (official) or probs"},
    )

    def __post_init__(self):
        for key in ("max_objects", "global_every", "max_reference_frames", "max_displacement"):
            require(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        require(
            self.output_stride in (8, 16, 32), "output_stride", "8, 16 or 32", self.output_stride
        )


def init_variables(model: Feelvos, key: jax.Array, sample: dict) -> dict:
    """Variables from an example batch (parameters depend on neither frame size nor O)."""
    frames = jnp.asarray(sample["frames"])[:, 0]
    return model.init(key, frames, num_objects=sample["object_valid"].shape[-1])


def training_sample(sample: SampleConfig, loss: LossOptions) -> SampleConfig:
    """The samples the loss takes: clips with a frame to predict after the given ones."""
    return frames_after_given(sample, loss.given_frames)


class Previous(NamedTuple):
    """What a frame takes from the one before it (stride-4 grid, O slots)."""

    embeddings: jax.Array  # [B, h, w, D]
    labels: jax.Array  # [B, h, w] int32 slot per pixel, -1 = none
    probs: jax.Array  # [B, h, w, O] float32


def predict(
    model: Feelvos,
    variables,
    features,
    embeddings,
    global_map,
    previous: Previous,
    valid,
    max_displacement: int,
):
    """The FEELVOS recurrence, one frame: local matching against the previous frame, the dynamic
    head (no BatchNorm: the same in training and inference), softmax over objects.
    -> (logits, probs [B, h, w, O])."""
    local_map = local_matching(
        embeddings, previous.embeddings, previous.labels, valid.shape[-1], max_displacement
    )
    args = (features, global_map, local_map, previous.probs, valid)
    logits = model.apply(variables, *args, method=Feelvos.segment)
    return logits, probabilities(logits, valid)


def labels_of(probs):
    return jnp.argmax(probs, axis=-1).astype(jnp.int32)


def previous_of(embeddings, probs, mode: PreviousInput) -> Previous:
    """What the next frame takes from a predicted one: its labels (for local matching) and, for
    the head, a one-hot of them (official inference) or the probabilities. The labels of the
    stride-4 softmax equal the official ones (argmax of the upsampled logits sampled back at
    stride 4): the aligned upsampling keeps each feature's value at its pixel 4 j."""
    labels = labels_of(probs)
    if mode == PreviousInput.LABELS:
        probs = jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    return Previous(embeddings, labels, probs)


# ----------------------------------------------------------------------------- training


def stride_labels(masks, object_valid):
    """Full-resolution ids [*B, H, W] (255 void) -> int32 ids on the stride-4 grid (sample j on
    pixel 4 j, where `Feelvos.features` centres it); void, ids >= O and padded objects -> -1."""
    labels = to_feature_grid(masks).astype(jnp.int32)
    num_objects = object_valid.shape[-1]
    in_range = (labels >= 0) & (labels < num_objects)
    safe = jnp.where(in_range, labels, 0)
    batch = labels.shape[0]
    valid = jnp.take_along_axis(object_valid, safe.reshape(batch, -1), axis=1)
    return jnp.where(in_range & valid.reshape(labels.shape), labels, -1)


def sampled_reference(key, embeddings, labels, num_objects: int, max_per_object: int):
    """At most M reference pixels per object (official training): embeddings [B, O * M, D] and
    labels [B, O * M] (-1 for empty places). M is capped at h * w: an object never has more
    pixels, so the cap drops nothing and saves matching work on small crops."""
    batch, height, width, dim = embeddings.shape
    m = min(max_per_object, height * width)
    index, valid = sample_reference(key, labels.reshape(batch, -1), num_objects, m)  # [B, O, M]
    flat = embeddings.reshape(batch, height * width, dim)
    reference = jnp.take_along_axis(flat, index.reshape(batch, -1, 1), axis=1)
    objects = jnp.arange(num_objects, dtype=jnp.int32)[None, :, None]
    return reference, jnp.where(valid, objects, -1).reshape(batch, -1)


def _match_all(query, reference, ref_labels, num_objects: int):
    """Global matching of every predicted frame [B, T', h, w, D] at once: matching is per query
    pixel, so the frames go in as one tall frame. -> [B, T', h, w, O]."""
    b, steps, h, w, dim = query.shape
    tall = query.reshape(b, steps * h, w, dim)
    return global_matching(tall, reference, ref_labels, num_objects).reshape(b, steps, h, w, -1)


def loss(model: Feelvos, params, batch_stats, batch: dict, key, step, **options):
    """-> (loss, (batch_stats, metrics)) for a batch {'frames' uint8 [B, T, H, W, 3], 'masks'
    uint8 [B, T, H, W] (255 void), 'object_valid' bool [B, O], optional 'prior' [B, T, H, W]}.

    One `features` call on all B T frames (BatchNorm statistics over all of them), global
    matching of all predicted frames at once (per pixel: they go in as one tall frame), then
    `predict` frame by frame. Gradients flow through the matching into the embeddings
    (end-to-end embedding learning, Sec. 3)."""
    o = build(LossOptions, options)
    frames, masks, g = batch["frames"], batch["masks"], o.given_frames
    valid = batch["object_valid"].astype(bool)
    num_objects, num_frames, size = valid.shape[-1], frames.shape[1], frames.shape[-3:-1]
    require(g < num_frames, "given_frames", f"< T = {num_frames}", g)

    (feats, emb), mutated = model.apply(
        {"params": params, "batch_stats": batch_stats},
        frames,
        train=True,
        mutable=["batch_stats"],
        method=Feelvos.features,
    )
    labels = stride_labels(masks, valid)  # [B, T, h, w]
    reference = sampled_reference(key, emb[:, 0], labels[:, 0], num_objects, o.max_per_object)
    global_maps = _match_all(emb[:, g:], *reference, num_objects)
    fraction = bootstrap_fraction(step, o.anneal_steps)

    given = stride_labels(batch["prior"], valid) if "prior" in batch else labels
    first = given[:, g - 1]
    previous = Previous(emb[:, g - 1], first, jax.nn.one_hot(first, num_objects, dtype=emb.dtype))
    variables = {"params": params, "batch_stats": batch_stats}
    # Samples are short (3-8 frames), so the recurrence is a static loop: XLA:CPU runs it 2x
    # faster than a lax.scan, rolled or not (tiny model, 65x65 triplet: 105 vs 215 ms fwd+bwd).
    logits = []
    for i, t in enumerate(range(g, num_frames)):
        frame_logits, probs = predict(
            model,
            variables,
            feats[:, t],
            emb[:, t],
            global_maps[:, i],
            previous,
            valid,
            o.max_displacement,
        )
        logits.append(upsample(frame_logits, size))
        # The next frame's previous mask comes from this prediction, as at inference; the
        # official softmax feedback (PROBS) keeps its gradient (embedding_utils.py:773-775).
        previous = previous_of(emb[:, t], probs, o.previous_input)
    # Official loss (train_utils.py:112-227): per video, the mean cross-entropy of its hardest
    # pixels over all its predicted frames; the videos' losses summed (or averaged).
    logits = jnp.stack(logits, axis=1)  # [B, T', H, W, O], as one tall frame per video
    tall = logits.reshape(logits.shape[0], -1, *logits.shape[3:])
    per_video = bootstrapped_cross_entropy_per_example(
        tall, masks[:, g:].reshape(tall.shape[:3]), valid, fraction
    )
    total = o.reduction(per_video)
    return total, (mutated["batch_stats"], {"loss": total, "kept_fraction": fraction})


# ----------------------------------------------------------------------------- inference


class FeelvosState(NamedTuple):
    """What FEELVOS carries from frame to frame (S reference slots; h, w at stride 4)."""

    reference: jax.Array  # [B, S, h, w, D] embeddings of the reference frames
    reference_labels: jax.Array  # [B, S, h, w] int32 object slot, -1 = not a reference pixel
    next_slot: jax.Array  # [] int32, the reference slot the next new objects go to
    previous: Previous  # the previous frame's embeddings, labels (predicted or given), probs
    global_map: jax.Array  # [B, h, w, O] the last global matching
    valid: jax.Array  # [B, O] bool, slots in use (slot 0, background, always)
    global_stale: jax.Array  # [] bool: new objects arrived, refresh the global map next frame
    frame_index: jax.Array  # [] int32, index of the previous frame


def _slots_of(new, masks):
    """[B, O] per-slot flags, [B, H, W] slot ids -> [B, H, W] bool: pixels of flagged slots."""
    batch = masks.shape[0]
    return jnp.take_along_axis(new, masks.reshape(batch, -1), axis=1).reshape(masks.shape)


def _hand_over(state: FeelvosState, emb, small_probs, full_probs, masks, new, num_slots, capacity):
    """Objects given in this frame: their mask replaces the prediction, and their pixels of this
    frame become references in the next reference slot. -> (state fields, small, full probs)."""
    given = to_feature_grid(masks)
    is_new = _slots_of(new, given)
    small_probs = jnp.where(
        is_new[..., None], jax.nn.one_hot(given, num_slots, dtype=jnp.float32), small_probs
    )
    full_probs = jnp.where(
        _slots_of(new, masks)[..., None],
        jax.nn.one_hot(masks, num_slots, dtype=jnp.float32),
        full_probs,
    )
    any_new = jnp.any(new[:, 1:])
    slot = jnp.minimum(state.next_slot, capacity - 1)  # the engine checks there is room
    reference = jnp.where(any_new, state.reference.at[:, slot].set(emb), state.reference)
    reference_labels = jnp.where(
        any_new,
        state.reference_labels.at[:, slot].set(jnp.where(is_new, given, -1)),
        state.reference_labels,
    )
    memory = dict(
        reference=reference,
        reference_labels=reference_labels,
        next_slot=state.next_slot + any_new.astype(jnp.int32),
        global_stale=any_new,
    )
    return memory, small_probs, full_probs


def _first_state(emb, masks, new, num_slots: int, capacity: int) -> FeelvosState:
    """The state after frame 0: its embeddings in reference slot 0 with the given labels."""
    labels = to_feature_grid(masks)
    reference = jnp.zeros((emb.shape[0], capacity, *emb.shape[1:]), emb.dtype)
    # The matching maps' dtype: float32, float64 for a float64 model (lax.cond keeps or refreshes
    # the global map: both branches must agree).
    probs = jax.nn.one_hot(labels, num_slots, dtype=accumulation_dtype(emb.dtype))
    return FeelvosState(
        reference=reference.at[:, 0].set(emb),
        reference_labels=jnp.full(reference.shape[:-1], -1, jnp.int32).at[:, 0].set(labels),
        next_slot=jnp.int32(1),
        previous=Previous(emb, labels, probs),
        global_map=jnp.ones(probs.shape, probs.dtype),
        valid=new.at[:, 0].set(True),
        global_stale=jnp.bool_(False),
        frame_index=jnp.int32(0),
    )


def propagator(model: Feelvos, variables, **options) -> Propagator:
    """Jitted FEELVOS `init` / `step` for `model` with `variables` (families.propagator). The
    reference memory has `max_reference_frames` slots of a whole stride-4 embedding map: slot 0
    is the first frame, and each frame that brings new objects takes the next slot with labels
    for its new objects only. Global matching runs every `global_every` frames (reusing the last
    map in between); local matching on every frame. The head's previous mask is a one-hot of the
    previous labels (`previous_input`, official) or the probabilities."""
    o = build(InferenceOptions, options)
    num_slots = o.max_objects + 1
    # Official evaluation: the weights trained at output stride 16 run at 8 (dilation changes no
    # parameter shape; vis_video.py:50, eval.sh:77-85).
    model = model.clone(output_stride=o.output_stride)

    def embed(frame):
        return model.apply(variables, frame, train=False, method=Feelvos.features)

    def init(frame, masks, new):
        return _first_state(embed(frame)[1], masks, new, num_slots, o.max_reference_frames)

    def step(state: FeelvosState, frame, masks, new):
        features, emb = embed(frame)
        batch, dim = emb.shape[0], emb.shape[-1]

        def match_global(_):
            reference = state.reference.reshape(batch, -1, dim)
            labels = state.reference_labels.reshape(batch, -1)
            return global_matching(emb, reference, labels, num_slots)

        # Frames 1, 1 + N, 1 + 2N, ... (and the frame after new objects arrive) match globally.
        refresh = (state.frame_index % o.global_every == 0) | state.global_stale
        global_map = jax.lax.cond(refresh, match_global, lambda _: state.global_map, None)
        _, small = predict(
            model,
            variables,
            features,
            emb,
            global_map,
            state.previous,
            state.valid,
            o.max_displacement,
        )
        full = upsample(small, frame.shape[1:3])  # FEELVOS: softmax, upsample, then argmax
        memory, small, full = _hand_over(
            state, emb, small, full, masks, new, num_slots, o.max_reference_frames
        )
        state = FeelvosState(
            **memory,
            previous=previous_of(emb, small, o.previous_input),
            global_map=global_map,
            valid=state.valid | new,
            frame_index=state.frame_index + 1,
        )
        return state, Prediction(full)

    return Propagator(
        init=jax.jit(init),
        step=jax.jit(step),
        max_objects=o.max_objects,
        max_arrival_frames=o.max_reference_frames,
    )
