"""Validation: the GE contract, prompt rules and the text pre-filter; rejections land in the warehouse."""

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, asset
from PIL import Image

from sora_assets.core.intake.batch_files import batch_id_of_key
from sora_assets.core.intake.validation import (
    RejectedRow,
    ValidationOutcome,
    link_conditioning,
    needs_conditioned_model,
    validate_rows,
)
from sora_assets.core.render import failpoints
from sora_assets.core.render.sequences import ShotRef, edit_decision
from sora_assets.core.safety.prefilter import prompt_fingerprint
from sora_assets.core.storage.fsutil import sha256_file
from sora_assets.core.storage.home import Home
from sora_assets.core.warehouse.shard_summary import block_rate
from sora_assets.defs.catalog import INTAKE, owners_of
from sora_assets.defs.partitions import shards_partitions
from sora_assets.resources.home import HomeResource
from sora_assets.resources.safety import FrameSafetyResource
from sora_assets.resources.store import ClipStore
from sora_assets.resources.video_model import VideoModelResource
from sora_assets.resources.warehouse import ParquetWarehouse


def input_image_file(name: str, home: Home, store: ClipStore) -> Path:
    """A row's `image` as a local file: under <home>/inputs/, or an `s3://bucket/key` fetched through the
    store resource on first use (a GPU worker on another machine fetches its own copy)."""
    path = home.input_path(name)
    if name.startswith("s3://") and not path.exists():
        store.fetch_input(name, path)
    return path


def scan_conditioning_images(outcome: ValidationOutcome, home: Home, frame_safety: FrameSafetyResource, key: str,
                             batch_id: str, now: datetime, store: ClipStore) -> list[dict[str, Any]]:
    """Scan every row's conditioning image (`image`, under <home>/inputs/) with the frame policy before
    any GPU time; a blocked or unreadable image rejects its row. Returns the safety events."""
    events: list[dict[str, Any]] = []
    kept = []
    for row in outcome.accepted:
        name = row.metadata.get("image")
        if not name:
            kept.append(row)
            continue
        spec_prompt = row.spec.get("prompt", "")
        try:
            path = input_image_file(str(name), home, store)
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            image_sha256 = sha256_file(path)
        except (OSError, ValueError) as exc:  # missing, unreadable, or outside the home
            outcome.rejected.append(RejectedRow(row.row, row.source_id, "input_scan",
                                                f"conditioning image {str(name)[:80]!r} unusable: {exc}"[:300],
                                                None, prompt_fingerprint(spec_prompt), None))
            continue
        verdict = frame_safety.scan_image(pixels, prompt=spec_prompt)
        events += [{"partition_key": key, "batch_id": batch_id, "clip_id": row.clip_id, "row": row.row,
                    "stage": "input_image", "check_name": e.check_name, "frame_index": None, "label": e.label,
                    "score": e.score, "action": e.action, "policy_version": verdict.policy_version,
                    "detail": f"image={str(name)[:80]}", "recorded_at": now} for e in verdict.events]
        if verdict.verdict == "block":
            outcome.rejected.append(RejectedRow(row.row, row.source_id, "input_scan",
                                                f"conditioning image blocked by the frame policy: "
                                                f"{', '.join(verdict.reasons)} (policy {verdict.policy_version})",
                                                verdict.reasons[0].split(":")[0], prompt_fingerprint(spec_prompt),
                                                None))
            continue
        row.spec["conditioning"] = f"image:{image_sha256}"  # the file's bytes are part of the clip's identity
        kept.append(row)
    outcome.accepted = kept
    return events


@asset(partitions_def=shards_partitions, group_name=INTAKE, owners=owners_of(INTAKE), kinds={"great_expectations"},
       description="Rows that passed the shard contract and the text pre-filter, with their generation specs.")
def validated_prompts(context: AssetExecutionContext, prompt_shards: pd.DataFrame,
                      video_model: VideoModelResource, warehouse: ParquetWarehouse, home: HomeResource,
                      frame_safety: FrameSafetyResource, store: ClipStore) -> list[dict[str, Any]]:
    key = context.partition_key
    batch_id = batch_id_of_key(key)
    failpoints.hit("validate.before", None, home.home.failpoints)
    outcome = validate_rows(prompt_shards, batch_id, video_model.profile(), tiers=video_model.tier_policy(),
                            family_profile=lambda family: video_model.profile(family=family))
    now = datetime.now(UTC)
    image_events = scan_conditioning_images(outcome, home.home, frame_safety, key, batch_id, now, store)
    link_conditioning(outcome, (lambda family: video_model.profile(conditioned=True, family=family))
                      if needs_conditioned_model(outcome) else None)
    warehouse.write("edit_decisions", key, "validated_prompts", [
        {**edit_decision(ShotRef(**a.shot), a.clip_id, a.row, a.spec, a.metadata.get("image")), "partition_key": key,
         "batch_id": batch_id, "recorded_at": now} for a in outcome.accepted if a.shot])
    warehouse.write("rejections", key, "validated_prompts", [
        {**asdict(r), "partition_key": key, "batch_id": batch_id, "recorded_at": now} for r in outcome.rejected])
    warehouse.write("safety_events", key, "validated_prompts", [
        {"partition_key": key, "batch_id": batch_id, "clip_id": None, "row": r.row, "stage": "prefilter",
         "check_name": "text_prefilter", "frame_index": None, "label": r.category, "score": r.score,
         "action": "hold" if r.held else "block", "policy_version": outcome.policy_version,
         "detail": f"rule={r.rule}; prompt_sha256={r.prompt_sha256}", "recorded_at": now} for r in outcome.blocked]
        + [{"partition_key": key, "batch_id": batch_id, "clip_id": None, "row": row, "stage": "prefilter",
            "check_name": "text_prefilter", "frame_index": None, "label": d.category, "score": d.score,
            "action": "flag", "policy_version": outcome.policy_version, "detail": f"rule={d.rule}",
            "recorded_at": now} for row, d in outcome.flagged] + image_events)
    for rejected in outcome.rejected:  # blocked prompts are logged by hash, never by text
        context.log.info(f"row {rejected.row} rejected at {rejected.stage}: {rejected.reason}")
    context.add_output_metadata({
        "accepted": len(outcome.accepted), "rejected": len(outcome.rejected),
        "blocked_by_prefilter": len(outcome.blocked), "flagged_by_prefilter": len(outcome.flagged),
        "prefilter_block_rate": block_rate(len(outcome.blocked), len(prompt_shards)),
        "safety_policy": outcome.policy_version,
        "expectations_passed": f"{outcome.expectations_successful}/{outcome.expectations_evaluated}",
        "warnings": sum(len(a.warnings) for a in outcome.accepted),
        "shot_groups": len({a.shot["group"] for a in outcome.accepted if a.shot}),
        "conditioned": sum(bool(a.spec.get("conditioning")) for a in outcome.accepted),
    })
    return [asdict(a) for a in outcome.accepted]
