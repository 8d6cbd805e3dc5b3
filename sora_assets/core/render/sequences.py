"""Multi-shot sequences: canonical anchors, shot order, continuation, edit decisions and stitching.

The "canonical anchor" workflow: a group's anchor (master) shot fixes the seed and the environment
text; every other shot reuses both verbatim and only adds camera/action text. Changing one adjective
of the environment re-rolls the scene, so that is a validation error naming the shot and the words.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sora_assets.core.intake.prompt_rules import PREVIOUS_SHOT
from sora_assets.core.render.spec import derive_seed, normalize_prompt

SHOT_STAGE = "shot_group"
INHERITED_FIELDS = ("width", "height", "fps", "tier")  # one frame size and rate per sequence, one priority
DEFAULT_CROSSFADE_SECONDS = 0.25
SEQUENCE_VERSION = 1
_JOINERS = " .,;:-–—|"


@dataclass(frozen=True)
class ShotRef:
    """Where an accepted row sits in its sequence (stored with the row, read by rendering and stitching)."""

    group: str
    shot: int
    anchor: bool
    anchor_row: int
    anchor_shot: int
    camera_action: str
    continue_from_shot: int | None = None
    continue_from_row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def environment_of(prompt: str, camera: str | None) -> str:
    """The anchor's environment text: its prompt, less its camera text when the row names one."""
    prompt = normalize_prompt(prompt)
    if camera and camera in prompt:
        prompt = prompt.replace(camera, " ", 1)
    return normalize_prompt(prompt).strip(_JOINERS)


def camera_action_of(prompt: str, environment: str, camera: str | None) -> str:
    """What a shot adds to the environment (its `camera` field when given)."""
    if camera:
        return camera
    return normalize_prompt(normalize_prompt(prompt).replace(environment, " ", 1)).strip(_JOINERS)


def altered_words(environment: str, prompt: str) -> str:
    """A short account of how `prompt` departs from the environment text, for the error message."""
    expected, got = environment.split(), normalize_prompt(prompt).split()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=expected, b=got, autojunk=False).get_opcodes():
        if tag == "replace":
            return f"{' '.join(expected[i1:i2])!r} became {' '.join(got[j1:j2])!r}"
        if tag == "delete":
            return f"{' '.join(expected[i1:i2])!r} is missing"
        if tag == "insert" and 0 < i1 < len(expected):
            return f"{' '.join(got[j1:j2])!r} was inserted inside it"
    return "the wording differs"


def apply_shot_rules(typed_rows: list[dict[str, Any]], rows: list[int], errors: list[list[tuple[str, str]]],
                     defaults: dict[str, Any]) -> dict[int, ShotRef]:
    """Check every shot group and make its shots inherit the anchor's seed, size, fps and tier.

    `typed_rows[i]` is row `rows[i]`; problems are appended to `errors[i]` as ("shot_group", reason).
    Inherited values are written into the typed rows so the ordinary row planning sees them. Returns
    the ShotRef of every grouped row that is still clean.
    """
    groups: dict[str, list[int]] = {}
    for index, typed in enumerate(typed_rows):
        if typed.get("shot_group") is not None:
            groups.setdefault(typed["shot_group"], []).append(index)
    refs: dict[int, ShotRef] = {}
    for group, members in groups.items():
        refs.update(_check_group(group, members, typed_rows, rows, errors, defaults))
    for index, typed in enumerate(typed_rows):  # sequence fields without a group are mistakes, not metadata
        if typed.get("shot_group") is None:
            stray = [name for name in ("anchor", "continue_from", "shot") if typed.get(name) not in (None, False)]
            if stray:
                errors[index].append((SHOT_STAGE, f"{', '.join(stray)} needs a shot_group"))
    return refs


def _check_group(group: str, members: list[int], typed_rows: list[dict[str, Any]], rows: list[int],
                 errors: list[list[tuple[str, str]]], defaults: dict[str, Any]) -> dict[int, ShotRef]:
    def fail(index: int, reason: str) -> None:
        errors[index].append((SHOT_STAGE, f"shot group {group!r}: {reason}"))

    anchors = [i for i in members if typed_rows[i].get("anchor")]
    if len(anchors) > 1:
        for index in members:
            fail(index, f"has {len(anchors)} anchor rows ({', '.join(str(rows[i]) for i in anchors)}); "
                        "exactly one is allowed")
        return {}
    numbers = _shot_numbers(members, typed_rows, rows, fail)
    if numbers is None:
        return {}
    # unmarked, the first shot is the master: the reference workflow renders the wide master first
    anchor = anchors[0] if anchors else min(members, key=lambda i: numbers[i])
    anchor_typed = typed_rows[anchor]
    if errors[anchor]:
        for index in members:
            if index != anchor:
                fail(index, f"its anchor row {rows[anchor]} was rejected")
        return {}
    environment = environment_of(anchor_typed["prompt"], anchor_typed.get("camera"))
    anchor_seed = anchor_typed.get("seed")
    if anchor_seed is None:
        anchor_seed = derive_seed(anchor_typed["prompt"], anchor_typed.get("negative_prompt") or "")
    by_shot = {numbers[i]: i for i in members}
    refs: dict[int, ShotRef] = {}
    for index in sorted(members, key=lambda i: numbers[i]):
        typed, shot = typed_rows[index], numbers[index]
        if index != anchor:
            _inherit(typed, anchor_typed, anchor_seed, defaults, lambda reason, i=index: fail(i, reason), shot)
            if environment not in (typed.get("prompt") or ""):
                fail(index, f"shot {shot} (row {rows[index]}) alters the anchored environment text "
                            f"({altered_words(environment, typed.get('prompt') or '')}); shots reuse the anchor's "
                            f"environment verbatim and change only camera/action text")
        source_shot = _continuation_source(typed, shot, by_shot, index == anchor,
                                           lambda reason, i=index: fail(i, reason))
        if errors[index]:
            continue
        if index == anchor:
            camera = anchor_typed.get("camera") or ""
        else:
            camera = camera_action_of(typed["prompt"], environment, typed.get("camera"))
        refs[index] = ShotRef(group=group, shot=shot, anchor=index == anchor, anchor_row=rows[anchor],
                              anchor_shot=numbers[anchor], camera_action=camera, continue_from_shot=source_shot,
                              continue_from_row=rows[by_shot[source_shot]] if source_shot is not None else None)
    return refs


def _shot_numbers(members: list[int], typed_rows: list[dict[str, Any]], rows: list[int],
                  fail: Any) -> dict[int, int] | None:
    """Each member's shot number: as given, or the row order when the group gives none."""
    given = {i: typed_rows[i].get("shot") for i in members}
    if all(v is None for v in given.values()):
        return {index: position for position, index in enumerate(sorted(members, key=lambda i: rows[i]), start=1)}
    if any(v is None for v in given.values()):
        for index in members:
            fail(index, "give every shot a `shot` number, or none (then row order is shot order)")
        return None
    seen: dict[int, list[int]] = {}
    for index, number in given.items():
        seen.setdefault(number, []).append(index)
    duplicates = {n: ix for n, ix in seen.items() if len(ix) > 1}
    for number, indexes in duplicates.items():
        for index in indexes:
            fail(index, f"shot {number} appears on rows {', '.join(str(rows[i]) for i in indexes)}")
    return None if duplicates else {i: int(n) for i, n in given.items()}


def _inherit(typed: dict[str, Any], anchor: dict[str, Any], anchor_seed: int, defaults: dict[str, Any],
             fail: Any, shot: int) -> None:
    """Unset fields take the anchor's value; a contradicting explicit value is an error."""
    if typed.get("seed") is None:
        typed["seed"] = anchor_seed
    elif typed["seed"] != anchor_seed:
        fail(f"shot {shot} sets seed {typed['seed']}, but shots reuse the anchor's seed {anchor_seed}")
    for name in INHERITED_FIELDS:
        anchors_value = anchor.get(name) if anchor.get(name) is not None else defaults.get(name)
        if typed.get(name) is None:
            typed[name] = anchor.get(name)
        elif typed[name] != anchors_value:
            fail(f"shot {shot} sets {name} {typed[name]!r}, but its anchor uses {anchors_value!r} "
                 f"(a sequence has one {name})")


def _continuation_source(typed: dict[str, Any], shot: int, by_shot: dict[int, int], is_anchor: bool,
                         fail: Any) -> int | None:
    wanted = typed.get("continue_from")
    if wanted is None:
        return None
    if is_anchor:
        fail(f"the anchor (shot {shot}) cannot continue another shot")
        return None
    if typed.get("image"):
        fail(f"shot {shot} sets both image and continue_from; a shot has one conditioning image")
        return None
    earlier = sorted(n for n in by_shot if n < shot)
    source = (earlier[-1] if earlier else None) if wanted == PREVIOUS_SHOT else int(wanted)
    if source is None or source not in by_shot or source >= shot:
        fail(f"shot {shot} continues from shot {wanted}, which is not an earlier shot of the group")
        return None
    return source


def shot_order(clip: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key for a shard's clips: by group and shot number, so a shot comes after the shots it continues
    (a continuation's source is always an earlier shot of its group); ungrouped clips by row."""
    shot = clip.get("shot") or {}
    return (shot.get("group") or "", shot.get("shot") or 0, clip["row"])


def edit_decision(ref: ShotRef, clip_id: str, row: int, spec: dict[str, Any], image: str | None) -> dict[str, Any]:
    """One edit-decision-list line: shot id, camera action, reference input, duration."""
    if ref.anchor:
        reference = f"image {image}" if image else "text prompt only"
    else:
        reference = f"shot {ref.anchor_shot} seed + environment"
        if ref.continue_from_shot is not None:
            reference += f" + last frame of shot {ref.continue_from_shot}"
        elif image:
            reference += f" + image {image}"
    return {"shot_group": ref.group, "shot": ref.shot, "shot_id": f"{ref.group}/{ref.shot:02d}", "clip_id": clip_id,
            "row": row, "anchor": ref.anchor, "camera_action": ref.camera_action or "(anchor framing)",
            "reference": reference, "seed": int(spec["seed"]),
            "duration_s": round(spec["num_frames"] / spec["fps"], 4)}


def crossfade_frames(fps: int, shortest_shot: int, seconds: float = DEFAULT_CROSSFADE_SECONDS) -> int:
    """Frames each cut overlaps: `seconds` at `fps`, at least 1, leaving every shot one frame of its own."""
    return max(0, min(max(1, round(fps * seconds)), shortest_shot - 1))


def stitch(shots: Sequence[np.ndarray], crossfade: int) -> np.ndarray:
    """Cut uint8 shots (F, H, W, 3) into one clip, blending `crossfade` frames linearly at each cut.

    Frames out = sum of frames - crossfade x (shots - 1).
    """
    if not shots:
        raise ValueError("a sequence needs at least one shot")
    shapes = {s.shape[1:] for s in shots}
    if len(shapes) != 1:
        raise ValueError(f"shots differ in frame size: {sorted(shapes)}")
    if crossfade < 0 or any(len(s) <= crossfade for s in shots):
        raise ValueError(f"crossfade of {crossfade} frames needs every shot to be longer than that")
    out = shots[0].astype(np.float32)
    for shot in shots[1:]:
        incoming = shot.astype(np.float32)
        if crossfade:
            weights = (np.arange(1, crossfade + 1, dtype=np.float32) / (crossfade + 1))[:, None, None, None]
            blend = out[-crossfade:] * (1 - weights) + incoming[:crossfade] * weights
            out = np.concatenate([out[:-crossfade], blend, incoming[crossfade:]])
        else:
            out = np.concatenate([out, incoming])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def sequence_key(shot_sha256s: Sequence[str], crossfade: int, fps: int) -> str:
    """Cache key of a stitched sequence: its shots' content addresses and the cut parameters."""
    material = f"sequence-v{SEQUENCE_VERSION}|{fps}|{crossfade}|" + ",".join(shot_sha256s)
    return hashlib.sha256(material.encode()).hexdigest()
