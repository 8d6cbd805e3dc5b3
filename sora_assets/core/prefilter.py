"""Text safety pre-filter: blocks before any GPU time is spent, driven by the policy file.

Three layers, each recorded with its evidence:
1. Normalisation that undoes easy obfuscation: Unicode compatibility forms (fullwidth), zero-width
   and soft-hyphen characters, confusable letters (Cyrillic/Greek lookalikes, via the Unicode
   confusables data in `confusable_homoglyphs`), case, accents, leetspeak, letters spaced out or
   joined by punctuation ("n.a.k.e.d", "s_w_a_s_t_i_k_a"), punctuation inserted in words
   ("dec*apitation") and masked letters ("n*de", restored against the policy's lexicon).
2. Rules: the policy's term lists matched on every de-obfuscated reading; "minor" + "sexual" terms
   together always block as sexual_minors.
3. Meaning: cosine similarity of the bundled MiniLM embedding to each category's exemplars, and
   for sexual_minors, to "minor" and "sexual" exemplars separately, so paraphrases are caught.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sora_assets.core.policy import SafetyPolicy, load_policy

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"
                                     "\u034f\u180e"), None)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_SPACED_RUN = re.compile(r"(?<![a-z0-9])(?:[a-z0-9@$] ){2,}[a-z0-9@$](?![a-z0-9])")
_INNER_PUNCT = re.compile(r"(?<=[a-z0-9@$])[.\-_'’*+~|/\\]+(?=[a-z0-9@$])")

Embedder = Callable[[Sequence[str]], np.ndarray]


@lru_cache(maxsize=4096)
def _latin(char: str) -> str:
    """The Latin letter a confusable character imitates (Cyrillic 'а' -> 'a'), else the character."""
    if char.isascii() or not char.isalpha():
        return char
    from confusable_homoglyphs import confusables

    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"])
    if found:
        for glyph in found[0]["homoglyphs"]:
            if glyph["c"].isascii() and glyph["c"].isalpha():
                return glyph["c"].lower()
    return char


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH)
    text = "".join(_latin(c) for c in text).lower()
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _deleet(text: str) -> str:
    # only inside words that also contain letters, so "3 cats" keeps its number
    return " ".join(w.translate(_LEET) if re.search(r"[a-z]", w) else w for w in text.split())


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", text)).strip()


def _rejoin(text: str, keep_article: bool = False) -> str:
    """"g o r e" -> "gore", "n 4 k 3 d" -> "naked": runs of three or more one-character words.

    With `keep_article` a leading "a"/"i" stays a word ("a n 4 k 3 d woman" -> "a naked woman").
    """
    def join(match: re.Match[str]) -> str:
        letters = match.group(0).split()
        if keep_article and letters[0] in ("a", "i") and len(letters) > 3:
            return letters[0] + " " + "".join(letters[1:]).translate(_LEET)
        return "".join(letters).translate(_LEET)
    return _SPACED_RUN.sub(join, text)


def _restore_masked(text: str, lexicon: Sequence[str]) -> str:
    """"n*de" -> "nude": a word with * is the lexicon word it fits, * standing for at most one letter."""
    def restore(match: re.Match[str]) -> str:
        word = match.group(0)
        shape = re.compile("".join("[a-z]?" if c == "*" else re.escape(c) for c in word.translate(_LEET)))
        return next((w for w in lexicon if shape.fullmatch(w)), word.replace("*", ""))
    return re.sub(r"[a-z0-9@$]*\*[a-z0-9@$*]*", restore, text)


def policy_variants(text: str, lexicon: Sequence[str] = ()) -> list[str]:
    """Readings of a prompt that undo easy obfuscation; a rule matching any of them matches the prompt."""
    plain = re.sub(r"\s+", " ", _plain(text))
    joined = _INNER_PUNCT.sub("", plain)  # "nu.de" -> "nude", "k.k.k" -> "kkk"
    masked = _restore_masked(re.sub(r"[^a-z0-9@$*]+", " ", plain), lexicon)
    variants = []
    for base in (plain, joined, masked):
        spaced = re.sub(r"[^a-z0-9@$]+", " ", base).strip()
        for candidate in (spaced, _deleet(spaced)):
            variants += [_clean(candidate), _clean(_rejoin(candidate, keep_article=True)), _clean(_rejoin(candidate))]
    return list(dict.fromkeys(v for v in variants if v))


def normalize_for_policy(text: str, lexicon: Sequence[str] = ()) -> str:
    """The fully de-obfuscated reading (leetspeak undone, spaced-out letters rejoined)."""
    variants = policy_variants(text, lexicon)
    return variants[-1] if variants else ""


@dataclass(frozen=True)
class PrefilterDecision:
    blocked: bool
    category: str | None
    rule: str | None  # the rule id, or "semantic:<exemplar>" for a match by meaning
    score: float  # 1.0 for a rule match; the cosine similarity for a semantic one
    policy_version: str = ""
    method: str = "none"  # rule | semantic | none
    action: str = "allow"  # block | flag | allow

    @property
    def flagged(self) -> bool:
        return self.action == "flag"


def prompt_fingerprint(text: str) -> str:
    """What may be logged about a blocked prompt: its hash, never its text."""
    return hashlib.sha256(text.encode()).hexdigest()


class TextPrefilter:
    """The policy's text rules and exemplars, with exemplar embeddings computed once."""

    def __init__(self, policy: SafetyPolicy, embedder: Embedder | None = None) -> None:
        self.policy = policy
        semantic = policy.semantic
        self.embedder = embedder if semantic.get("enabled", True) else None
        self._exemplars: list[tuple[str, str, float]] = [
            (c.name, e, c.semantic_threshold) for c in policy.categories
            if c.semantic_threshold is not None for e in c.exemplars]
        self._exemplar_vectors: np.ndarray | None = None
        self._pair_vectors: tuple[np.ndarray, np.ndarray] | None = None

    def _vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._exemplar_vectors is None:
            self._exemplar_vectors = self.embedder([e for _, e, _ in self._exemplars])
            pair = self.policy.semantic
            self._pair_vectors = (self.embedder(pair.get("minor_exemplars") or ["a child"]),
                                  self.embedder(pair.get("sexual_exemplars") or ["sexual content"]))
        return self._exemplar_vectors, *self._pair_vectors

    def _rule_match(self, variants: list[str]) -> tuple[str, str] | None:
        for category in self.policy.categories:
            for rule in category.rules:
                any_hit = rule.any_of and any(self.policy.terms[t].search(v) for t in rule.any_of for v in variants)
                all_hit = rule.all_of and all(any(self.policy.terms[t].search(v) for v in variants)
                                              for t in rule.all_of)
                if any_hit or all_hit:
                    return category.name, rule.id
        return None

    def check_many(self, prompts: Sequence[str]) -> list[PrefilterDecision]:
        version = self.policy.version
        decisions: list[PrefilterDecision | None] = []
        readings: list[str] = []
        for prompt in prompts:
            variants = policy_variants(prompt, self.policy.lexicon)
            hit = self._rule_match(variants)
            if hit:
                action = self.policy.category(hit[0]).action
                decisions.append(PrefilterDecision(action == "block", hit[0], hit[1], 1.0, version, "rule", action))
            else:
                decisions.append(None)
            readings.append(variants[-1] if variants else "")
        pending = [i for i, d in enumerate(decisions) if d is None and readings[i]]
        if pending and self.embedder is not None:
            exemplars, minors, sexual = self._vectors()
            vectors = self.embedder([readings[i] for i in pending])
            similarity = vectors @ exemplars.T if len(exemplars) else np.zeros((len(pending), 0))
            pair = self.policy.semantic.get("minor_sexual_pair") or {}
            minor_score = (vectors @ minors.T).max(axis=1)
            sexual_score = (vectors @ sexual.T).max(axis=1)
            for row, index in enumerate(pending):
                if minor_score[row] >= pair.get("minor", 2) and sexual_score[row] >= pair.get("sexual", 2):
                    score = float(min(minor_score[row], sexual_score[row]))
                    decisions[index] = PrefilterDecision(True, "sexual_minors", "semantic:minor+sexual", score,
                                                         version, "semantic", "block")
                    continue
                margins = [(similarity[row, j] - threshold, j) for j, (_, _, threshold) in enumerate(self._exemplars)]
                best = max(margins, default=None)
                if best is not None and best[0] >= 0:
                    category, exemplar, _ = self._exemplars[best[1]]
                    action = self.policy.category(category).action
                    decisions[index] = PrefilterDecision(action == "block", category, f"semantic:{exemplar}",
                                                         float(similarity[row, best[1]]), version, "semantic",
                                                         action)
        return [d or PrefilterDecision(False, None, None, 0.0, version) for d in decisions]

    def check(self, prompt: str, negative_prompt: str = "") -> PrefilterDecision:
        # the negative prompt steers away from content, so only the positive prompt is judged
        return self.check_many([prompt])[0]


@lru_cache(maxsize=4)
def _default_prefilter(policy_key: tuple[str, str]) -> TextPrefilter:
    from sora_assets.core.embeddings import embed

    return TextPrefilter(load_policy(policy_key[0]), embed)


def default_prefilter(policy_path: str | None = None) -> TextPrefilter:
    """The prefilter for a policy file (default: the configured one), with the bundled MiniLM (one per process)."""
    policy = load_policy(policy_path)
    return _default_prefilter((policy.source, policy.version))


def check_prompt(prompt: str, negative_prompt: str = "") -> PrefilterDecision:
    return default_prefilter().check(prompt, negative_prompt)
