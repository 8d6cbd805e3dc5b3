"""The render queue's failure policy and the shard triage, without a model: fakes stand in for the render."""

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from sora_assets.core.render.clip_record import RenderStatus
from sora_assets.core.render.failures import ModelLoadError
from sora_assets.core.render.queue import PermanentRenderError, RenderQueue
from sora_assets.core.render.spec import GenerationSpec
from sora_assets.core.render.triage import settle_duplicates, triage


class Nan(RuntimeError):
    def __init__(self, clip_ids: list[str]):
        super().__init__("nan")
        self.step, self.clip_ids, self.gpu_seconds = 3, clip_ids, 1.0


class Fenced(Exception):
    pass


@dataclass
class Job:
    clip_id: str
    alone: bool = False


@dataclass
class Handler:
    events: list[tuple[str, Any]] = field(default_factory=list)

    def rendered(self, job: Job, result: Any, started: Any) -> None:
        self.events.append(("rendered", job.clip_id))

    def non_finite(self, job: Job, error: Any, group_size: int, started: Any) -> None:
        self.events.append(("nan", job.clip_id))

    def alone(self, job: Job) -> Job:
        return Job(job.clip_id, alone=True)

    def failed(self, group: list[Job], error: BaseException, verdict: Any) -> None:
        self.events.append(("failed", (tuple(j.clip_id for j in group), verdict.reason)))


def queue_with(render: Any) -> tuple[RenderQueue, Handler]:
    handler = Handler()
    return RenderQueue(render, handler, Nan, passthrough=(Fenced,)), handler


def test_nan_dead_letters_the_bad_clip_and_renders_its_batch_mate_alone() -> None:
    calls: list[tuple[str, ...]] = []

    def render(group: list[Job]) -> list[str]:
        calls.append(tuple(j.clip_id + ("*" if j.alone else "") for j in group))
        if len(group) == 2:
            raise Nan(["a"])
        return ["ok"] * len(group)

    queue, handler = queue_with(render)
    queue.run([[Job("a"), Job("b")], [Job("c")]])
    assert calls == [("a", "b"), ("c",), ("b*",)]  # the healthy mate goes to the back, rebuilt to render alone
    assert handler.events == [("nan", "a"), ("rendered", "c"), ("rendered", "b")]


def test_out_of_memory_splits_a_group_and_a_single_clips_oom_propagates_for_the_retry() -> None:
    def render(group: list[Job]) -> list[str]:
        if len(group) > 1 or group[0].clip_id == "b":
            raise RuntimeError("CUDA out of memory")
        return ["ok"]

    queue, handler = queue_with(render)
    with pytest.raises(RuntimeError, match="out of memory"):
        queue.run([[Job("a"), Job("b")]])
    assert handler.events == [("failed", (("a", "b"), "out_of_memory")), ("rendered", "a"),
                              ("failed", (("b",), "out_of_memory"))]


def test_a_permanent_error_stops_with_every_waiting_job_and_a_fence_passes_through() -> None:
    def broken(group: list[Job]) -> list[str]:
        raise ModelLoadError("no model")

    queue, _ = queue_with(broken)
    later = [Job("z")]
    with pytest.raises(PermanentRenderError) as stopped:
        queue.run([[Job("a")], [Job("b")]], later)
    assert [j.clip_id for j in stopped.value.waiting] == ["a", "b", "z"]
    assert stopped.value.verdict.reason == "model_unavailable" and not stopped.value.verdict.retryable

    def fenced(group: list[Job]) -> list[str]:
        raise Fenced()

    queue, handler = queue_with(fenced)
    with pytest.raises(Fenced):
        queue.run([[Job("a")]])
    assert handler.events == []  # a fenced step records nothing


def spec(seed: int) -> dict[str, Any]:
    return GenerationSpec(prompt="p", negative_prompt="", scheduler="unipc", seed=seed, width=64, height=64,
                          num_frames=9, fps=8, steps=4, guidance_scale=5.0, model_id="tiny-wan",
                          model_revision="r").to_dict()


def row(n: int, seed: int) -> dict[str, Any]:
    return {"row": n, "clip_id": f"c{n}", "tier": "paid", "spec": spec(seed)}


def test_triage_orders_cache_hit_dead_letter_duplicate_quarantine_reuse_and_new_jobs() -> None:
    keys = {s: GenerationSpec.from_dict(spec(s)).cache_key() for s in range(1, 7)}
    stored = {keys[1]: SimpleNamespace(sha256="s1", sidecar={"steps_run": 4, "partition_key": "other"})}
    dead = {keys[2]: {"step": 2, "reason": "non_finite_latents", "recorded_at": "t", "partition_key": "x"}}
    blocked = {keys[4]: {"partition_key": "k", "gpu_seconds": 0.5, "reasons": "nsfw", "policy_version": "v",
                         "frames_sha256": "f", "steps_run": 4, "device": "cpu", "render_started_at": None,
                         "quarantine_path": "/q"}}
    finished = {keys[5]: {"render_status": "rendered", "work_path": "/w/5.mp4", "gpu_seconds": 0.25, "steps_run": 4}}
    rows = [row(1, 1), row(2, 2), row(3, 3), row(4, 3 + 1), row(5, 5), row(6, 6), row(7, 3)]
    out = triage(rows, "k", stored.get, dead, blocked, set(), finished.get)
    status = [c.render_status for c in out.clips]
    assert status == [RenderStatus.CACHE_HIT, RenderStatus.DEAD_LETTER, None, RenderStatus.QUARANTINED,
                      RenderStatus.RENDERED, None, RenderStatus.DUPLICATE]
    assert [c.clip_id for c in out.to_render] == ["c3", "c6"] and out.clips[4].reused_attempt
    assert out.clips[3].billable and out.clips[3].gpu_seconds == 0.5  # blocked in this shard: its spend
    out.clips[2].update(render_status="rendered", work_path="/w/3.mp4", steps_run=4, frames_sha256="h3")
    settle_duplicates(out)
    assert (out.clips[6].work_path, out.clips[6].frames_sha256) == ("/w/3.mp4", "h3")  # follows its source
