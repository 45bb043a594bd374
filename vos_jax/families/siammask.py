"""SiamMask as a family (Wang et al., CVPR 2019; SPEC 3): a tracker of many targets at once.

Inference is the official tracker (foolwood/SiamMask tools/test.py `siamese_init`,
`siamese_track`, with `mask_enable` and `refine_enable`; DAVIS settings of
experiments/siammask_sharp/config_davis.json as the defaults of `InferenceOptions`), with every
target of every video on a padded target axis [B, O] and no Python loop over targets:

- init (per target, at the frame it arrives): box = bounding rectangle of its given mask
  (official `track_vos`: `cv2.boundingRect`, centre x + w / 2); template crop of side
  round(sqrt(wc * hc)) with context (w + h) / 2, resized to 127, padded with the frame's mean
  colour; template features, kept.
- track: search crop of side round(s_z * 255 / 127) around the last position; RPN softmax scores
  x exp(-(r_c s_c - 1) penalty_k) (scale and ratio change), blended with a cosine window
  (window_influence); the best anchor's box moves the target, its size smoothed with
  lr = penalty * score * lr; the refined mask at the best anchor's position is pasted back into
  the frame (-1 outside its crop) and thresholded at seg_thr; position clipped to the frame, size
  to [10, frame]. The mask does not move the box (as the official tracker).
- rotated box: the minimum-area rectangle of the mask's largest contour (area > 100), else the
  axis-aligned box (OpenCV on the host, as the official code; `rotated_boxes=False` skips it).
- labels: each target's pasted probability, background at seg_thr: a pixel goes to the target
  with the highest probability above seg_thr (official `track_vos` / `MultiBatchIouMeter`).
- re-detection (`redetect`, off by default; not in the official tracker): a target whose score
  stayed below `redetect_threshold` for `redetect_frames` frames is searched in a
  `redetect_size` crop at the same scale (a 57x57 score map at 511), without the cosine window,
  until its score recovers: DaSiamRPN's local-to-global search (Zhu et al., ECCV 2018) with
  static shapes. The wider search is computed only in frames where some target is lost.

Crops are taken from the frames in BGR order, the model's input (models/siammask.py).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax.convert import Converter
from vos_jax.convert import siammask as official
from vos_jax.data.pipeline import SampleConfig
from vos_jax.dtypes import accumulation_dtype
from vos_jax.families.options import build, require
from vos_jax.families.propagator import Prediction, Propagator
from vos_jax.models.layers import resize_align_corners
from vos_jax.models.siammask import EXEMPLAR_SIZE, INSTANCE_SIZE, TOTAL_STRIDE, SiamMask
from vos_jax.models.siammask import VARIANTS as VARIANTS
from vos_jax.ops import anchors as anchor_ops
from vos_jax.ops.crops import crop_box, paste_back, subwindow

MODEL = SiamMask
SAMPLING = "clip"
CITATION = (  # the paper a model card asks its users to cite
    "Q. Wang, L. Zhang, L. Bertinetto, W. Hu, P. H. S. Torr: Fast Online Object Tracking "
    "and Segmentation: A Unifying Approach. CVPR 2019."
)
BASE_SIZE = 8  # official `base_size`: the score map is (255 - 127) / 8 + 1 + 8 = 25 wide
MIN_SIZE = 10  # official: target_sz clipped to [10, frame size]
BOX_LIMITS = (  # crop pixels, for (cx, cy, w, h)
    np.asarray([-1e5, -1e5, 1e-2, 1e-2], np.float32),
    np.asarray([1e5, 1e5, 1e5, 1e5], np.float32),
)


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    pass


class Stage(enum.Enum):
    """The official two training stages."""

    # experiments/siammask_base: score, box and the 63x63 mask head on 255 search crops.
    MASK = "mask"
    # experiments/siammask_sharp: the refine module alone on 143 search crops (3x3 positions),
    # everything else frozen (configs/siammask_*.py freeze it through the optimizer).
    REFINE = "refine"


@dataclasses.dataclass(frozen=True)
class LossOptions:
    stage: Stage = field(default=Stage.MASK, metadata={"help": "mask (base) or refine (sharp)"})
    # Official loss weights [cls, loc, mask]: [1, 1.2, 36] (base), [0, 0, 36] (sharp).
    cls_weight: float = field(default=1.0, metadata={"help": "anchor classification (NLL)"})
    loc_weight: float = field(default=1.2, metadata={"help": "box regression (L1)"})
    mask_weight: float = field(default=36.0, metadata={"help": "mask (soft margin)"})
    positive_iou: float = field(default=0.6, metadata={"help": "anchor IoU above: positive"})
    negative_iou: float = field(default=0.3, metadata={"help": "anchor IoU below: negative"})
    positives: int = field(default=16, metadata={"help": "positive anchors sampled at most"})
    anchors_sampled: int = field(default=64, metadata={"help": "positives + negatives"})
    # Augmentation (official siam_mask_dataset.py `Augmentation`, in 511-crop pixels).
    template_shift: float = field(default=4.0, metadata={"help": "template shift, pixels"})
    template_scale: float = field(default=0.05, metadata={"help": "template scale jitter"})
    search_shift: float = field(default=64.0, metadata={"help": "search shift (sharp: 8)"})
    search_scale: float = field(default=0.18, metadata={"help": "search scale jitter"})
    blur: float = field(default=0.18, metadata={"help": "search blur probability"})
    gray: float = field(default=0.25, metadata={"help": "grey pair probability"})
    negative_pairs: float = field(
        default=0.2, metadata={"help": "pairs of different targets (sharp: 0)"}
    )
    colour: bool = field(default=True, metadata={"help": "PCA colour offset per crop"})
    backbone_batch_norm: bool = field(
        default=False,
        metadata={"help": "batch statistics in the backbone (official: frozen, ResDown.unfix)"},
    )

    def __post_init__(self):
        for key in ("cls_weight", "loc_weight", "mask_weight", "template_shift", "search_shift"):
            require(getattr(self, key) >= 0, key, "a number >= 0", getattr(self, key))
        for key in ("template_scale", "search_scale", "blur", "gray", "negative_pairs"):
            value = getattr(self, key)
            require(0 <= value < 1, key, "in [0, 1)", value)
        require(
            0 <= self.negative_iou <= self.positive_iou <= 1,
            "negative_iou",
            f"0 <= negative_iou <= positive_iou ({self.positive_iou}) <= 1",
            self.negative_iou,
        )
        require(
            1 <= self.positives <= self.anchors_sampled,
            "positives",
            f"1 <= positives <= anchors_sampled ({self.anchors_sampled})",
            self.positives,
        )


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    max_objects: int = field(default=10, metadata={"help": "target slots (static shape)"})
    penalty_k: float = field(default=0.04, metadata={"help": "scale/ratio change penalty"})
    window_influence: float = field(default=0.4, metadata={"help": "cosine window weight"})
    lr: float = field(default=1.0, metadata={"help": "size update rate (x penalty x score)"})
    seg_thr: float = field(default=0.35, metadata={"help": "mask threshold"})
    context_amount: float = field(default=0.5, metadata={"help": "template context"})
    refine: bool = field(
        default=True, metadata={"help": "the refined (sharp) mask; False: the 63x63 mask head"}
    )
    rotated_boxes: bool = field(
        default=True, metadata={"help": "rotated boxes of the masks (OpenCV on the host)"}
    )
    target_chunk: int = field(
        default=0,
        metadata={
            "help": "targets per batch of crops, the batches in a compiled loop (0: all at once "
            "on GPU/TPU, 1 on the CPU, where one crop at a time is faster); divides max_objects"
        },
    )
    # Lost-target re-detection (DaSiamRPN's local-to-global search; off: the official tracker).
    redetect: bool = field(
        default=False, metadata={"help": "search a wider region for targets that seem lost"}
    )
    redetect_threshold: float = field(
        default=0.3, metadata={"help": "a target seems lost below this score"}
    )
    redetect_frames: int = field(default=3, metadata={"help": "... for this many frames in a row"})
    redetect_size: int = field(
        default=511, metadata={"help": "the wider search crop (same scale, 255: none)"}
    )

    def __post_init__(self):
        require(self.max_objects >= 1, "max_objects", "an integer >= 1", self.max_objects)
        require(self.redetect_frames >= 1, "redetect_frames", ">= 1", self.redetect_frames)
        require(
            self.target_chunk >= 0
            and (self.target_chunk == 0 or self.max_objects % self.target_chunk == 0),
            "target_chunk",
            f"0 or a divisor of max_objects ({self.max_objects})",
            self.target_chunk,
        )
        require(
            self.redetect_size >= INSTANCE_SIZE and self.redetect_size % TOTAL_STRIDE == 7,
            "redetect_size",
            f"255 + a multiple of {TOTAL_STRIDE} (e.g. 511, 767)",
            self.redetect_size,
        )
        for key in ("penalty_k", "window_influence", "lr", "seg_thr", "context_amount"):
            value = getattr(self, key)
            require(value >= 0, key, "a number >= 0", value)
        require(self.window_influence <= 1, "window_influence", "in [0, 1]", self.window_influence)
        require(self.seg_thr < 1, "seg_thr", "in [0, 1)", self.seg_thr)


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    torch: str = field(metadata={"help": "official weights (SiamMask_DAVIS.pth) or a .npz"})


converter = Converter(official.convert, ImportOptions, official.CONVENTIONS)


# ----------------------------------------------------------------------------- tracking


class Targets(NamedTuple):
    """The tracker's state of every target slot 1..O of every video (index k - 1 for slot k)."""

    zf: jax.Array  # [B, O, 7, 7, C] template features
    pos: jax.Array  # [B, O, 2] centre (x, y), pixels
    size: jax.Array  # [B, O, 2] (w, h), pixels
    average: jax.Array  # [B, O, 3] BGR mean colour of the frame the target started in
    valid: jax.Array  # [B, O + 1] bool, slots in use (slot 0, background, always)
    low: jax.Array  # [B, O] int32 frames in a row with a score below redetect_threshold


def bounding_boxes(masks: jax.Array, num_slots: int):
    """Slot-id masks [B, H, W] -> (centre [B, O, 2], size [B, O, 2]) of the bounding rectangle
    of slots 1..O (`cv2.boundingRect`: x0 = first column, w = last - first + 1; centre x0 + w / 2,
    official `track_vos`); zeros for absent slots."""
    ids = jnp.arange(1, num_slots + 1)
    inside = masks[:, None] == ids[None, :, None, None]  # [B, O, H, W]

    def extent(any_along):  # first and last index where the mask is present
        n = any_along.shape[-1]
        idx = jnp.arange(n)
        first = jnp.min(jnp.where(any_along, idx, n), axis=-1)
        last = jnp.max(jnp.where(any_along, idx, -1), axis=-1)
        return first, jnp.maximum(last - first + 1, 0)

    x0, w = extent(jnp.any(inside, axis=2))
    y0, h = extent(jnp.any(inside, axis=3))
    size = jnp.stack([w, h], -1).astype(jnp.float32)
    pos = jnp.stack([x0, y0], -1).astype(jnp.float32) + size / 2
    present = (w > 0)[..., None]
    return jnp.where(present, pos, 0.0), jnp.where(present, size, 0.0)


def _context_side(size, context_amount):
    """sqrt(wc * hc): the template side of a target of `size` (w, h) with context."""
    context = context_amount * jnp.sum(size, -1)
    return jnp.sqrt((size[..., 0] + context) * (size[..., 1] + context))


def _crops(frames_bgr, pos, side, out, average):
    """vmapped `subwindow` over videos and targets: frames [B, H, W, 3], pos [B, O, 2], side
    [B, O] -> [B * O, out, out, 3]."""
    per_target = jax.vmap(subwindow, in_axes=(None, 0, 0, None, 0))
    crops = jax.vmap(per_target, in_axes=(0, 0, 0, None, 0))(frames_bgr, pos, side, out, average)
    return crops.reshape(-1, out, out, 3)


def templates(model, variables, frames_bgr, pos, size, average, context_amount):
    """Template features [B, O, 7, 7, C] of targets at (pos, size) (official `siamese_init`)."""
    side = jnp.round(_context_side(size, context_amount)).astype(jnp.int32)
    crops = _crops(frames_bgr, pos, side, EXEMPLAR_SIZE, average)
    zf = model.apply(variables, crops, method=SiamMask.template)
    return zf.reshape(*pos.shape[:2], *zf.shape[1:])


class TrackOutput(NamedTuple):
    pos: jax.Array  # [B, O, 2] new centre, clipped to the frame
    size: jax.Array  # [B, O, 2] new size, clipped to [10, frame]
    score: jax.Array  # [B, O] softmax score of the chosen anchor
    mask: jax.Array  # [B, O, H, W] mask probability in the frame (-1 outside its crop)
    fallback: jax.Array  # [B, O, 4] (x, y, w, h) before clipping: the rotated box without a mask


def track(
    model,
    variables,
    targets: Targets,
    frames_bgr,
    options: InferenceOptions,
    instance: int = INSTANCE_SIZE,
    window_influence: float | None = None,
):
    """One official `siamese_track` for every target of every video (module docstring); a
    larger `instance` crop searches a wider region at the same scale (re-detection)."""
    o = options
    window_influence = o.window_influence if window_influence is None else window_influence
    batch, slots = targets.pos.shape[:2]
    height, width = frames_bgr.shape[1:3]
    s_z = _context_side(targets.size, o.context_amount)
    scale_z = EXEMPLAR_SIZE / s_z
    s_x = s_z + 2 * ((instance - EXEMPLAR_SIZE) / 2) / scale_z
    side = jnp.round(s_x)
    crops = _crops(frames_bgr, targets.pos, side.astype(jnp.int32), instance, targets.average)
    zf = targets.zf.reshape(-1, *targets.zf.shape[2:])
    out = model.apply(variables, zf, crops, method=SiamMask.track)

    # Scores and boxes in the official flattening: anchor-major [N, A, s, s].
    n, s = out.cls.shape[0], out.cls.shape[1]
    num_anchors = out.cls.shape[-1] // 2
    cls = out.cls.astype(jnp.float32).reshape(n, s, s, 2, num_anchors)
    score = jax.nn.softmax(cls, axis=3)[:, :, :, 1]  # [N, s, s, A]
    score = jnp.moveaxis(score, -1, 1)  # [N, A, s, s]
    delta = out.loc.astype(jnp.float32).reshape(n, s, s, 4, num_anchors)
    delta = jnp.moveaxis(delta, (3, 4), (4, 1))  # [N, A, s, s, 4]
    boxes = anchor_ops.decode(delta, jnp.asarray(anchor_ops.anchor_grid(s, TOTAL_STRIDE)))
    # Finite, positive boxes whatever the weights (an untrained model's exp(dw) overflows or
    # underflows, and a penalty of 0 times an infinite size is NaN); the limits are far beyond
    # any real box, so the official values are untouched.
    boxes = jnp.clip(boxes, BOX_LIMITS[0], BOX_LIMITS[1])

    scale_z = scale_z.reshape(n, 1, 1, 1)
    target_in_crop = targets.size.reshape(n, 1, 1, 1, 2) * scale_z[..., None]
    change = lambda r: jnp.maximum(r, 1.0 / r)
    padded_side = lambda w, h: jnp.sqrt((w + (w + h) / 2) * (h + (w + h) / 2))
    s_c = change(
        padded_side(boxes[..., 2], boxes[..., 3])
        / padded_side(target_in_crop[..., 0], target_in_crop[..., 1])
    )
    r_c = change(
        (target_in_crop[..., 0] / target_in_crop[..., 1]) / (boxes[..., 2] / boxes[..., 3])
    )
    penalty = jnp.exp(-(r_c * s_c - 1) * o.penalty_k)
    pscore = penalty * score
    window = jnp.asarray(anchor_ops.cosine_window(s))
    pscore = pscore * (1 - window_influence) + window * window_influence
    best = jnp.argmax(pscore.reshape(n, -1), axis=-1)  # first maximum, as np.argmax
    take = lambda a: jnp.take_along_axis(a.reshape(n, -1), best[:, None], axis=1)[:, 0]
    best_box = jnp.take_along_axis(boxes.reshape(n, -1, 4), best[:, None, None], axis=1)[:, 0]
    best_score = take(score)
    lr = take(penalty) * best_score * o.lr

    pred = best_box / scale_z.reshape(n, 1)
    pos = targets.pos.reshape(n, 2) + pred[:, :2]
    size = targets.size.reshape(n, 2) * (1 - lr[:, None]) + pred[:, 2:] * lr[:, None]
    fallback = jnp.concatenate([pos - size / 2, size], -1)

    # The mask at the best anchor's position (row, col), pasted back around that position.
    row, col = (best % (s * s)) // s, best % s
    rc = jnp.stack([row, col], -1)
    if o.refine:
        logits = model.apply(variables, out.skips, out.corr, rc, method=SiamMask.refine)
    else:
        head = model.apply(variables, out.corr, method=SiamMask.mask_head)
        head = jax.vmap(lambda h, p: h[p[0], p[1]])(head, rc)
        m = int(round(head.shape[-1] ** 0.5))
        logits = head.reshape(n, m, m)
    mask = jax.nn.sigmoid(logits.astype(jnp.float32))
    crop_x = targets.pos.reshape(n, 2) - side.reshape(n, 1) / 2  # official crop_box (x, y)
    step = side.reshape(n, 1) / instance
    sub_xy = crop_x + (jnp.stack([col, row], -1) - BASE_SIZE / 2) * TOTAL_STRIDE * step
    sub_box = jnp.concatenate([sub_xy, step * EXEMPLAR_SIZE, step * EXEMPLAR_SIZE], -1)
    pasted = jax.vmap(paste_back, in_axes=(0, 0, None, None))(mask, sub_box, height, width)

    limit = jnp.asarray([width, height], jnp.float32)
    pos = jnp.clip(pos, 0.0, limit)
    size = jnp.clip(size, MIN_SIZE, limit)
    shape = lambda a: a.reshape(batch, slots, *a.shape[1:])
    return TrackOutput(shape(pos), shape(size), shape(best_score), shape(pasted), shape(fallback))


def track_in_chunks(model, variables, targets: Targets, frames_bgr, options, chunk: int, *args):
    """`track` of the targets `chunk` at a time, the chunks in a `lax.map` (one compiled loop,
    not a Python one): on the CPU, one crop at a time through the backbone runs faster than all
    of them as one batch (cache-resident activations); on GPU/TPU one batch is faster."""
    slots = targets.pos.shape[1]
    if chunk in (0, slots):
        return track(model, variables, targets, frames_bgr, options, *args)

    def split(a):  # [B, O, ...] -> [O / chunk, B, chunk, ...]
        a = a.reshape(a.shape[0], slots // chunk, chunk, *a.shape[2:])
        return jnp.moveaxis(a, 1, 0)

    def one(part):
        zf, pos, size, average = part
        return track(model, variables, targets._replace(zf=zf, pos=pos, size=size,
                     average=average), frames_bgr, options, *args)  # fmt: skip

    out = jax.lax.map(one, tuple(split(a) for a in targets[:4]))
    return jax.tree.map(
        lambda a: jnp.moveaxis(a, 0, 1).reshape(a.shape[1], slots, *a.shape[3:]), out
    )


def _rotated_boxes_host(masks, fallback, valid):
    """The official polygon of each target (module docstring), on the host with OpenCV."""
    import cv2

    masks, fallback, valid = np.asarray(masks), np.asarray(fallback), np.asarray(valid)
    out = np.zeros((*masks.shape[:2], 4, 2), np.float32)
    for b, o in zip(*np.nonzero(valid), strict=True):
        contours, _ = cv2.findContours(
            masks[b, o].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        areas = [cv2.contourArea(c) for c in contours]
        if contours and max(areas) > 100:
            contour = contours[int(np.argmax(areas))]
            out[b, o] = cv2.boxPoints(cv2.minAreaRect(contour.reshape(-1, 2)))
        else:
            x, y, w, h = fallback[b, o]
            out[b, o] = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    return out


def rotated_boxes(masks, fallback, valid):
    """[B, O, 4, 2] polygons of thresholded masks [B, O, H, W] (a host callback)."""
    shape = jax.ShapeDtypeStruct((*masks.shape[:2], 4, 2), jnp.float32)
    return jax.pure_callback(_rotated_boxes_host, shape, masks, fallback, valid)


def _bgr(frames):
    return frames[..., ::-1]


def propagator(model: SiamMask, variables, **options) -> Propagator:
    """Jitted SiamMask `init` / `step` (families.propagator) over every target of every video;
    probs hold each target's pasted mask probability with seg_thr in the background column;
    scores the chosen anchor's score; boxes the axis-aligned box (x0, y0, x1, y1) of the tracked
    position and size; rotated the mask's rotated box."""
    o = build(InferenceOptions, options)
    slots = o.max_objects
    chunk = o.target_chunk or (1 if jax.default_backend() == "cpu" else slots)

    def start(targets: Targets | None, frames, masks, new):
        """Targets `new` [B, O + 1] start from their masks; others keep `targets`."""
        frames_bgr = _bgr(frames)
        pos, size = bounding_boxes(masks, slots)
        mean = jnp.mean(frames_bgr.astype(jnp.float32), axis=(1, 2))  # [B, 3]
        average = jnp.broadcast_to(mean[:, None], (frames.shape[0], slots, 3))
        zf = templates(model, variables, frames_bgr, pos, size, average, o.context_amount)
        low = jnp.zeros(pos.shape[:2], jnp.int32)
        fresh = Targets(zf, pos, size, average, new, low)
        if targets is None:
            return fresh._replace(valid=new.at[:, 0].set(True))
        pick = lambda n, a, b: jnp.where(n.reshape(*n.shape, *[1] * (a.ndim - 2)), a, b)
        begun = new[:, 1:]
        kept = (pick(begun, a, b) for a, b in zip(fresh[:4], targets[:4], strict=True))
        return Targets(*kept, valid=targets.valid | new, low=pick(begun, low, targets.low))

    def init(frames, masks, new):
        return start(None, frames, masks, new)

    def step(targets: Targets, frames, masks, new):
        alive = targets.valid[:, 1:]
        out = track_in_chunks(model, variables, targets, _bgr(frames), o, chunk)
        if o.redetect:  # targets lost for redetect_frames: a wider search, without the window
            lost = alive & (targets.low >= o.redetect_frames)
            wide = lambda: track_in_chunks(
                model, variables, targets, _bgr(frames), o, chunk, o.redetect_size, 0.0
            )
            wider = jax.lax.cond(jnp.any(lost), wide, lambda: out)
            out = jax.tree.map(
                lambda a, b: jnp.where(lost.reshape(*lost.shape, *[1] * (a.ndim - 2)), a, b),
                wider,
                out,
            )
        keep = lambda a, b: jnp.where(alive.reshape(*alive.shape, *[1] * (a.ndim - 2)), a, b)
        low = jnp.where(out.score < o.redetect_threshold, targets.low + 1, 0)
        moved = targets._replace(
            pos=keep(out.pos, targets.pos), size=keep(out.size, targets.size), low=low
        )
        # Targets given in this frame start here; their output is their given mask.
        moved = jax.lax.cond(
            jnp.any(new[:, 1:]), lambda: start(moved, frames, masks, new), lambda: moved
        )
        given = masks[:, None] == jnp.arange(1, slots + 1)[None, :, None, None]
        begun = new[:, 1:, None, None]
        probs = jnp.where(begun, given.astype(jnp.float32), out.mask)
        probs = jnp.where(moved.valid[:, 1:, None, None], probs, -1.0)
        background = jnp.full((frames.shape[0], 1, *frames.shape[1:3]), o.seg_thr)
        probs = jnp.moveaxis(jnp.concatenate([background, probs], axis=1), 1, -1)
        scores = jnp.where(new[:, 1:], 1.0, out.score)
        scores = jnp.concatenate([jnp.ones_like(scores[:, :1]), scores], axis=1)
        x0y0 = moved.pos - moved.size / 2
        boxes = jnp.concatenate([x0y0, x0y0 + moved.size], -1)
        boxes = jnp.concatenate([jnp.zeros_like(boxes[:, :1]), boxes], axis=1)
        rotated = None
        if o.rotated_boxes:
            rotated = rotated_boxes(probs[..., 1:].transpose(0, 3, 1, 2) > o.seg_thr,
                                    out.fallback, moved.valid[:, 1:])  # fmt: skip
            rotated = jnp.concatenate([jnp.zeros_like(rotated[:, :1]), rotated], axis=1)
        return moved, Prediction(probs, scores=scores, boxes=boxes, rotated=rotated)

    return Propagator(init=jax.jit(init), step=jax.jit(step), max_objects=slots)


# ----------------------------------------------------------------------------- training

SEARCH_SIZES = {Stage.MASK: INSTANCE_SIZE, Stage.REFINE: 143}  # official `search_size`
# The official colour augmentation: image - rgbVar @ N(0, I), in BGR.
RGB_VAR = np.array(
    [
        [-0.55919361, 0.98062831, -0.41940627],
        [1.72091413, 0.19879334, -1.82968581],
        [4.64467907, 4.73710203, 4.88324118],
    ],
    np.float32,
)
MAX_BLUR = 7  # the official kernel side round(N(0, 1)) * 2 + 1 rarely passes 5


def init_variables(model: SiamMask, key: jax.Array, sample: dict) -> dict:
    """Variables (they depend on no input size): a template and a search crop."""
    del sample
    z = jnp.zeros((1, EXEMPLAR_SIZE, EXEMPLAR_SIZE, 3), jnp.float32)
    x = jnp.zeros((1, INSTANCE_SIZE, INSTANCE_SIZE, 3), jnp.float32)
    return model.init(key, z, x)


def training_sample(sample: SampleConfig, loss: LossOptions) -> SampleConfig:
    """Pairs: clips of 2 frames `data.stride` apart (the official pairs are up to
    `frame_range` apart); the loss crops template and search itself."""
    del loss
    return dataclasses.replace(sample, sampling="clip", num_frames=2)


def _uniform(key, shape=()):
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)  # official `random() * 2 - 1`


def _pick_object(key, masks, object_valid):
    """One object per pair present in both frames, at random: -> (slot [B], any [B])."""
    slots = object_valid.shape[-1] - 1
    ids = jnp.arange(1, slots + 1)
    present = jnp.any(masks[:, :, None] == ids[None, None, :, None, None], axis=(3, 4))
    usable = object_valid[:, 1:] & present[:, 0] & present[:, 1]
    choice = jax.random.categorical(key, jnp.where(usable, 0.0, -jnp.inf))
    return jnp.where(jnp.any(usable, -1), choice + 1, 0), jnp.any(usable, -1)


def _box_of(masks, slot):
    """(cx, cy, w, h) [B, 4] of `slot` [B] in slot-id masks [B, H, W]."""
    pos, size = bounding_boxes(jnp.where(masks == slot[:, None, None], 1, 0), 1)
    return jnp.concatenate([pos[:, 0], size[:, 0]], -1)


def _aug_box(key, box, out, shift, scale):
    """The official `Augmentation` crop of a 511 crop around `box` (cx, cy, w, h), in frame
    coordinates: side (out - 1) * (1 + u * scale) per axis, centre shifted by u * shift (511-crop
    pixels, 127 / s_z frame pixels each). -> (crop box (x0, y0, x1, y1), frame->crop scale
    per axis)."""
    k_shift, k_scale = jax.random.split(key)
    per_pixel = _context_side(box[..., 2:], 0.5)[..., None] / EXEMPLAR_SIZE  # frame px / crop px
    scale = 1.0 + _uniform(k_scale, box.shape[:-1] + (2,)) * scale
    centre = box[..., :2] + _uniform(k_shift, box.shape[:-1] + (2,)) * shift * per_pixel
    half = (out - 1) * scale * per_pixel / 2
    corners = jnp.concatenate([centre - half, centre + half], -1)
    return corners, (out - 1) / (2 * half)


def _photometric(key, crop, gray, blur, colour: bool, may_blur: bool):
    """Grey (both crops of a pair), PCA colour offset, and where `blur` the official blur: a
    cross-shaped kernel of side round(N(0, 1)) * 2 + 1 (none if negative, or half the time)."""
    k_colour, k_blur = jax.random.split(key)
    grey = crop @ jnp.asarray([0.114, 0.587, 0.299], crop.dtype)  # BGR -> Y, OpenCV weights
    crop = jnp.where(gray, jnp.broadcast_to(grey[..., None], crop.shape), crop)
    if colour:
        offset = jnp.asarray(RGB_VAR) @ jax.random.normal(k_colour, (3,))
        crop = crop - offset[::-1]
    if may_blur:
        k_size, k_use, k_w = jax.random.split(k_blur, 3)
        side = jnp.round(jax.random.normal(k_size)) * 2 + 1
        side = jnp.minimum(side, MAX_BLUR)
        use = (side > 0) & (jax.random.uniform(k_use) >= 0.5) & blur
        wx = jax.random.uniform(k_w)
        r = jnp.arange(MAX_BLUR) - MAX_BLUR // 2
        line = (jnp.abs(r) <= side // 2) / jnp.maximum(side, 1)
        kernel = wx * jnp.outer(r == 0, line).T + (1 - wx) * jnp.outer(r == 0, line)
        p = MAX_BLUR // 2
        padded = jnp.pad(crop, ((p, p), (p, p), (0, 0)), mode="reflect")  # BORDER_REFLECT_101
        blurred = jax.lax.conv_general_dilated(
            padded[None].transpose(3, 1, 2, 0),
            kernel[:, :, None, None].astype(crop.dtype),
            (1, 1),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )[..., 0].transpose(1, 2, 0)
        crop = jnp.where(use, blurred, crop)
    return crop


def anchor_targets(key, box, anchors, negative_pair, o: LossOptions):
    """The official `AnchorTargetLayer` for one pair: -> (cls [A, s, s] 1 / 0 / -1 ignored,
    delta [A, s, s, 4], delta weight [A, s, s]). Positives: IoU > positive_iou, at most
    `positives` of them at random; negatives: IoU < negative_iou, `anchors_sampled` - positives
    at random. A negative pair has only negatives, `positives` of them within 3 cells of the
    centre."""
    k_pos, k_neg = jax.random.split(key)
    overlap = anchor_ops.iou(anchors, box)
    s = anchors.shape[1]
    centre = jnp.abs(jnp.arange(s) - s // 2) <= 3
    near = jnp.broadcast_to(centre[:, None] & centre[None, :], overlap.shape)

    def sample(k, candidates, count):
        priority = jnp.where(candidates, jax.random.uniform(k, candidates.shape), -1.0)
        rank = jnp.argsort(jnp.argsort(-priority.reshape(-1))).reshape(candidates.shape)
        return candidates & (rank < count)

    pos = sample(k_pos, (overlap > o.positive_iou) & ~negative_pair, o.positives)
    num_pos = jnp.sum(pos)
    neg_candidates = jnp.where(negative_pair, near, overlap < o.negative_iou)
    neg_count = jnp.where(negative_pair, o.positives, o.anchors_sampled - num_pos)
    neg = sample(k_neg, neg_candidates, neg_count)
    cls = jnp.where(pos, 1, jnp.where(neg, 0, -1))
    delta = anchor_ops.encode(jnp.broadcast_to(box, anchors.shape), anchors)
    weight = jnp.where(pos, 1.0 / (num_pos + 1e-6), 0.0)
    return cls, delta, weight


def _soft_margin(logits, target, weight):
    """PyTorch's `soft_margin_loss` (mean of log(1 + exp(-y x))) over the rows with weight."""
    per_row = jnp.mean(jax.nn.softplus(-target * logits), axis=(-2, -1))
    return jnp.sum(per_row * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def _windows(mask, rows, cols, pad):
    """127x127 windows of a search mask [S, S] at stride 8 (official `F.unfold(mask, 127,
    padding=pad, stride=8)`), at score positions (rows, cols) [P]."""
    padded = jnp.pad(mask, pad)
    take = lambda r, c: jax.lax.dynamic_slice(
        padded, (r * TOTAL_STRIDE, c * TOTAL_STRIDE), (EXEMPLAR_SIZE, EXEMPLAR_SIZE)
    )
    return jax.vmap(take)(rows, cols)


def pairs(key, batch, o: LossOptions, dtype=jnp.float32):
    """Template and search crops, the target box in the search crop and its mask, from clips of
    2 frames: -> dict(template [B, 127, 127, 3], search [B, S, S, 3] (BGR floats), box [B, 4]
    (cx, cy, w, h) in search pixels, mask [B, S, S] (+1 / -1), has_mask [B], negative [B]).
    Computed in `dtype` (float64 for a float64 model: no float32 rounding that could depend on
    how XLA fuses the program for a mesh)."""
    frames = batch["frames"][..., ::-1].astype(dtype)  # BGR, as the model takes
    masks = batch["masks"].astype(jnp.int32)
    size = SEARCH_SIZES[o.stage]
    k_pick, k_t, k_s, k_neg, k_gray, k_pt, k_ps = jax.random.split(key, 7)
    slot, has = _pick_object(k_pick, masks, batch["object_valid"])
    negative = (jax.random.uniform(k_neg, slot.shape) < o.negative_pairs) & has
    box_t = _box_of(masks[:, 0], slot).astype(dtype)
    # A negative pair searches another pair's target (official: a random other target).
    search_frames = jnp.where(
        negative[:, None, None, None], jnp.roll(frames[:, 1], 1, 0), frames[:, 1]
    )
    search_masks = jnp.where(negative[:, None, None], -1, masks[:, 1])
    box_s = _box_of(masks[:, 1], slot).astype(dtype)
    box_s = jnp.where(negative[:, None], jnp.roll(box_s, 1, 0), box_s)
    has_s = jnp.where(negative, jnp.roll(has, 1), has)
    # A pair without an object crops around the frame centre; it is not scored.
    fallback = jnp.asarray([frames.shape[3] / 2, frames.shape[2] / 2, 32.0, 32.0], dtype)
    box_t = jnp.where(has[:, None], box_t, fallback)
    box_s = jnp.where(has_s[:, None], box_s, fallback)
    crop_t, _ = _aug_box(k_t, box_t, EXEMPLAR_SIZE, o.template_shift, o.template_scale)
    crop_s, scale_s = _aug_box(k_s, box_s, size, o.search_shift, o.search_scale)
    mean_t = jnp.mean(frames[:, 0], axis=(1, 2))
    mean_s = jnp.mean(search_frames, axis=(1, 2))
    template = jax.vmap(crop_box, in_axes=(0, 0, None, 0))(
        frames[:, 0], crop_t, EXEMPLAR_SIZE, mean_t
    )
    search = jax.vmap(crop_box, in_axes=(0, 0, None, 0))(search_frames, crop_s, size, mean_s)
    target = (search_masks == slot[:, None, None]).astype(dtype)[..., None]
    mask = jax.vmap(crop_box, in_axes=(0, 0, None))(target, crop_s, size)[..., 0]
    gray = jax.random.uniform(k_gray, slot.shape) < o.gray
    batch_size = slot.shape[0]
    template = jax.vmap(_photometric, in_axes=(0, 0, 0, None, None, None))(
        jax.random.split(k_pt, batch_size), template, gray, False, o.colour, False
    )
    blur = jax.random.uniform(jax.random.fold_in(k_ps, 1), slot.shape) < o.blur
    search = jax.vmap(_photometric, in_axes=(0, 0, 0, 0, None, None))(
        jax.random.split(k_ps, batch_size), search, gray, blur, o.colour, o.blur > 0
    )
    centre = box_s[:, :2] - crop_s[:, :2]
    box = jnp.concatenate([centre * scale_s, box_s[:, 2:] * scale_s], -1)
    return dict(
        template=template,
        search=search,
        box=box,
        mask=jnp.where(mask > 0.5, 1.0, -1.0),
        has_mask=has & ~negative,
        scored=has,
        negative=negative,
    )


def loss(model: SiamMask, params, batch_stats, batch: dict, key, step, **options):
    """-> (loss, (batch_stats, metrics)): the official losses (models/siammask.py,
    siammask_sharp.py) on a batch of clips {'frames' uint8 [B, 2, H, W, 3], 'masks' uint8
    [B, 2, H, W], 'object_valid' [B, O + 1]} cropped into pairs by `pairs`:
    cls: NLL of the sampled positive anchors (mean over the batch) x 0.5 + of the negatives
    x 0.5; loc: L1 of the positive anchors' deltas weighted 1 / (positives of the pair), summed,
    / B; mask: soft margin of the mask at every score position with a positive anchor, against
    the 127x127 window of the search mask there (stage mask: the 63x63 head upsampled, windows of
    the mask padded by 32; stage refine: the refine module, unpadded windows)."""
    del step
    o = build(LossOptions, options)
    wide = accumulation_dtype(model.dtype)
    p = pairs(key, batch, o, wide)
    variables = {"params": params, "batch_stats": batch_stats}
    train = o.stage == Stage.MASK  # the refine stage keeps every BN frozen (official)

    def run(module, z, x):
        zf = module.template(z, train, o.backbone_batch_norm and train)
        out = module.track(zf, x, train, o.backbone_batch_norm and train)
        if o.stage == Stage.MASK:
            return out, module.mask_head(out.corr, train)
        return out, None

    (out, head), mutated = model.apply(
        variables, p["template"], p["search"], method=run, mutable=["batch_stats"]
    )
    n, s = out.cls.shape[:2]
    num_anchors = out.cls.shape[-1] // 2
    size = SEARCH_SIZES[o.stage]
    anchors = jnp.asarray(anchor_ops.anchor_grid(s, TOTAL_STRIDE), wide).at[..., :2].add(size // 2)
    keys = jax.random.split(jax.random.fold_in(key, 1), n)
    cls_t, delta_t, weight_t = jax.vmap(anchor_targets, in_axes=(0, 0, None, 0, None))(
        keys, p["box"], anchors, p["negative"], o
    )
    scored = p["scored"][:, None, None, None]
    cls_t = jnp.where(scored, cls_t, -1)
    weight_t = jnp.where(scored, weight_t, 0.0)

    log_p = jax.nn.log_softmax(out.cls.astype(wide).reshape(n, s, s, 2, num_anchors), axis=3)
    log_p = jnp.moveaxis(log_p, (3, 4), (4, 1))  # [N, A, s, s, 2]
    pos, neg = cls_t == 1, cls_t == 0
    mean_over = lambda x, m: jnp.sum(jnp.where(m, x, 0.0)) / jnp.maximum(jnp.sum(m), 1)
    cls_loss = 0.5 * mean_over(-log_p[..., 1], pos) + 0.5 * mean_over(-log_p[..., 0], neg)
    delta = jnp.moveaxis(out.loc.astype(wide).reshape(n, s, s, 4, num_anchors), (3, 4), (4, 1))
    loc_loss = jnp.sum(jnp.sum(jnp.abs(delta - delta_t), -1) * weight_t) / n

    # Score positions with a positive anchor (official `mask_weight = cls.max(axis=0)`): at
    # most `positives` of them, in index order.
    at = jnp.any(pos, axis=1).reshape(n, s * s) & p["has_mask"][:, None]
    count = min(o.positives, s * s)
    order = jnp.argsort(~at, axis=1, stable=True)[:, :count]
    row_weight = jnp.take_along_axis(at, order, axis=1).astype(wide)
    rows, cols = order // s, order % s
    if o.stage == Stage.MASK:
        m = model.mask_size
        logits = jnp.take_along_axis(head.reshape(n, s * s, -1), order[..., None], axis=1)
        logits = logits.reshape(n * count, m, m, 1).astype(wide)
        logits = resize_align_corners(logits, (EXEMPLAR_SIZE, EXEMPLAR_SIZE))
        pad = 32  # (255 + 2 * 32 - 127) / 8 + 1 = 25 windows, one per score position
    else:
        skips = jax.tree.map(lambda a: jnp.repeat(a, count, 0), out.skips)
        corr = jnp.repeat(out.corr, count, 0)
        rc = jnp.stack([rows, cols], -1).reshape(-1, 2)
        logits = model.apply(variables, skips, corr, rc, False, method=SiamMask.refine)
        logits = logits.astype(wide)[..., None]
        pad = 0
    windows = jax.vmap(_windows, in_axes=(0, 0, 0, None))(p["mask"], rows, cols, pad)
    mask_loss = _soft_margin(
        logits.reshape(n, count, EXEMPLAR_SIZE, EXEMPLAR_SIZE), windows.astype(wide), row_weight
    )
    total = o.cls_weight * cls_loss + o.loc_weight * loc_loss + o.mask_weight * mask_loss
    metrics = {"loss": total, "cls_loss": cls_loss, "loc_loss": loc_loss, "mask_loss": mask_loss}
    return total, (mutated["batch_stats"], metrics)
