import stat
from pathlib import Path

import pytest

from sora_assets.core.render.manifest import clip_manifest
from sora_assets.core.render.video_io import encode_mp4
from sora_assets.resources.signer import ROOT_CERT, SIGNER_KEY, C2paSignerResource, read_verification
from sora_assets_tests.conftest import flip_byte_in, gradient_clip


@pytest.fixture
def signed(tmp_path: Path) -> tuple[C2paSignerResource, Path]:
    signer = C2paSignerResource(keys_dir=str(tmp_path / "keys"))
    source = tmp_path / "clip.mp4"
    source.write_bytes(encode_mp4(gradient_clip(), fps=8))
    destination = tmp_path / "clip.signed.mp4"
    signer.sign(source, destination, clip_manifest("clip.mp4", "b-r00001", "tiny-wan", "rev", 7, 30,
                                                   "ab" * 32, "cd" * 32))
    return signer, destination


def test_signed_clip_is_trusted_under_the_dev_root_with_our_assertions(signed) -> None:
    signer, clip = signed
    result = signer.verify(clip)
    assert result.state == "Trusted" and result.trusted
    assert result.actions[0] == "c2pa.created"
    assert result.generation["seed"] == 7 and result.generation["steps"] == 30
    assert result.generation["model"] == "tiny-wan"


@pytest.mark.parametrize("box", ["mdat", "moov"])
def test_one_flipped_byte_in_the_video_makes_it_invalid(signed, tmp_path: Path, box: str) -> None:
    signer, clip = signed
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(flip_byte_in(clip.read_bytes(), box))
    result = signer.verify(tampered)
    assert not result.trusted
    assert result.state == "Invalid"
    assert any("mismatch" in failure for failure in result.failures)


def test_without_the_trust_anchor_a_valid_signature_is_not_trusted(signed) -> None:
    _, clip = signed
    assert read_verification(clip.read_bytes(), None).state == "Valid"


def test_unsigned_clip_is_not_trusted(tmp_path: Path) -> None:
    raw = tmp_path / "raw.mp4"
    raw.write_bytes(encode_mp4(gradient_clip(), fps=8))
    assert read_verification(raw.read_bytes(), None).state in {"Missing", "Invalid"}


def test_keys_are_private_and_minted_once(signed) -> None:
    signer, _ = signed
    keys = Path(signer.keys_dir)
    for path in keys.glob("*.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((keys / SIGNER_KEY).stat().st_mode) == 0o600
    root = (keys / ROOT_CERT).read_bytes()
    signer.ensure_keys()
    assert (keys / ROOT_CERT).read_bytes() == root


def test_signing_keeps_the_clip_fast_start_and_trusted(signed) -> None:
    """The manifest goes in without moving moov behind mdat (the streaming layout survives signing)."""
    from sora_assets_tests.core.render.test_video_io import _top_level_boxes

    signer, clip = signed
    boxes = _top_level_boxes(clip.read_bytes())
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert signer.verify(clip).trusted
