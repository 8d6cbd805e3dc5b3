"""Fixed cost of one `render_shard` run: everything but the render, per executor, in the same run.

Builds the tiny model and a Dagster instance (the repo's dagster.yaml), then for each executor submits a
fresh batch of `--clips` rows (one shard, new prompts so nothing is a cache hit), registers it as the inbox
sensor would, and launches the shard as a new process (`dagster job execute`, the same code path as the
daemon's run worker: a fresh process that loads the code location, then executes the job's steps). Two shards
run back to back per executor, interleaved over `--rounds`. From the run's events and the ledger:

- launch -> success: the process's wall time;
- render: the ledger's GPU-seconds for the shard's clips (what the render itself took);
- fixed cost = launch -> success - render;
- launch -> render step start, the render step's own overhead (its duration - render: model load, encoding,
  bookkeeping) and render step end -> success (screen, sign, publish, sequences);
- GPU idle between two consecutive shards (upper bound): shard 1's render step end -> shard 2's render step
  start, plus shard 2's render-step overhead (its model load).

The `worker` variant runs both shards in this one process (`runner.run_shards`), as a long-lived GPU worker would:
its second shard shows the fixed cost with nothing loaded again.

    python bench/shard_overhead.py [--clips 2] [--rounds 1] [--executors multiprocess,in_process,worker] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shard_rows(clips: int, salt: str) -> str:
    return "".join(json.dumps({"prompt": f"a paper boat on a pond, take {salt}-{i}", "tier": "free",
                               "steps": 20, "seed": 100 + i}) + "\n" for i in range(clips))


def step_times(instance, run_id: str) -> dict[str, tuple[float, float]]:  # noqa: ANN001
    from dagster import DagsterEventType

    spans: dict[str, list[float]] = {}
    for record in instance.all_logs(run_id):
        kind = record.dagster_event.event_type if record.dagster_event else None
        if kind == DagsterEventType.STEP_START:
            spans.setdefault(record.step_key, [record.timestamp, record.timestamp])[0] = record.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            spans.setdefault(record.step_key, [record.timestamp, record.timestamp])[1] = record.timestamp
    return {k: (v[0], v[1]) for k, v in spans.items()}


def launch(home_root: Path, dagster_home: Path, key: str, executor: str) -> tuple[float, float, float, int]:
    """The shard as a new process; returns (launched, ended, user CPU of the process tree, exit code)."""
    env = {**os.environ, "SORA_ASSETS_HOME": str(home_root), "DAGSTER_HOME": str(dagster_home),
           "SORA_ASSETS_EXECUTOR": executor, "PYTHONPATH": str(REPO)}
    began = time.time()
    cpu = os.times()
    done = subprocess.run([sys.executable, "-m", "dagster", "job", "execute", "-m", "sora_assets.definitions",
                           "-j", "render_shard", "--tags", json.dumps({"dagster/partition": key})],
                          env=env, cwd=REPO, capture_output=True, text=True, check=False)
    ended = time.time()
    after = os.times()
    if done.returncode:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return began, ended, after.children_user - cpu.children_user, done.returncode


def worker_pair(home, instance, warehouse, clips: int, round_: int, quiet: bool) -> list[dict]:  # noqa: ANN001
    """Two shards run one after the other in this one long-lived process (`runner.run_shards`, in process):
    imports, the Great Expectations context, the pre-filter model and the video pipeline stay loaded between them,
    as on a GPU worker that keeps its model warm. The first shard pays this process's loads, the second none."""
    from dagster import DagsterRunStatus, RunsFilter

    from sora_assets.services.runner import run_shards, submit_file, tick_inbox

    keys = []
    for shard in range(2):
        batch = home.root.parent / f"worker-{round_}-{shard}.jsonl"
        batch.write_text(shard_rows(clips, f"worker{round_}{shard}"))
        submit_file(home, batch)
        keys += tick_inbox(home, instance).new_keys
    marks = [time.time()]
    cpu = [os.times().user]

    def done(_outcome) -> None:  # noqa: ANN001
        marks.append(time.time())
        cpu.append(os.times().user)

    run_shards(home, instance, keys, on_done=done, log_level="ERROR")
    rows, spans = [], []
    for i, key in enumerate(keys):
        (run,) = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": key}), limit=1)
        steps = step_times(instance, run.run_id)
        render = float(warehouse.read("cost_ledger", key)["gpu_seconds"].sum())
        start, end = steps.get("rendered_clips", (marks[i], marks[i]))
        spans.append((start, end))
        rows.append({"executor": "worker (one process, in process)", "round": round_, "shard": i, "exit": 0,
                     "status": str(run.status.value) if run.status != DagsterRunStatus.SUCCESS else "SUCCESS",
                     "launch_to_success_s": round(marks[i + 1] - marks[i], 2),
                     "process_user_cpu_s": round(cpu[i + 1] - cpu[i], 2), "render_s": round(render, 2),
                     "fixed_s": round(marks[i + 1] - marks[i] - render, 2),
                     "launch_to_render_step_s": round(start - marks[i], 2),
                     "render_step_overhead_s": round(end - start - render, 2),
                     "render_step_end_to_success_s": round(marks[i + 1] - end, 2)})
    rows[1]["gpu_idle_between_shards_s"] = round(spans[1][0] - spans[0][1] + rows[1]["render_step_overhead_s"], 2)
    if not quiet:
        for row in rows:
            print(row, flush=True)
    return rows


def warm_profile(dagster_home: Path, queue: str, workers: int = 1) -> None:
    """The repo's dagster.yaml (SQLite) with the warm-worker launcher, one run per worker, 1 s dequeue: the
    settings infra/dagster-warm-worker.yaml gives a Postgres deployment."""
    import yaml

    profile = yaml.safe_load((REPO / "dagster.yaml").read_text())
    warm = yaml.safe_load((REPO / "infra" / "dagster-warm-worker.yaml").read_text())
    profile["run_coordinator"] = warm["run_coordinator"]
    profile["run_launcher"] = {**warm["run_launcher"], "config": {"redis_url": {"env": "SORA_ASSETS_WORKER_REDIS"},
                                                                  "queue": queue}}
    profile["concurrency"]["runs"]["max_concurrent_runs"] = workers
    profile["concurrency"]["pools"]["default_limit"] = workers  # the GPU lock, not the pool, serialises renders
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(profile))


def render_hold(instance, run_id: str) -> tuple[float, float, float]:  # noqa: ANN001
    """(held from, held until, waited) of the run's GPU lock, from its rendered_clips metadata."""
    from dagster import AssetKey

    (record,) = [r for r in instance.fetch_materializations(AssetKey("rendered_clips"), limit=50).records
                 if r.run_id == run_id]
    meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return meta.get("gpu_held_from", 0.0), meta.get("gpu_held_until", 0.0), meta.get("gpu_lock_wait_s", 0.0)


def wait_serving(redis_url: str, procs: list[subprocess.Popen], timeout_s: float = 300) -> None:
    """Until every worker (procs[1:]) has its heartbeat key: it is about to block on the queue."""
    from sora_assets.services.warm_worker import serving_pids

    deadline = time.monotonic() + timeout_s
    while not {p.pid for p in procs[1:]} <= serving_pids(redis_url):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"workers not serving; exit codes {[p.poll() for p in procs]}")
        time.sleep(0.5)  # a benchmark's poll of another process's progress, not a test's synchronisation


def wait_runs(instance, count: int, procs: list[subprocess.Popen], timeout_s: float = 600) -> list:  # noqa: ANN001
    from dagster import RunsFilter

    deadline = time.monotonic() + timeout_s
    while True:
        runs = [r for r in instance.get_runs(RunsFilter(job_name="render_shard")) if r.is_finished]
        if len(runs) >= count:
            return list(reversed(runs))
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"{len(runs)} of {count} runs finished; daemon/worker exit codes "
                               f"{[p.poll() for p in procs]}")
        time.sleep(0.5)  # a benchmark's poll of another process's progress, not a test's synchronisation


def warm_daemon_pair(tmp: Path, model_folder: Path, clips: int, round_: int, quiet: bool,
                     workers: int = 1) -> list[dict]:
    """The production path with warm workers: `dagster-daemon` (inbox sensor, queue, run monitoring) and
    `workers` `sora-assets worker` processes on one GPU, WarmWorkerRunLauncher over Redis on 127.0.0.1. A one-clip
    warm-up shard per worker first (each worker's own cold start), then two shards dropped together. One worker:
    the second shard waits in Dagster's queue while the first renders and is handed over when it ends. Two
    workers (`--gpu-lock` on one file): each takes a shard, and the second's render waits on the lock while the
    first renders, then starts as the first releases it; GPU idle = lock handover + the second's hold minus its
    render seconds. Launch = the run's launch time (the coordinator handing it to the launcher)."""
    import uuid

    from dagster import DagsterInstance

    from sora_assets.core.storage.home import Home
    from sora_assets.resources.warehouse import ParquetWarehouse
    from sora_assets.services.runner import submit_file

    root = tmp / f"warm{workers}-{round_}"
    home = Home.from_env(root / "home").ensure()
    shutil.copytree(model_folder, home.default_model_path, dirs_exist_ok=True)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    warm_profile(root / "dagster", queue, workers)
    env = {**os.environ, "SORA_ASSETS_HOME": str(home.root), "DAGSTER_HOME": str(root / "dagster"),
           "SORA_ASSETS_WORKER_REDIS": "redis://127.0.0.1:6379/14", "PYTHONPATH": str(REPO)}
    lock = ["--gpu-lock", str(root / "gpu0.lock")] if workers > 1 else []
    with DagsterInstance.from_config(str(root / "dagster")):
        pass  # the SQLite storage created here, once: processes creating it together race on its schema
    logs = [(root / name).open("w") for name in ("daemon.log", *(f"worker{i}.log" for i in range(workers)))]
    procs = [subprocess.Popen(["dagster-daemon", "run", "-m", "sora_assets.definitions"], cwd=REPO, env=env,
                              stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True),
             *(subprocess.Popen([sys.executable, "-m", "sora_assets.cli", "worker", *lock], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True) for log in logs[1:])]
    warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
    label = "daemon + warm worker" if workers == 1 else f"daemon + {workers} warm workers, one GPU lock"
    try:
        with DagsterInstance.from_config(str(root / "dagster")) as instance:
            wait_serving(env["SORA_ASSETS_WORKER_REDIS"], procs)
            for worker in range(workers):  # every worker blocks on the queue: each takes one and pays its loads
                warm_up = root / f"warm-up-{worker}.jsonl"
                warm_up.write_text(shard_rows(1, f"warmup{round_}-{worker}"))
                submit_file(home, warm_up)
            wait_runs(instance, workers, procs)
            for shard in range(2):
                batch = root / f"pair-{shard}.jsonl"
                batch.write_text(shard_rows(clips, f"warm{workers}{round_}{shard}"))
                submit_file(home, batch)
            runs = wait_runs(instance, workers + 2, procs)[workers:]
            rows, spans, holds = [], [], []
            for i, run in enumerate(sorted(runs, key=lambda r: instance.get_run_stats(r.run_id).launch_time)):
                stats = instance.get_run_stats(run.run_id)
                key = run.tags["dagster/partition"]
                render = float(warehouse.read("cost_ledger", key)["gpu_seconds"].sum())
                steps = step_times(instance, run.run_id)
                start, end = steps["rendered_clips"]
                spans.append((start, end))
                holds.append(render_hold(instance, run.run_id))
                rows.append({"executor": label, "round": round_, "shard": i, "exit": 0,
                             "status": str(run.status.value),
                             "launch_to_success_s": round(stats.end_time - stats.launch_time, 2),
                             "process_user_cpu_s": None, "render_s": round(render, 2),
                             "fixed_s": round(stats.end_time - stats.launch_time - render, 2),
                             "launch_to_render_step_s": round(start - stats.launch_time, 2),
                             "render_step_overhead_s": round(end - start - render, 2),
                             "render_step_end_to_success_s": round(stats.end_time - end, 2),
                             "steps_s": {k: round(b - a, 2) for k, (a, b) in sorted(steps.items(),
                                                                                    key=lambda kv: kv[1])}})
            if workers == 1:
                rows[1]["gpu_idle_between_shards_s"] = round(
                    spans[1][0] - spans[0][1] + rows[1]["render_step_overhead_s"], 2)
            else:  # the shard that held the GPU second: its wait for the handover plus its hold's non-render time
                (first, _), (second, index) = sorted((hold, i) for i, hold in enumerate(holds))
                rows[index]["gpu_lock_wait_s"] = second[2]
                rows[index]["gpu_idle_between_shards_s"] = round(
                    max(0.0, second[0] - first[1]) + (second[1] - second[0]) - rows[index]["render_s"], 2)
    except RuntimeError as exc:  # a process died: say why, from its log
        for log in logs:
            log.flush()
        tails = {Path(log.name).name: Path(log.name).read_text()[-1500:] for log in logs}
        raise RuntimeError(f"{exc}\n" + "\n".join(f"--- {name}\n{tail}" for name, tail in tails.items())) from None
    finally:
        from sora_assets.services.supervise import stop_group

        for proc in procs:
            stop_group(proc, 20)
        for log in logs:
            log.close()
    if not quiet:
        for row in rows:
            print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--executors", default="multiprocess,in_process,worker,warm_daemon",
                        help="multiprocess / in_process: a new process per shard (as the daemon launches runs); "
                             "worker: both shards in this one process; warm_daemon: dagster-daemon + "
                             "`sora-assets worker` (WarmWorkerRunLauncher, Redis on 127.0.0.1:6379); warm_daemon2: "
                             "the same with two workers sharing one GPU lock")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from dagster import DagsterInstance

    from sora_assets.core.storage.home import Home
    from sora_assets.resources.home import default_resources
    from sora_assets.resources.warehouse import ParquetWarehouse
    from sora_assets.services.runner import submit_file, tick_inbox

    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Home.from_env(Path(tmp) / "home").ensure()
        default_resources(home)["video_model"].ensure_model()
        dagster_home = Path(tmp) / "dagster"
        dagster_home.mkdir()
        shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
        warehouse = ParquetWarehouse(root=str(home.warehouse), db_path=str(home.warehouse_db))
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            for round_ in range(args.rounds):
                for executor in args.executors.split(","):
                    if executor in ("warm_daemon", "warm_daemon2"):
                        results.extend(warm_daemon_pair(Path(tmp), home.default_model_path, args.clips, round_,
                                                        args.json, workers=2 if executor == "warm_daemon2" else 1))
                        continue
                    if executor == "worker":
                        results.extend(worker_pair(home, instance, warehouse, args.clips, round_, args.json))
                        continue
                    pair = []
                    for shard in range(2):  # two shards back to back: the GPU idle between them
                        batch = Path(tmp) / f"{executor}-{round_}-{shard}.jsonl"
                        batch.write_text(shard_rows(args.clips, f"{executor}{round_}{shard}"))
                        submit_file(home, batch)
                        (key,) = tick_inbox(home, instance).new_keys
                        began, ended, cpu, code = launch(home.root, dagster_home, key, executor)
                        (run,) = instance.get_runs(filters=None, limit=1)
                        steps = step_times(instance, run.run_id)
                        render = float(warehouse.read("cost_ledger", key)["gpu_seconds"].sum())
                        start, end = steps.get("rendered_clips", (began, began))
                        pair.append({"executor": executor, "round": round_, "shard": shard, "exit": code,
                                     "status": str(run.status.value), "launch_to_success_s": round(ended - began, 2),
                                     "process_user_cpu_s": round(cpu, 2), "render_s": round(render, 2),
                                     "fixed_s": round(ended - began - render, 2),
                                     "launch_to_render_step_s": round(start - began, 2),
                                     "render_step_overhead_s": round(end - start - render, 2),
                                     "render_step_end_to_success_s": round(ended - end, 2),
                                     "_render_step": (start, end)})
                    first, second = pair
                    second["gpu_idle_between_shards_s"] = round(
                        second["_render_step"][0] - first["_render_step"][1] + second["render_step_overhead_s"], 2)
                    for row in pair:
                        row.pop("_render_step")
                        results.append(row)
                        if not args.json:
                            print(row, flush=True)
    if args.json:
        print(json.dumps({"date": datetime.now(UTC).isoformat(timespec="minutes"), "runs": results}, indent=2))


if __name__ == "__main__":
    main()
