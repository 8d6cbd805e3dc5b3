"""C2PA signing with c2pa-python, and a dev certificate chain generated on first use."""

from __future__ import annotations

import datetime
import fcntl
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from sora_assets.core.storage.fsutil import atomic_write_bytes

ROOT_CERT = "dev-root.pem"
ROOT_KEY = "dev-root.key"
SIGNER_CHAIN = "signer-chain.pem"
SIGNER_KEY = "signer.key"
SECRET_MODE = 0o600
# Without a timestamp authority a signature expires with its leaf: dev certificates live long.
LEAF_YEARS = 10
ROOT_YEARS = 20


@dataclass(frozen=True)
class Ingredient:
    """A file the signed asset was made from: a shot of a sequence (componentOf), a first frame (inputTo)."""

    path: Path
    title: str
    relationship: str  # componentOf | inputTo | parentOf
    format: str  # MIME type

    @classmethod
    def image(cls, path: Path, title: str | None = None) -> Ingredient:
        formats = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
        return cls(path, title or path.name, "inputTo", formats.get(path.suffix.lower(), "image/png"))


@dataclass
class Verification:
    state: str  # Trusted | Valid | Invalid | Missing
    failures: list[str] = field(default_factory=list)
    generation: dict[str, Any] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    ingredients: list[dict[str, Any]] = field(default_factory=list)  # title, relationship, format, manifest
    sequence: dict[str, Any] = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        return self.state == "Trusted"


def generate_dev_chain(keys_dir: Path) -> None:
    """Root CA (keyCertSign) and a P-256 leaf (digitalSignature, EKU emailProtection, SKI/AKI)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sora_assets development")])

    def key_usage(**enabled: bool) -> x509.KeyUsage:
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                               "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                               "encipher_only", "decipher_only"), False)
        return x509.KeyUsage(**{**flags, **enabled})

    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(name("sora_assets dev root CA"))
            .issuer_name(name("sora_assets dev root CA")).public_key(root_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=365 * ROOT_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("sora_assets dev signer"))
            .issuer_name(root.subject).public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=365 * LEAF_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                           critical=False)
            .sign(root_key, hashes.SHA256()))

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def pem_cert(cert: Any) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    atomic_write_bytes(keys_dir / ROOT_KEY, pem_key(root_key), mode=SECRET_MODE)
    atomic_write_bytes(keys_dir / SIGNER_KEY, pem_key(leaf_key), mode=SECRET_MODE)
    atomic_write_bytes(keys_dir / SIGNER_CHAIN, pem_cert(leaf) + pem_cert(root), mode=SECRET_MODE)
    # written last: its presence means the chain is complete
    atomic_write_bytes(keys_dir / ROOT_CERT, pem_cert(root), mode=SECRET_MODE)


def read_verification(data: bytes, trust_anchor_pem: str | None) -> Verification:
    """Validate a signed MP4's manifest; Trusted only when it chains to `trust_anchor_pem`."""
    import c2pa

    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    if trust_anchor_pem:
        settings["trust"] = {"trust_anchors": trust_anchor_pem}
    context = c2pa.Context.from_dict(settings)
    try:
        reader = c2pa.Reader("video/mp4", io.BytesIO(data), context=context)
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return Verification(state="Missing", failures=[str(exc)])
        return Verification(state="Invalid", failures=[str(exc)])
    state = reader.get_validation_state() or "Invalid"
    results = reader.get_validation_results() or {}
    failures = [item.get("code", "") for item in results.get("activeManifest", {}).get("failure", [])]
    manifest = json.loads(reader.json())
    active = manifest.get("manifests", {}).get(manifest.get("active_manifest"), {})
    generation: dict[str, Any] = {}
    sequence: dict[str, Any] = {}
    actions: list[str] = []
    for assertion in active.get("assertions", []):
        if assertion.get("label") == "org.sora_assets.generation":
            generation = assertion.get("data", {})
        if assertion.get("label") == "org.sora_assets.sequence":
            sequence = assertion.get("data", {})
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions += [a.get("action") for a in assertion.get("data", {}).get("actions", [])]
    ingredients = [{"title": i.get("title"), "relationship": i.get("relationship"), "format": i.get("format"),
                    "manifest": i.get("active_manifest")} for i in active.get("ingredients", [])]
    return Verification(state=state, failures=failures, generation=generation, actions=actions,
                        ingredients=ingredients, sequence=sequence)


class C2paSignerResource(ConfigurableResource):
    keys_dir: str = Field(description="Folder with the signing chain and key, normally <home>/keys.")
    algorithm: str = Field(default="ES256")

    def ensure_keys(self) -> Path:
        keys = Path(self.keys_dir)
        if (keys / ROOT_CERT).exists():
            return keys
        keys.mkdir(parents=True, exist_ok=True)
        keys.chmod(0o700)
        with open(keys / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two first runs must not mint two chains
            if not (keys / ROOT_CERT).exists():
                generate_dev_chain(keys)
        return keys

    def trust_anchor(self) -> str:
        return (self.ensure_keys() / ROOT_CERT).read_text()

    def sign(self, source: Path, destination: Path, manifest: dict[str, Any],
             ingredients: Sequence[Ingredient] = ()) -> None:
        """Embed `manifest` (plus ingredients: their own manifests are carried along and validated)."""
        import c2pa

        keys = self.ensure_keys()
        info = c2pa.C2paSignerInfo(self.algorithm, (keys / SIGNER_CHAIN).read_bytes(),
                                   (keys / SIGNER_KEY).read_bytes(), None)
        signer = c2pa.Signer.from_info(info)
        output = io.BytesIO()
        builder = c2pa.Builder(manifest)
        for ingredient in ingredients:
            with open(ingredient.path, "rb") as stream:
                builder.add_ingredient({"title": ingredient.title, "relationship": ingredient.relationship},
                                       ingredient.format, stream)
        with open(source, "rb") as src:
            builder.sign(signer, "video/mp4", src, output)
        atomic_write_bytes(destination, output.getvalue())

    def verify(self, path: Path) -> Verification:
        return read_verification(path.read_bytes(), self.trust_anchor())
