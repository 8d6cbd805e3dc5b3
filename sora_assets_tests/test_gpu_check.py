"""bench/gpu_check.sh --cpu: the real-size Wan2.1-1.3B architecture built, saved sharded, loaded and rendered on CPU.

Part of the default run since it became cheap (bf16 on CPU, passive OpenMP waits, build and render in one
process: ~30 CPU-seconds, 4.5 GiB peak RSS; docs/BENCHMARKS.md). `-m realsize` selects it alone."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sora_assets_tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.realsize]


def _build_module():  # noqa: ANN202 - bench/ is scripts, not a package
    spec = importlib.util.spec_from_file_location("build_wan13b", REPO / "bench" / "build_wan13b.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_cpu_mode_builds_loads_and_renders_the_real_size_model_bare_through_the_pipeline_and_a_preset(
        tmp_path: Path) -> None:
    figures_path, cache = tmp_path / "figures.json", tmp_path / "cache"
    try:
        # a clean cache: the test always builds the random-weight folder and saves it sharded
        done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--cpu", "--cache", str(cache),
                               "--json", str(figures_path)], env={**os.environ, "TMPDIR": str(tmp_path)},
                              capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
        report = json.loads(figures_path.read_text())
        assert report["built_s"] is not None  # built in this run, not reused
        model_dir = Path(report["model_dir"])
        assert model_dir.parent == cache
        # on disk: the transformer is sharded (an index naming >= 2 shard files that exist), bf16 like the
        # published checkpoint; about 2 bytes per parameter of the published 1.42B transformer
        index = json.loads((model_dir / "transformer" / "diffusion_pytorch_model.safetensors.index.json").read_text())
        shard_files = sorted(set(index["weight_map"].values()))
        assert len(shard_files) >= 2 and shard_files == report["shards"]
        on_disk = sum((model_dir / "transformer" / name).stat().st_size for name in shard_files)
        assert 2.6e9 < on_disk < 3.2e9
        assert (model_dir / "text_encoder" / "config.json").is_file() and (model_dir / "vae" / "config.json").is_file()
        # loaded through DiffusionPipeline.from_pretrained(local_files_only=True): the real pipeline class, from
        # that folder, every transformer tensor from the shards' index
        loaded = report["loaded"]
        assert loaded["pipeline_class"] == "WanPipeline" and Path(loaded["name_or_path"]) == model_dir
        assert loaded["indexed_shards"] == shard_files
        assert loaded["indexed_tensors"] == loaded["transformer_tensors"]
        assert report["params"] > 1.4e9  # the published transformer, all 30 layers
        assert loaded["transformer_dtype"] == f"torch.{report['dtype']}"
        # every render gave 9 finite 64x64 RGB frames
        assert set(report["frames"]) == {"bare", "exact", "fast"}
        for seen in report["frames"].values():
            assert seen == {"shape": [9, 64, 64, 3], "finite": True}
        figures = report["figures"]
        assert figures["exact"]["identical_to_bare"]  # the pipeline's frames are the bare loop's, bit for bit
        assert figures["exact"]["s_per_step"] > 0
        # the printed table carries the preset's speed-up, the same figure as the JSON
        row = next(line for line in done.stdout.splitlines() if line.startswith("| pipeline, fast |"))
        speedup = float(row.split("|")[5].strip().rstrip("x"))
        assert speedup == pytest.approx(figures["fast"]["speedup"], abs=0.006) and speedup > 0
        assert 0 < figures["fast"]["ssim"] <= 1
        assert "gpu_check (cpu) finished" in done.stdout
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # 3.9 GB: not left in pytest's kept tmp dirs


def test_the_build_cache_reuses_a_complete_folder_of_the_same_key_and_rebuilds_for_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _build_module()
    built: list[tuple[Path, int]] = []

    def fake_build(target: Path, layers: int, text_layers: int, device: str = "cpu") -> Path:
        target.mkdir(parents=True)
        (target / "model_index.json").write_text("{}")
        built.append((target, layers))
        return target

    monkeypatch.setattr(module, "build", fake_build)
    first, first_s = module.build_cached(tmp_path, 30, 2, "cpu")
    again, again_s = module.build_cached(tmp_path, 30, 2, "cpu")
    assert first == again and first_s is not None and again_s is None and len(built) == 1
    assert not list(tmp_path.glob(".*partial"))  # built next to its name and renamed
    other, _ = module.build_cached(tmp_path, 30, 1, "cpu")  # other arguments: another key, built, old one kept
    assert other != first and len(built) == 2 and first.is_dir()
    assert module.build_key(30, 2, "cpu") != module.build_key(30, 2, "cuda")
    assert module.build_key(30, 2, "cuda:0") == module.build_key(30, 2, "cuda")


def test_an_interrupted_build_is_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _build_module()

    def dying_build(target: Path, layers: int, text_layers: int, device: str = "cpu") -> Path:
        target.mkdir(parents=True)
        (target / "model_index.json").write_text("{}")
        raise KeyboardInterrupt  # killed after the index, before the weights were complete

    monkeypatch.setattr(module, "build", dying_build)
    with pytest.raises(KeyboardInterrupt):
        module.build_cached(tmp_path, 30, 2, "cpu")
    assert list(tmp_path.iterdir()) == []  # neither the final name nor the partial folder is left
