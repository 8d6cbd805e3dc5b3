"""Sequences: once every shot of a group is published, cut them into one signed MP4 with crossfades."""

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, Failure, MetadataValue, Output

from sora_assets.core.intake.batch_files import batch_id_of_key
from sora_assets.core.render.clip_record import ClipRecord
from sora_assets.core.render.manifest import sequence_manifest
from sora_assets.core.render.sequences import crossfade_frames, sequence_key, stitch
from sora_assets.core.render.video_io import decode_mp4, encode_mp4
from sora_assets.core.storage.fsutil import atomic_write_bytes
from sora_assets.defs.catalog import WAREHOUSE
from sora_assets.defs.clip_io import clip_stage
from sora_assets.resources.home import HomeResource
from sora_assets.resources.signer import C2paSignerResource, Ingredient
from sora_assets.resources.store import ClipStore
from sora_assets.resources.warehouse import ParquetWarehouse

SEQUENCES_TRUSTED = "stitched_sequences_are_trusted"


def shot_groups(clips: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The shard's shot groups, each in shot order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for clip in clips:
        if clip.get("shot"):
            groups.setdefault(clip["shot"]["group"], []).append(clip)
    return {group: sorted(shots, key=lambda c: c["shot"]["shot"]) for group, shots in sorted(groups.items())}


def _stitch(group: str, shots: list[ClipRecord], cut: Path, crossfade: int, fps: int, store: ClipStore,
            signer: C2paSignerResource, key: str, now: datetime) -> Any:
    """Cut a new sequence from its published shots, sign it with the shots as ingredients and publish it;
    only a new cut fetches (and verifies) and decodes its shots."""
    shot_files = [store.get(c["sha256"]).path for c in shots]
    frames = stitch([decode_mp4(path) for path in shot_files], crossfade)
    atomic_write_bytes(cut, encode_mp4(frames, fps))
    signed = cut.with_suffix(".signed.mp4")
    signer.sign(cut, signed, sequence_manifest(
        title=f"{group}.mp4", shot_group=group, shot_clip_ids=[c["clip_id"] for c in shots],
        crossfade_frames=crossfade, fps=fps, frames=len(frames)),
        [Ingredient(path, f"{c['clip_id']}.mp4", "componentOf", "video/mp4")
         for c, path in zip(shots, shot_files, strict=True)])
    return store.publish(signed, cut.stem, {  # the cut is named by its cache key
        "kind": "sequence", "partition_key": key, "shot_group": group, "shots": [c["sha256"] for c in shots],
        "crossfade_frames": crossfade, "fps": fps, "frames": len(frames), "published_at": now.isoformat()})


def _sequence_row(row: dict[str, Any], shots: list[ClipRecord], work: Path, store: ClipStore,
                  signer: C2paSignerResource, problems: list[str]) -> dict[str, Any]:
    """A complete shot group's row: its cut (stored already, or stitched now), verified Trusted."""
    group, key, now = row["shot_group"], row["partition_key"], row["recorded_at"]
    fps = int(shots[0]["spec"]["fps"])
    crossfade = crossfade_frames(fps, min(int(c["spec"]["num_frames"]) for c in shots))
    cache_key = sequence_key([c["sha256"] for c in shots], crossfade, fps)
    stored, status = store.lookup(cache_key), "cached"
    if stored is None:
        stored = _stitch(group, shots, work / f"{cache_key}.mp4", crossfade, fps, store, signer, key, now)
        status = "stitched"
    verification = signer.verify(stored.path)
    if not verification.trusted:
        raise Failure(f"sequence {group!r} verified as {verification.state}: {verification.failures}",
                      allow_retries=False)
    frames_out = int(verification.sequence.get("frames", 0))
    if len(verification.ingredients) != len(shots):
        problems.append(f"{group}: {len(verification.ingredients)} ingredients for {len(shots)} shots")
    return {**row, "status": status, "frames": frames_out, "fps": fps, "crossfade_frames": crossfade,
            "duration_s": frames_out / fps, "sha256": stored.sha256, "store_path": str(stored.path),
            "c2pa_state": verification.state, "ingredients": len(verification.ingredients)}


def _sequences_table(rows: list[dict[str, Any]]) -> str:
    table = ["| sequence | status | shots | frames | seconds | C2PA |", "|---|---|---|---|---|---|"]
    table += [f"| {r['shot_group']} | {r['status']} | {r['shots']} | {r.get('frames') or ''} | "
              f"{'' if r.get('duration_s') is None else format(r['duration_s'], '.2f')} | {r.get('c2pa_state') or ''} |"
              for r in rows]
    return "\n".join(table)


@clip_stage("sequences", "published_clips", WAREHOUSE, {"ffmpeg", "c2pa"},
            "One MP4 per shot group whose shots all published: the shots in order, cut with a short crossfade, "
            "signed with a C2PA manifest whose ingredients are the shot clips.",
            {SEQUENCES_TRUSTED: "Every stitched sequence verifies Trusted and carries one ingredient per shot."})
def sequences(context: AssetExecutionContext, published_clips: list[ClipRecord], store: ClipStore,
              signer: C2paSignerResource, warehouse: ParquetWarehouse, home: HomeResource) -> Iterator[Any]:
    key = context.partition_key
    now = datetime.now(UTC)
    work = home.home.work / key / "sequences"
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for group, shots in shot_groups(ClipRecord.coerce(published_clips)).items():
        row = {"partition_key": key, "batch_id": batch_id_of_key(key), "shot_group": group, "shots": len(shots),
               "shot_clip_ids": ",".join(c["clip_id"] for c in shots), "recorded_at": now}
        missing = [f"{c['clip_id']} ({c['final_status']})" for c in shots if not c.get("sha256")]
        if missing:
            rows.append({**row, "status": "incomplete", "missing": ", ".join(missing)})
            context.log.warning(f"sequence {group!r} not stitched: {', '.join(missing)} did not publish")
        else:
            rows.append(_sequence_row(row, shots, work, store, signer, problems))
    shutil.rmtree(work, ignore_errors=True)
    warehouse.write("sequences", key, "sequences", rows)
    done = [r for r in rows if r["status"] != "incomplete"]
    yield Output(rows, metadata={"sequences": len(rows), "stitched": len(done), "incomplete": len(rows) - len(done),
                                 "sequences_table": MetadataValue.md(_sequences_table(rows))})
    yield AssetCheckResult(check_name=SEQUENCES_TRUSTED, passed=not problems, severity=AssetCheckSeverity.ERROR,
                           metadata={"stitched": len(done), "problems": "; ".join(problems) or "none"})
