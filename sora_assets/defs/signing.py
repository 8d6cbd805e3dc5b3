"""Signing: C2PA manifest on every clip that passed the scan, verified as Trusted before it moves on."""

from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, Failure, asset

from sora_assets.core import failpoints
from sora_assets.core.ledger import CACHE_HIT
from sora_assets.core.manifest import clip_manifest
from sora_assets.core.spec import GenerationSpec
from sora_assets.defs.partitions import shards_partitions
from sora_assets.resources.home import HomeResource
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.signer import C2paSignerResource
from sora_assets.resources.store import ClipStore


def publishable(clip: dict[str, Any], publish_flagged: bool) -> bool:
    if clip["render_status"] == CACHE_HIT:
        return True
    return clip.get("scan_verdict") == "pass" or (publish_flagged and clip.get("scan_verdict") == "flag")


@asset(partitions_def=shards_partitions, group_name="provenance", kinds={"c2pa"},
       description="Clips signed with a C2PA manifest (c2pa.created, trainedAlgorithmicMedia) and verified Trusted.")
def signed_clips(context: AssetExecutionContext, screened_clips: list[dict[str, Any]],
                 signer: C2paSignerResource, store: ClipStore,
                 home: HomeResource, frame_safety: FrameSafetyResource) -> list[dict[str, Any]]:
    signed: dict[str, dict[str, Any]] = {}
    publish_flagged = home.publish_flagged and frame_safety.policy().publish_flagged
    for clip in screened_clips:
        if not publishable(clip, publish_flagged):  # the gate: nothing blocked or unscanned is signed
            continue
        if clip["render_status"] == CACHE_HIT:
            stored = store.get(clip["store_sha256"])
            verification = signer.verify(stored.path)
            if not verification.trusted:
                raise Failure(f"cached clip {stored.sha256} is {verification.state}, not Trusted: "
                              f"{verification.failures}", allow_retries=False)
            clip["c2pa_state"] = verification.state
            continue
        work_path = clip["work_path"]
        if work_path not in signed:
            spec = GenerationSpec.from_dict(clip["spec"])
            destination = Path(work_path).with_suffix(".signed.mp4")
            failpoints.hit("sign.before", None, home.home.failpoints)
            signer.sign(Path(work_path), destination, clip_manifest(
                title=f"{clip['clip_id']}.mp4", clip_id=clip["clip_id"], model=spec.model_id,
                model_revision=spec.model_revision, seed=spec.seed, steps=int(clip["steps_run"]),
                prompt_sha256=spec.prompt_sha256(), cache_key=clip["cache_key"]))
            verification = signer.verify(destination)
            if not verification.trusted:  # refuse to publish anything we cannot vouch for
                raise Failure(f"signed {clip['clip_id']} verified as {verification.state}: "
                              f"{verification.failures}", allow_retries=False)
            signed[work_path] = {"signed_path": str(destination), "c2pa_state": verification.state}
        clip.update(signed[work_path])
    context.add_output_metadata({"signed": len(signed),
                                 "trusted": sum(s["c2pa_state"] == "Trusted" for s in signed.values())})
    return screened_clips
