"""Text safety pre-filter: blocks before any GPU time is spent.

A minimal rule-based filter for the walking skeleton: normalisation that undoes easy obfuscation
(case, zero-width characters, confusable digits, spaced-out letters) plus category rules. The
policy-driven version with semantic similarity grows out of this module.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

POLICY_VERSION = "prefilter-rules-v1"

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_SPACED_RUN = re.compile(r"\b(?:[a-z] ){2,}[a-z]\b")


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).lower()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9@$]+", " ", text).strip()


def _deleet(text: str) -> str:
    # only inside words that also contain letters, so "3 cats" keeps its number
    return " ".join(w.translate(_LEET) if re.search(r"[a-z]", w) else w for w in text.split())


def _rejoin(text: str, keep_leading_word: bool) -> str:
    """"g o r e" -> "gore"; optionally keep a leading one-letter word ("a g o r e" -> "a gore")."""
    def join(match: re.Match[str]) -> str:
        letters = match.group(0).split()
        if keep_leading_word and letters[0] in ("a", "i") and len(letters) > 3:
            return letters[0] + " " + "".join(letters[1:])
        return "".join(letters)
    return _SPACED_RUN.sub(join, text)


def _clean(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def policy_variants(text: str) -> list[str]:
    """Readings of a prompt that undo easy obfuscation; a rule matching any of them matches the prompt."""
    plain = _plain(text)  # keeps @ and $ so that _deleet can read them as letters
    variants = []
    for base in (_clean(plain), _clean(_deleet(plain))):
        variants += [base, _rejoin(base, False), _rejoin(base, True)]
    return list(dict.fromkeys(variants))


def normalize_for_policy(text: str) -> str:
    """The fully de-obfuscated reading (leetspeak undone, spaced-out letters rejoined)."""
    return _rejoin(_clean(_deleet(_plain(text))), keep_leading_word=False)


_MINOR = r"(child|children|kid|kids|minor|minors|underage|preteen|teen|teens|toddler|schoolgirl|" \
         r"schoolboy|little (girl|boy)|\d{1,2} ?(year|yr)s? old|\d{1,2} ?yos?)"
_SEXUAL = r"(sex|sexual|sexy|nude|nudity|naked|porn|porno|pornographic|erotic|explicit|lewd|" \
          r"undress(ed|ing)?|topless|seductive)"

# (category, rule id, pattern). Order matters: the strictest category is reported first.
RULES: list[tuple[str, str, re.Pattern[str]]] = [
    ("sexual_minors", "minor_and_sexual",
     re.compile(rf"\b{_MINOR}\b.*\b{_SEXUAL}\b|\b{_SEXUAL}\b.*\b{_MINOR}\b")),
    ("sexual_explicit", "explicit_terms",
     re.compile(r"\b(porn|porno|pornographic|explicit sex|sex scene|having sex|intercourse|"
                r"nude|nudity|naked|genitals?|erotic|hardcore)\b")),
    ("violence_gore", "gore_terms",
     re.compile(r"\b(gore|gory|decapitat\w*|dismember\w*|disembowel\w*|mutilat\w*|severed (head|limbs?)|"
                r"entrails|guts spilling|blood (spray|spatter|bath)|torture\w*)\b")),
    ("self_harm", "self_harm_terms",
     re.compile(r"\b(suicide|self harm|selfharm|kill(ing)? (my|him|her|them)sel(f|ves)|"
                r"slit(ting)? (my|his|her|their) wrists?|hang(ing|s)? (him|her|my|them)sel(f|ves))\b")),
    ("hate", "hate_terms",
     re.compile(r"\b(ethnic cleansing|genocide of|white power|racial slur|nazi propaganda)\b")),
    ("real_person_likeness", "public_figure_names",
     re.compile(r"\b(taylor swift|barack obama|donald trump|joe biden|elon musk|tom cruise|"
                r"scarlett johansson|kim kardashian|pope francis|emma watson)\b")),
]


@dataclass(frozen=True)
class PrefilterDecision:
    blocked: bool
    category: str | None
    rule: str | None
    score: float
    policy_version: str = POLICY_VERSION


def prompt_fingerprint(text: str) -> str:
    """What may be logged about a blocked prompt: its hash, never its text."""
    return hashlib.sha256(text.encode()).hexdigest()


def check_prompt(prompt: str, negative_prompt: str = "") -> PrefilterDecision:
    # the negative prompt steers away from content, so only the positive prompt is judged
    variants = policy_variants(prompt)
    for category, rule, pattern in RULES:
        if any(pattern.search(variant) for variant in variants):
            return PrefilterDecision(True, category, rule, 1.0)
    return PrefilterDecision(False, None, None, 0.0)
