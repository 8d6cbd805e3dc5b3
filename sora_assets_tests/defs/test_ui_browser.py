"""The Dagster UI tells a batch's story: a real Chromium, driven by Selenium, against a real `dagster dev`.

A small batch is rendered first into the home whose Dagster instance `dagster dev` then serves, so the
pages show real materialisations. Screenshots land in the test's tmp dir and, when
SORA_ASSETS_TEST_ARTIFACTS is set, are copied there. Every process is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sora_assets.core.storage.home import Home
from sora_assets_tests.conftest import registered_batch
from sora_assets_tests.defs.test_dagster_dev import graphql, running_dagster_dev, wait_for_asset_nodes
from sora_assets_tests.defs.test_definitions import DESIGN_ASSETS, DESIGN_GROUPS, SHARD_CHECKS

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Without these flags Chromium phones home (updates, sync, QUIC probes) and floods a closed network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1600,1500"]  # tall enough for a shard's whole metadata table
ARTIFACTS_ENV = "SORA_ASSETS_TEST_ARTIFACTS"
UI_BATCH = ('{"id": "harbour", "prompt": "a quiet harbour at dawn", "steps": 3, "tier": "paid"}\n'
            '{"id": "lighthouse", "prompt": "a lighthouse in fog", "steps": 3, "tier": "paid"}\n'
            '{"id": "blocked-gore", "prompt": "graphic gore: a decapitated body in an alley", "tier": "paid"}\n')
DESIGN_EDGES = {("prompt_shards", "validated_prompts"), ("validated_prompts", "render_plan"),
                ("validated_prompts", "rendered_clips"), ("rendered_clips", "screened_clips"),
                ("screened_clips", "signed_clips"), ("signed_clips", "published_clips"),
                ("published_clips", "sequences")}
# Asset nodes (name + box) and edges (the SVG path from upstream's right side to downstream's left side).
GRAPH_JS = """
const nodes = [...document.querySelectorAll('foreignObject')].flatMap(fo => {
  const name = fo.querySelector('[class*="AssetNode_assetName"]');
  const box = fo.querySelector('[class*="AssetNode_minimalAssetNodeBox"]');
  return name ? [{name: name.textContent.trim(), x: +fo.getAttribute('x'), y: +fo.getAttribute('y'),
                  w: +fo.getAttribute('width'), h: +fo.getAttribute('height'),
                  materialized: !!box && box.getAttribute('style').includes('background-green')}] : [];
});
const edges = [...document.querySelectorAll('svg path[marker-end]')].map(p => {
  const numbers = p.getAttribute('d').match(/-?[0-9.]+/g).map(Number);
  return {x1: numbers[0], y1: numbers[1], x2: numbers[numbers.length - 2], y2: numbers[numbers.length - 1]};
});
return {nodes, edges};
"""
ANIMATIONS_DONE_JS = "return document.getAnimations().every(a => a.playState !== 'running');"


def apt_install_chromium() -> None:
    """Debian's Chromium and its driver, never a browser download; fails the run with the reason if impossible."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail(f"{CHROMIUM} / {CHROMEDRIVER} missing and apt-get is unavailable or not root: "
                    "install Debian's `chromium chromium-driver` packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0:  # a fresh machine may not have package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=600)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        output = result.stdout[-2000:] + result.stderr[-2000:]
        pytest.fail(f"could not apt-get install chromium chromium-driver:\n{output}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    apt_install_chromium()
    return CHROMIUM


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[object]:
    """Headless Chromium through /usr/bin/chromedriver (Selenium Manager stays offline); stopped by PID."""
    import psutil
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver or browser
    options = Options()
    options.binary_location = str(chromium)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path, prefix='chromium-')}"]:
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"),
                      popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    driver_pid = service.process.pid
    browser_pids = [p.pid for p in psutil.Process(driver_pid).children(recursive=True)]
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
        for pid in browser_pids:  # anything quit() left behind, by the PIDs recorded at start
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver_pid, signal.SIGKILL)


@pytest.fixture
def artifacts(tmp_path: Path) -> Iterator[Path]:
    """Screenshots go here; copied to $SORA_ASSETS_TEST_ARTIFACTS (when set) even if the test fails."""
    folder = tmp_path / "ui-artifacts"
    folder.mkdir()
    try:
        yield folder
    finally:
        if target := os.environ.get(ARTIFACTS_ENV):
            shutil.copytree(folder, Path(target), dirs_exist_ok=True)


def rendered_home(home: Home) -> str:
    """Render the small UI batch in process into `home` (and its Dagster instance); the shard's key."""
    from sora_assets.services.runner import run_shards

    instance, keys = registered_batch(home, "ui-demo.jsonl", UI_BATCH)
    try:
        outcomes = run_shards(home, instance, keys)
    finally:
        instance.dispose()
    assert len(keys) == 1 and all(o.success for o in outcomes), outcomes
    return keys[0]


def nearest(nodes: list[dict], x: float, y: float, side: str) -> tuple[str, float]:
    """The node whose left or right side is nearest the point, and how far it is (graph units)."""
    def distance(node: dict) -> float:
        edge_x = node["x"] + node["w"] if side == "right" else node["x"]
        return abs(edge_x - x) + abs(node["y"] + node["h"] / 2 - y)

    best = min(nodes, key=distance)
    return best["name"], distance(best)


def drawn_edges(graph: dict) -> set[tuple[str, str]]:
    """(upstream, downstream) for every arrow the page draws, by which node boxes its ends touch."""
    edges = set()
    for edge in graph["edges"]:
        upstream, gap_up = nearest(graph["nodes"], edge["x1"], edge["y1"], "right")
        downstream, gap_down = nearest(graph["nodes"], edge["x2"], edge["y2"], "left")
        assert gap_up < 60 and gap_down < 60, (edge, upstream, gap_up, downstream, gap_down)
        edges.add((upstream, downstream))
    return edges


def test_the_ui_shows_lineage_a_shards_contact_sheet_cost_table_and_checks(
        home_with_model: Home, tmp_path: Path, browser, artifacts: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    home = home_with_model
    shard = rendered_home(home)
    env = {**os.environ, "SORA_ASSETS_HOME": str(home.root)}
    with running_dagster_dev(tmp_path, env, dagster_home=home.dagster_home) as (process, port, _):
        nodes = wait_for_asset_nodes(process, port, tmp_path / "dagster_dev.log")
        base = f"http://127.0.0.1:{port}"
        wait = WebDriverWait(browser, 60, poll_frequency=0.25)

        # 1. the global asset graph, every group expanded (the UI's own shortcut, Alt+E)
        browser.get(f"{base}/asset-groups")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "foreignObject"))
        ActionChains(browser).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
        graph = wait.until(lambda d: (g := d.execute_script(GRAPH_JS))
                           and {n["name"] for n in g["nodes"]} >= set(DESIGN_GROUPS)
                           and {n["name"] for n in g["nodes"] if n["materialized"]} >= set(DESIGN_ASSETS)
                           and len(g["edges"]) >= len(DESIGN_EDGES) and d.execute_script(ANIMATIONS_DONE_JS) and g)
        browser.save_screenshot(str(artifacts / "asset_graph.png"))
        assert {n["name"] for n in graph["nodes"]} == set(DESIGN_GROUPS)
        assert drawn_edges(graph) == DESIGN_EDGES
        page_text = browser.find_element(By.TAG_NAME, "body").text
        assert all(group in page_text for group in DESIGN_GROUPS.values())
        served = {(dep["path"][0], node["assetKey"]["path"][0]) for node in nodes for dep in node["dependencyKeys"]}
        assert served == DESIGN_EDGES  # the page draws exactly what the webserver's GraphQL serves

        # 2. one shard's latest published_clips materialisation: cost table inline, contact sheet in its dialog
        browser.get(f"{base}/assets/published_clips?view=partitions&partition={shard}")
        cost_table = wait.until(lambda d: d.find_elements(
            By.XPATH, "//tr[td[1][normalize-space()='cost_table']]/td[2]//table"))[0]
        assert cost_table.is_displayed()
        headers = [th.text for th in cost_table.find_elements(By.TAG_NAME, "th")]
        assert headers[:6] == ["clip_id", "tier", "status", "steps", "gpu_seconds", "cost_usd"]
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in cost_table.find_elements(By.XPATH, ".//tbody/tr")]
        assert [r[0] for r in rows] == [f"{shard.rsplit('-s', 1)[0]}-r0000{i}" for i in (1, 2)]
        assert all(r[2] == "published" and float(r[4]) > 0 and float(r[5]) > 0 for r in rows), rows
        browser.save_screenshot(str(artifacts / "shard_materialization.png"))
        browser.find_element(
            By.XPATH, "//tr[td[1][normalize-space()='contact_sheet']]//a[normalize-space()='[Show Markdown]']").click()
        width = wait.until(lambda d: d.execute_script(
            "const i = document.querySelector('.bp5-dialog img[alt=\"contact sheet\"]');"
            "return i && i.complete ? i.naturalWidth : 0;"))
        assert width == 176 + 4 * 48  # label column + four 48-px frames: the JPEG decoded in the browser
        wait.until(lambda d: d.execute_script(ANIMATIONS_DONE_JS))  # the dialog has faded in
        browser.save_screenshot(str(artifacts / "contact_sheet.png"))

        # 3. the checks, evaluated for this partition
        browser.get(f"{base}/assets/published_clips?view=checks")
        wait.until(lambda d: shard in d.find_element(By.TAG_NAME, "body").text)
        checks_text = browser.find_element(By.TAG_NAME, "body").text
        assert "Passed" in checks_text and "Partition" in checks_text
        wait.until(lambda d: d.execute_script(ANIMATIONS_DONE_JS))
        browser.save_screenshot(str(artifacts / "partition_checks.png"))
        evaluations = graphql(port, CHECKS_QUERY)["data"]["assetNodes"]
        by_check = {(n["assetKey"]["path"][0], c["name"]): c["executionForLatestMaterialization"]
                    for n in evaluations for c in n["assetChecksOrError"]["checks"]}
        assert set(by_check) == {(asset, check) for asset, checks in SHARD_CHECKS.items() for check in checks}
        for execution in by_check.values():
            assert execution["status"] == "SUCCEEDED" and execution["evaluation"]["partition"] == shard

    for name in ("asset_graph", "shard_materialization", "contact_sheet", "partition_checks"):
        assert (artifacts / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


CHECKS_QUERY = """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks {
  name executionForLatestMaterialization { status evaluation { partition } } } } } } }"""
