"""Signing: C2PA manifest on every clip that passed the scan, verified as Trusted before it moves on."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Failure,
    Output,
)

from sora_assets.core.render import failpoints
from sora_assets.core.render.clip_record import ClipRecord
from sora_assets.core.render.manifest import clip_manifest
from sora_assets.core.render.sequences import shot_order
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.warehouse.ledger import CACHE_HIT
from sora_assets.core.warehouse.shard_summary import untrusted_clips
from sora_assets.defs.catalog import PROVENANCE
from sora_assets.defs.clip_io import clip_stage
from sora_assets.defs.validation import input_image_file
from sora_assets.resources.home import HomeResource
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.signer import C2paSignerResource, Ingredient
from sora_assets.resources.store import ClipStore


def publishable(clip: ClipRecord, publish_flagged: bool) -> bool:
    if clip["render_status"] == CACHE_HIT:
        return True
    return clip.get("scan_verdict") == "pass" or (publish_flagged and clip.get("scan_verdict") == "flag")


def conditioning_ingredients(spec: GenerationSpec, clip: ClipRecord, by_key: dict[str, ClipRecord],
                             home: HomeResource, store: ClipStore) -> tuple[list[Ingredient], str | None]:
    """What a conditioned clip was made from, as C2PA `inputTo` ingredients: the input image file, or the
    signed clip of the shot it continues. A continuation of a clip that was not signed (blocked, withheld)
    is withheld too: it is built from that clip's last frame."""
    kind, _, ref = (spec.conditioning or "").partition(":")
    if kind == "image":
        path = input_image_file(str(clip["metadata"]["image"]), home.home, store)
        return [Ingredient.image(path, f"input {clip['metadata']['image']}")], None
    if kind == "last_frame":
        source = by_key.get(ref)
        if source is not None and source.get("signed_path"):
            path = Path(source["signed_path"])
        elif source is not None and source["render_status"] == CACHE_HIT and source.get("c2pa_state") == "Trusted":
            path = store.get(source["store_sha256"]).path
        else:
            state = "not in this shard" if source is None else \
                source.get("withheld_reason") or source.get("scan_verdict") or source["render_status"]
            return [], f"the shot it continues was not signed ({state})"
        return [Ingredient(path, f"{source['clip_id']}.mp4 (last frame)", "inputTo", "video/mp4")], None
    return [], None


def verified_cache_hit(clip: ClipRecord, store: ClipStore, signer: C2paSignerResource) -> str:
    """A cache hit is not signed again, but re-verified: the store object must still be Trusted."""
    stored = store.get(clip.store_sha256)
    verification = signer.verify(stored.path)
    if not verification.trusted:
        raise Failure(f"cached clip {stored.sha256} is {verification.state}, not Trusted: "
                      f"{verification.failures}", allow_retries=False)
    return verification.state


def sign_and_verify(clip: ClipRecord, spec: GenerationSpec, ingredients: list[Ingredient],
                    signer: C2paSignerResource, failpoint_dir: Path) -> dict[str, Any]:
    """Sign the work file into `<cache key>.signed.mp4` beside it and refuse anything not verified Trusted."""
    destination = Path(clip.work_path).with_suffix(".signed.mp4")
    failpoints.hit("sign.before", None, failpoint_dir)
    signer.sign(Path(clip.work_path), destination, clip_manifest(
        title=f"{clip.clip_id}.mp4", clip_id=clip.clip_id, model=spec.model_id,
        model_revision=spec.model_revision, seed=spec.seed, steps=int(clip.steps_run),
        prompt_sha256=spec.prompt_sha256(), cache_key=clip.cache_key, conditioning=spec.conditioning,
        shot=clip.shot, preset=spec.preset, model_family=spec.model_family), ingredients)
    verification = signer.verify(destination)
    if not verification.trusted:  # refuse to publish anything we cannot vouch for
        raise Failure(f"signed {clip.clip_id} verified as {verification.state}: "
                      f"{verification.failures}", allow_retries=False)
    return {"signed_path": str(destination), "c2pa_state": verification.state}


SIGNATURES_TRUSTED = "signed_clips_verify_trusted"


@clip_stage("signed_clips", "screened_clips", PROVENANCE, {"c2pa"},
            "Clips signed with a C2PA manifest (c2pa.created, trainedAlgorithmicMedia) and verified Trusted; cache "
            "hits are re-verified. Blocked or unscanned clips are never signed.",
            {SIGNATURES_TRUSTED: "Every clip that passed the safety gate verifies C2PA Trusted under the signing root"})
def signed_clips(context: AssetExecutionContext, screened_clips: list[ClipRecord], signer: C2paSignerResource,
                 store: ClipStore, home: HomeResource, frame_safety: FrameSafetyResource) -> Iterator[Any]:
    clips = ClipRecord.coerce(screened_clips)
    signed: dict[str, dict[str, Any]] = {}  # per work file: duplicates share one signature
    publish_flagged = home.publish_flagged and frame_safety.policy().publish_flagged
    gated: list[ClipRecord] = []  # the clips that passed the safety gate: each must end up Trusted
    by_key = {clip.cache_key: clip for clip in clips}
    # sources before the shots that continue them: a continuation names its source's signed file
    for clip in sorted(clips, key=shot_order):
        if not publishable(clip, publish_flagged):  # the gate: nothing blocked or unscanned is signed
            continue
        gated.append(clip)
        if clip.render_status == CACHE_HIT:
            clip.c2pa_state = verified_cache_hit(clip, store, signer)
            continue
        if clip.work_path not in signed:
            spec = GenerationSpec.from_dict(clip.spec)
            ingredients, withheld = conditioning_ingredients(spec, clip, by_key, home, store)
            if withheld:  # not signed on purpose: it leaves the gated set, so the Trusted check does not count it
                gated.remove(clip)
                clip.withheld_reason = withheld
                context.log.warning(f"{clip.clip_id} withheld: {withheld}")
                continue
            signed[clip.work_path] = sign_and_verify(clip, spec, ingredients, signer, home.home.failpoints)
        clip.update(signed[clip.work_path])
    untrusted = untrusted_clips(gated)
    yield Output(clips, metadata={
        "signed": len(signed), "trusted": sum(s["c2pa_state"] == "Trusted" for s in signed.values()),
        "cache_hits_verified": sum(c.render_status == CACHE_HIT for c in gated),
        "not_signed": len(clips) - len(gated)})
    yield AssetCheckResult(check_name=SIGNATURES_TRUSTED, passed=not untrusted, severity=AssetCheckSeverity.ERROR,
                           metadata={"clips_checked": len(gated), "not_trusted": ", ".join(untrusted) or "none"})
