"""Text safety pre-filter: blocks before any GPU time is spent, driven by the policy file.

Layers, each recorded with its evidence:
1. Normalisation that undoes easy obfuscation: Unicode compatibility forms (fullwidth), zero-width
   and soft-hyphen characters, confusable letters (Cyrillic/Greek lookalikes, via the Unicode
   confusables data in `confusable_homoglyphs`), case, accents, leetspeak, letters spaced out or
   joined by punctuation ("n.a.k.e.d", "s_w_a_s_t_i_k_a"), punctuation inserted in words
   ("dec*apitation") and masked letters ("n*de", restored against the policy's lexicon).
2. Rules: the policy's term lists matched on every de-obfuscated reading; "minor" + "sexual" terms
   together always block as sexual_minors.
3. Meaning: cosine similarity of the bundled MiniLM embedding to each category's exemplars, and
   for sexual_minors, to "minor" and "sexual" exemplars separately, so paraphrases are caught.
4. A learned classifier (core/safety/classifier.py, built by sora_assets/safety/classifier.py: hashed char
   n-grams + words, trained on the corpus's train split, thresholds chosen on validation) over the whole batch at once.
5. A semantic head (core/safety/semantic_head.py): a linear model over USE multilingual v3 sentence
   embeddings of every prompt not yet blocked; blocks when confident, holds for review when uncertain.
6. Public figures from the curated names file (block), and an unknown full name in a likeness context
   (hold); a prompt in a language the policy does not cover is held (`unsupported_language`).
Order of precedence: block (rules, names, classifier, semantic, semantic head) > hold > flag > allow. Terms are
matched on the Latin-folded readings and on the native reading (policy.fold), so term lists can be
written in any covered script.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from sora_assets.core.safety.policy_file import SafetyPolicy, compile_native_words, fold, load_policy, union_of_terms
from sora_assets.core.safety.semantic_head import content_words

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


# Latin letters with no decomposition to a base letter (so stripping accents misses them): Turkish
# dotless i, Polish l with stroke, ... Without this "kız" reads "k z" and "zwłoki" reads "zw oki".
_LETTERS = str.maketrans({"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŀ": "l", "ß": "ss", "æ": "ae",
                          "œ": "oe", "þ": "th", "ð": "d"})


def _plain(text: str) -> str:
    if text.isascii():  # nothing to normalise, no confusables, no accents: the same result, 20x faster
        return text.lower()
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH)
    text = "".join(_latin(c) for c in text).lower().translate(_LETTERS)
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _deleet(text: str) -> str:
    # only inside words that also contain letters, so "3 cats" keeps its number
    return " ".join(w.translate(_LEET) if re.search(r"[a-z]", w) else w for w in text.split())


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", text)).strip()


_ONE_LETTER_WORDS = frozenset("aeiouywz")  # one-letter words in the covered Latin-script languages


def _rejoin(text: str, keep_article: bool = False, keep_last: bool = False) -> str:
    """"g o r e" -> "gore", "n 4 k 3 d" -> "naked": runs of three or more one-character words.

    With `keep_article` a leading one-letter word stays a word ("a n 4 k 3 d woman" -> "a naked
    woman", "w o d c i e n i a c h" -> "w odcieniach"); with `keep_last` a trailing one does ("si
    i m p i c c a a una trave" -> "si impicca a una trave").
    """
    def join(match: re.Match[str]) -> str:
        letters = match.group(0).split()
        if keep_article and letters[0] in _ONE_LETTER_WORDS and len(letters) > 3:
            letters = [letters[0] + " "] + letters[1:]
        if keep_last and letters[-1] in _ONE_LETTER_WORDS and len(letters) > 3:
            letters = letters[:-1] + [" " + letters[-1]]
        return "".join(letters).translate(_LEET)
    return _SPACED_RUN.sub(join, text)


_MASK = "*#%?"  # characters written in place of a letter ("n*de", "s#x", "str?ptiz")
_MASKED_WORD = re.compile(r"[a-z0-9@$]*[*#%?][a-z0-9@$*#%?]*")
_REPEATS = re.compile(r"([a-z])\1{2,}")


@dataclass(frozen=True)
class MaskLexicon:
    """Words and stems a masked token is restored to, indexed by length.

    `words` must fit the whole token ("n*de" -> "nude"); `stems` (a term written `stem\\w*` in the
    policy, "minderjahrig") need only fit its start, the rest being plain letters ("m*nderjahrige").
    """

    words: dict[int, tuple[str, ...]]
    stems: dict[int, tuple[str, ...]]

    @classmethod
    def build(cls, words: Sequence[str], stems: Sequence[str] = ()) -> MaskLexicon:
        def index(items: Sequence[str]) -> dict[int, tuple[str, ...]]:
            out: dict[int, list[str]] = {}
            for item in dict.fromkeys(items):
                out.setdefault(len(item), []).append(item)
            return {k: tuple(v) for k, v in out.items()}
        return cls(index(words), index(stems))

    def restore(self, token: str) -> str | None:
        letters = token.translate(_LEET)
        masks = sum(c in _MASK for c in letters)
        if len(letters) - masks <= max(1, masks):  # "*o*r*" is letters between separators, not a mask
            return None
        shape = re.compile("".join("[a-z]?" if c in _MASK else re.escape(c) for c in letters))
        for size in range(len(letters) - masks, len(letters) + 1):
            found = next((w for w in self.words.get(size, ()) if shape.fullmatch(w)), None)
            if found:
                return found
        last = max(i for i, c in enumerate(letters) if c in _MASK)
        for cut in range(len(letters), last, -1):  # a stem fits the start, the rest are plain letters
            head = re.compile("".join("[a-z]?" if c in _MASK else re.escape(c) for c in letters[:cut]))
            for size in range(cut - masks, cut + 1):
                found = next((w for w in self.stems.get(size, ()) if head.fullmatch(w)), None)
                if found:
                    return found + letters[cut:]
        return None


def _restore_masked(text: str, lexicon: Sequence[str] | MaskLexicon) -> str:
    """"n*de" -> "nude", "m*nderjahrige" -> "minderjahrige": a word with a mask character (* # % ?) is
    the lexicon word (or stem + plain ending) it fits, each mask standing for at most one letter; a
    token that fits nothing loses its masks."""
    index = lexicon if isinstance(lexicon, MaskLexicon) else MaskLexicon.build(lexicon)

    def restore(match: re.Match[str]) -> str:
        word = match.group(0)
        return index.restore(word) or re.sub(r"[*#%?]", "", word)
    return _MASKED_WORD.sub(restore, text)


def policy_variants(text: str, lexicon: Sequence[str] | MaskLexicon = ()) -> list[str]:
    """Readings of a prompt that undo easy obfuscation; a rule matching any of them matches the prompt."""
    plain = re.sub(r"\s+", " ", _plain(text))
    joined = _INNER_PUNCT.sub("", plain)  # "nu.de" -> "nude", "k.k.k" -> "kkk"
    masked = re.sub(r"[^a-z0-9@$*#%?]+", " ", plain)
    # a mask inside a word, or ending one ("g*re", "sex?"): "? " at a word's end is a question mark
    if _MASKED_WORD.search(masked):
        masked = _restore_masked(masked, lexicon)
    # letters repeated for emphasis or to dodge a list ("nuuude", "sexxxy") read once
    bases = [plain, joined, masked]
    if _REPEATS.search(masked):
        bases.append(_REPEATS.sub(r"\1", masked))
    variants: dict[str, None] = {}
    final = ""
    for base in dict.fromkeys(bases):  # identical readings are expanded once
        spaced = re.sub(r"[^a-z0-9@$]+", " ", base).strip()
        for candidate in dict.fromkeys((spaced, _deleet(spaced))):
            variants[_clean(candidate)] = None
            if _SPACED_RUN.search(candidate):
                variants[_clean(_rejoin(candidate, keep_article=True))] = None
                variants[_clean(_rejoin(candidate, keep_last=True))] = None
                final = _clean(_rejoin(candidate))
            else:
                final = _clean(candidate)
            variants[final] = None
    # the fully de-obfuscated reading (masked, de-leeted, rejoined) stays last: normalize_for_policy
    return [v for v in variants if v and v != final] + ([final] if final else [])


def normalize_for_policy(text: str, lexicon: Sequence[str] = ()) -> str:
    """The fully de-obfuscated reading (leetspeak undone, spaced-out letters rejoined)."""
    variants = policy_variants(text, lexicon)
    return variants[-1] if variants else ""


_DIGITS = re.compile(r"\d+")
_CJK = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])[\s\W_]+(?=[{_CJK}])")
# a gap between two CJK/Hangul runs that is a real boundary, not a separator put between letters to hide a word:
# a comma, semicolon, colon, ! or ? (fold has made full-width ones ASCII: "的头，发" reads "的头,发"), a full stop
# with a space ("여기까지. 두"), or an ideographic full stop or comma ("。", "、"); a bare dot still joins ("ポ.ル.ノ")
_CLAUSE_GAP = re.compile(r"[,;:!?]|\.\s|\s\.|[。、]")
_HANGUL_RUN_END = re.compile(r"[\uac00-\ud7af]+$")
_HANGUL_RUN = re.compile(r"[\uac00-\ud7af]+")
_SINGLE_LETTERS = re.compile(r"(?<!\w)(?:[^\W\d_][\s.\-_*|/~+]+){2,}[^\W\d_](?!\w)")


# Latin letters and digits that pass for Cyrillic ones: "гoлая" with a Latin o, "п0рн0" with zeros
_TO_CYRILLIC = str.maketrans({"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "k": "к",
                              "m": "м", "t": "т", "h": "н", "b": "в", "0": "о", "3": "з", "6": "б", "4": "ч"})
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_MIXED_CYRILLIC = re.compile(r"\w*[\u0400-\u04ff]\w*")


def _word_gap(match: re.Match[str]) -> str:
    """A gap the rules keep: a clause boundary, or a space between two Korean words of two syllables or more
    ("하고 문을" must not read as the torture word "고문"); spacing that hides a word splits it into single
    syllables ("자 살"), and that is still rejoined."""
    gap, text = match.group(0), match.string
    if _CLAUSE_GAP.search(gap):
        return gap
    if gap.isspace():
        left = _HANGUL_RUN_END.search(text, 0, match.start())
        right = _HANGUL_RUN.match(text, match.end())  # at the gap's end, without copying the rest
        if left and right and len(left.group(0)) > 1 and len(right.group(0)) > 1:
            return gap
    return ""


def native_joined(text: str, keep_word_gaps: bool = False) -> str:
    """The native reading with letters spaced or punctuated apart rejoined in any script
    ("г е н и т а л и и", "ポ.ル.ノ"), separators between CJK/Hangul characters dropped, and Latin
    lookalikes inside a Cyrillic word read as Cyrillic. `keep_word_gaps` (the rules' reading) keeps clause
    boundaries and spaces between Korean words (`_word_gap`); the semantic head was built on the reading
    without it."""
    folded = fold(text)
    joined = _SINGLE_LETTERS.sub(lambda m: re.sub(r"[\s.\-_*|/~+]+", "", m.group(0)), folded)
    # only in a mostly Cyrillic prompt: in a Latin one a mixed word is Latin in disguise ("lірstісk")
    if len(_CYRILLIC.findall(joined)) > len(re.findall(r"[a-z]", joined)):
        joined = _MIXED_CYRILLIC.sub(lambda m: m.group(0).translate(_TO_CYRILLIC), joined)
    elif _CYRILLIC.search(joined):
        joined = _MIXED_CYRILLIC.sub(lambda m: "".join(map(_latin, m.group(0))).lower()
                                     if re.search(r"[a-z]", m.group(0)) else m.group(0), joined)
    return _CJK_GAP.sub(_word_gap if keep_word_gaps else "", joined)


def classifier_text(text: str, reading: str | None = None) -> str:
    """What the classifier reads: the native reading and the fully de-obfuscated one, side by side,
    without digits. Ages are the rules' job (they read a number and compare it with 18); a char n-gram
    model learns "a digit near a child word" instead, and blocked "kids at the pool -- 8 seconds"
    (measured 2026-12-01: 17 of 199 benign test prompts in a frame with a duration)."""
    return _DIGITS.sub("", fold(text) + " | " + (normalize_for_policy(text) if reading is None else reading))


def head_text(text: str) -> str:
    """What the semantic head embeds: the native reading (every script kept, letters spaced apart rejoined,
    lookalikes read in the prompt's script) without digits. The sentence encoder reads the languages itself
    (measured 2026-12-01 on validation: the raw prompt and the mean with the de-obfuscated reading did the
    same); digits moved ordinary prompts' scores ("a red fox at dawn, shot 17") and ages are the rules' job."""
    return _DIGITS.sub("", native_joined(text))


@dataclass(frozen=True)
class PrefilterDecision:
    blocked: bool
    category: str | None  # a policy category, or "unsupported_language" for a language hold
    rule: str | None  # rule id, "semantic:<exemplar>", "classifier:<category>", "semantic_head:[hold:]<category>",
    #                   "names:<list>", "language:<code>"
    score: float  # 1.0 for a rule match; the cosine similarity or classifier probability otherwise
    policy_version: str = ""
    method: str = "none"  # rule | names | classifier | semantic | semantic_head | likeness | language | none
    action: str = "allow"  # block | hold | flag | allow
    language: str = ""  # ISO 639-1 code the language id found ("und" when too short to tell)

    @property
    def flagged(self) -> bool:
        return self.action == "flag"

    @property
    def held(self) -> bool:
        """Not rendered until a person reviews it; recorded as a rejection like a block."""
        return self.action == "hold"


_NAME_PAIR = re.compile(r"(?<!\w)([A-ZÀ-ÖØ-ÞĀ-ž][a-zà-öø-ÿā-ž]+)\s+((?:(?:de|van|von|da|di|del|le|la|der|den)\s+)?"
                        r"[A-ZÀ-ÖØ-ÞĀ-ž][a-zà-öø-ÿā-ž]+(?:-[A-Z][a-z]+)?)")


@lru_cache(maxsize=1)
def _given_names() -> frozenset[str]:
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent.parent / "safety" / "given_names.txt"
    return frozenset(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip() and not line.startswith("#"))


def unknown_full_name(prompt: str) -> str | None:
    """A capitalised pair whose first word is a known given name ("Marta Kowalczyk"), else None."""
    names = _given_names()
    for first, last in _NAME_PAIR.findall(prompt):
        # a surname that is also a given name ("Joon Chen", "Paul Allen") is still a full name
        if first.lower() in names and last.split()[-1].lower() not in {"street", "road", "city", "avenue",
                                                                       "bridge", "river", "lake"}:
            return f"{first} {last}"
    return None


def prompt_fingerprint(text: str) -> str:
    """What may be logged about a blocked prompt: its hash, never its text."""
    return hashlib.sha256(text.encode()).hexdigest()


class TextPrefilter:
    """The policy's text rules and exemplars, with exemplar embeddings computed once."""

    def __init__(self, policy: SafetyPolicy, embedder: Embedder | None = None, classifier: object | None = None,
                 names: object | None = None, language_id: bool = True, semantic_head: object | None = None,
                 sentence_embedder: Embedder | None = None) -> None:
        """`classifier`: a TextClassifier, None for the policy's (bundled) one, False for none;
        `names`: anything with .search(folded_text) (None: the policy's names file, False: none);
        `semantic_head`: a SemanticHead, None for the policy's (bundled) one, False for none, and
        `sentence_embedder` the encoder it reads (None: USE multilingual v3)."""
        self.policy = policy
        semantic = policy.semantic
        self.embedder = embedder if semantic.get("enabled", True) else None
        settings = policy.classifier
        if classifier is None and settings.get("enabled", False):
            from sora_assets.core.safety.classifier import bundled_classifier

            classifier = bundled_classifier() if settings.get("model", "bundled") == "bundled" else \
                bundled_classifier(str(settings["model"]))
        self.classifier = classifier or None
        thresholds = dict(getattr(self.classifier, "thresholds", {}) or {})
        thresholds.update({k: float(v) for k, v in (settings.get("thresholds") or {}).items()})
        self.thresholds = thresholds
        if names is None and policy.likeness.get("names_file"):
            from sora_assets.core.safety.names import NAMES_PATH, name_index

            chosen = policy.likeness["names_file"]
            names = name_index(str(NAMES_PATH if chosen == "bundled" else chosen), fold)
        self.names = names or None
        self._non_realistic = bool(policy.likeness.get("exempt_non_realistic")) and \
            bool(policy.raw_terms.get("non_realistic_cues")) and bool(policy.raw_terms.get("likeness_cues"))
        # a listed multi-word name misspelt by one letter ("Tylor Swift") is the same person
        self._fuzzy_names = self.names is not None and bool(policy.likeness.get("one_edit_names")) and \
            hasattr(self.names, "fuzzy_search")
        self.language_id = language_id and bool(policy.covered_languages)
        # masked words ("g*nitales") are restored against the lexicon plus every plain word of the term
        # lists, so a term added in any Latin-script language is also found masked
        words = {w for name, patterns in policy.raw_terms.items() if name not in ("allow_phrases", "given_names")
                 for p in patterns for w in re.findall(r"(?<![\\\w])[a-z]{4,}(?![\w(?\\])", p)}
        stems = {w for name, patterns in policy.raw_terms.items() if name not in ("allow_phrases", "given_names")
                 for p in patterns for w in re.findall(r"(?<![\\\w])([a-z]{5,})\\w\*", p)}
        self._lexicon = MaskLexicon.build([*policy.lexicon, *sorted(words)], sorted(stems))
        # every term a rule reads, as one regex: most prompts match none of them, and then no rule can fire
        # (a rule needs one of its any_of terms or all of its all_of terms), so one search replaces a dozen
        self._any_rule_term = union_of_terms(policy, sorted({t for c in policy.categories for r in c.rules
                                                             for t in (*r.any_of, *r.all_of)}))
        raw_allow = policy.raw_terms.get("allow_phrases") or ()
        self._allow = policy.terms["allow_phrases"] if raw_allow else None
        self._native_allow = compile_native_words(policy.raw_terms.get("native_allow_words") or ())
        head_settings = policy.semantic_head
        if semantic_head is None and head_settings.get("enabled", False):
            from sora_assets.core.safety.semantic_head import bundled_semantic_head

            semantic_head = bundled_semantic_head() if head_settings.get("model", "bundled") == "bundled" else \
                bundled_semantic_head(str(head_settings["model"]))
        self.semantic_head = semantic_head or None
        if self.semantic_head is not None and sentence_embedder is None:
            from sora_assets.core.safety.embeddings import multilingual_embed

            sentence_embedder = multilingual_embed
        self.sentence_embedder = sentence_embedder
        self.head_blocks = dict(getattr(self.semantic_head, "block_thresholds", {}) or {})
        self.head_blocks.update({k: float(v) for k, v in (head_settings.get("block_thresholds") or {}).items()})
        self.head_hold = float(head_settings.get("hold_threshold", getattr(self.semantic_head, "hold_threshold", 2)))
        # a category whose misses cost more than its false holds can hold at a lower risk (the prompt's top unsafe
        # category decides which threshold applies)
        self.head_hold_by_category = {str(c): float(t)
                                      for c, t in (head_settings.get("hold_thresholds_by_category") or {}).items()}
        # categories whose head score over its threshold holds for review instead of blocking (likeness: the
        # head reads a request for a real person, it cannot know the person is real and public)
        self.head_hold_only = frozenset(head_settings.get("hold_only") or ())
        # a prompt of at most max_words words needs these scores (never lower than the above) for the head to
        # decide; the strict category keeps its own threshold (fail closed)
        short = head_settings.get("short_prompts") or {}
        self.short_max_words = float(short.get("max_words", 0))
        self.short_block = float(short.get("block_threshold", 0))
        self.short_hold = float(short.get("hold_threshold", 0))
        # the scores a stacked head reads: this filter's classifier, or the bundled one it was fitted on when the
        # classifier layer is off (its decisions stay off; only the head reads the scores)
        self._score_classifier = self.classifier
        if self._score_classifier is None and getattr(self.semantic_head, "stacked", False):
            from sora_assets.core.safety.classifier import bundled_classifier

            self._score_classifier = bundled_classifier()
        veto = head_settings.get("veto") or {}
        self.veto_rules = frozenset(veto.get("rules") or ()) if self.semantic_head is not None else frozenset()
        self.veto_min_benign = float(veto.get("min_benign", 2))
        # a rule whose words are rarely innocent can ask a surer head than the others ("nude beach" reads benign)
        self.veto_min_benign_by_rule = {str(rule): float(threshold)
                                        for rule, threshold in (veto.get("min_benign_by_rule") or {}).items()}
        # a prompt of fewer content words is never overruled: the head reads a few words least reliably, and
        # "a nude!" or "nud3 beach" is the rule's words and little else
        self.veto_min_words = float(veto.get("min_words", 0))
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

    def readings(self, prompt: str) -> tuple[str, list[str]]:
        """Every reading joined by NUL (terms never span it) with the policy's innocent phrases removed,
        and the de-obfuscated variants."""
        if self._native_allow is not None:  # before folding: "góry" (mountains) must not read as "gory"
            prompt = self._native_allow.sub(" ", unicodedata.normalize("NFC", prompt))
        variants = policy_variants(prompt, self._lexicon)
        # one native reading, with letters split apart rejoined and separators between CJK/Hangul
        # characters dropped ("ヌードカラ ー", "o_d_c_i_e_n_i_a_c_h nude"): a raw reading beside it would
        # keep the trigger word while the innocent phrase around it is unreadable, so it is not kept
        joined = "\x00".join(dict.fromkeys([*variants, native_joined(prompt, keep_word_gaps=True)]))
        if self._allow is not None:
            joined = self._allow.sub(" ", joined)
        return joined, variants

    def _harmless_mention(self, joined: str) -> bool:
        """A person named in a plainly non-realistic context (a cartoon, a costume, a statue, a song) with no
        likeness cue: the names list does not decide it (policy `likeness.exempt_non_realistic`)."""
        if not self._non_realistic:
            return False
        terms = self.policy.terms
        return terms["non_realistic_cues"].search(joined) is not None and terms["likeness_cues"].search(joined) is None

    def _rule_match(self, joined: str, skip: str | None = None) -> tuple[str, str] | None:
        if self._any_rule_term.search(joined) is None:
            return None
        terms, hits = self.policy.terms, {}

        def hit(term: str) -> bool:
            if term not in hits:
                hits[term] = terms[term].search(joined) is not None
            return hits[term]

        for category in self.policy.categories:
            if category.name == skip:
                continue
            for rule in category.rules:
                if (rule.any_of and any(hit(t) for t in rule.any_of)) or (rule.all_of and all(hit(t) for t in
                                                                                             rule.all_of)):
                    return category.name, rule.id
        return None

    def check_many(self, prompts: Sequence[str]) -> list[PrefilterDecision]:
        """Decisions for a batch: per-prompt readings and rules, then one classifier pass, one language
        pass and one embedding pass (only over prompts nothing else decided) for the whole batch."""
        version = self.policy.version
        decisions: list[PrefilterDecision | None] = []
        readings: list[str] = []
        joined_all: list[str] = []
        for prompt in prompts:
            joined, variants = self.readings(prompt)
            hit = self._rule_match(joined)
            if hit is None and self.names is not None and self.names.search(joined):
                hit = ("real_person_likeness", "names:public_figures")
            if hit is None and self._fuzzy_names and self.names.fuzzy_search(joined):
                hit = ("real_person_likeness", "names:public_figures:one_edit")
            if hit is not None and hit[0] == "real_person_likeness" and self._harmless_mention(joined):
                # only the names decided it: the other categories' rules still judge the prompt
                hit = self._rule_match(joined, skip="real_person_likeness")
            if hit:
                action = self.policy.category(hit[0]).action
                method = "names" if hit[1].startswith("names:") else "rule"
                decisions.append(PrefilterDecision(action == "block", hit[0], hit[1], 1.0, version, method, action))
            else:
                decisions.append(None)
            readings.append(variants[-1] if variants else "")
            joined_all.append(joined)
        char_scores = self._score_classifier.probabilities(
            [classifier_text(p, r) for p, r in zip(prompts, readings, strict=True)]) \
            if self._score_classifier is not None and prompts else None
        head_scores = self._head_scores(prompts, decisions, char_scores)
        vetoed = self._veto(decisions, head_scores, prompts)
        uncertain = self._classify(decisions, version, joined_all, char_scores)
        self._semantic(readings, decisions, version, uncertain)
        self._head(decisions, version, head_scores, prompts)
        languages = self._languages(prompts)
        self._holds(prompts, joined_all, languages, decisions, version)
        out = []
        for index, (d, lang) in enumerate(zip(decisions, languages, strict=True)):
            if d is None and index in vetoed:  # recorded, so a reviewer sees which rule the head overruled
                rule, benign = vetoed[index]
                d = PrefilterDecision(False, None, f"semantic_head:veto:{rule}", round(benign, 4), version,
                                      "semantic_head", "allow")
            out.append(replace(d, language=lang) if d is not None else
                       PrefilterDecision(False, None, None, 0.0, version, language=lang))
        return out

    def _classify(self, decisions: list[PrefilterDecision | None], version: str, joined: list[str] | None,
                  scores: np.ndarray | None) -> set[int] | None:
        """Classifier decisions for rows not yet blocked (`scores`: its probabilities for every row of the
        batch); returns the rows still undecided whose top unsafe probability reaches the policy's
        `semantic.cascade_min_probability` (the only rows worth an embedding), or None when there is no
        classifier or no cascade."""
        pending = [i for i, d in enumerate(decisions) if d is None or not d.blocked]
        if self.classifier is None or scores is None or not pending:
            return None
        probabilities = scores[pending]
        classes = list(self.classifier.classes)
        # strictest first: sexual_minors wins when it is over its (low) threshold, whatever else is
        order = [c for c in (cat.name for cat in self.policy.categories) if c in classes and c in self.thresholds]
        # two weak signals are enough for the strict category: a minor term anywhere and a classifier
        # score over `with_minor_term` (fail closed; measured 1 of 546 validation benign prompts at 0.4)
        with_minor = self.policy.classifier.get("sexual_minors_with_minor_term")
        minor_terms = self.policy.terms.get("minor_terms")
        for row, index in enumerate(pending):
            for category in order:
                score = float(probabilities[row, classes.index(category)])
                threshold = self.thresholds[category]
                if (category == "sexual_minors" and with_minor is not None and joined is not None
                        and minor_terms is not None and minor_terms.search(joined[index])):
                    threshold = min(threshold, float(with_minor))
                if score >= threshold:
                    action = self.policy.category(category).action
                    decisions[index] = PrefilterDecision(action == "block", category, f"classifier:{category}",
                                                         round(score, 4), version, "classifier", action)
                    break
        floor = self.policy.semantic.get("cascade_min_probability")
        if floor is None:
            return None
        unsafe = [j for j, c in enumerate(classes) if c != "benign"]
        top = probabilities[:, unsafe].max(axis=1)
        minors = probabilities[:, classes.index("sexual_minors")] if "sexual_minors" in classes else top * 0
        minors_floor = self.policy.semantic.get("cascade_min_probability_sexual_minors", floor)
        return {index for row, index in enumerate(pending)
                if decisions[index] is None and (top[row] >= floor or minors[row] >= minors_floor)}

    def _semantic(self, readings: list[str], decisions: list[PrefilterDecision | None], version: str,
                  only: set[int] | None = None) -> None:
        pending = [i for i, d in enumerate(decisions) if d is None and readings[i] and (only is None or i in only)]
        if not pending or self.embedder is None:
            return
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
                                                     float(similarity[row, best[1]]), version, "semantic", action)

    def _vetoable(self, decision: PrefilterDecision | None, prompt: str) -> bool:
        if decision is None or not decision.blocked or decision.method != "rule" or \
                decision.rule not in self.veto_rules or decision.category == "sexual_minors":
            return False
        return self.veto_min_words <= 0 or content_words(prompt) >= self.veto_min_words

    def _head_scores(self, prompts: Sequence[str], decisions: list[PrefilterDecision | None],
                     char_scores: np.ndarray | None) -> dict[int, np.ndarray]:
        """The head's probabilities, in one embedding pass, for every prompt not yet blocked and every one
        blocked only by a lexicon rule the policy lets it overrule."""
        if self.semantic_head is None:
            return {}
        pending = [i for i, d in enumerate(decisions) if d is None or not d.blocked or self._vetoable(d, prompts[i])]
        if not pending:
            return {}
        vectors = self.sentence_embedder([head_text(prompts[i]) for i in pending])
        probabilities = self.semantic_head.probabilities(vectors, char_scores[pending]) \
            if getattr(self.semantic_head, "stacked", False) else self.semantic_head.probabilities(vectors)
        return dict(zip(pending, probabilities, strict=True))

    def _veto(self, decisions: list[PrefilterDecision | None], scores: dict[int, np.ndarray],
              prompts: Sequence[str]) -> dict[int, tuple]:
        """A lexicon rule's block (policy `semantic_head.veto.rules`; never the strict category, a names match
        or a hand-added rule) is dropped when the head is confident the prompt is benign: "a psychiatrist
        explains the warning signs of suicide" matches the self-harm terms (the policy's `min_benign`, or a rule's own
        in `min_benign_by_rule`), and the prompt has at least `min_words` content words. The prompt is then judged
        by the classifier and the rest as if no rule had fired. Returns {row: (rule, p(benign))}."""
        if not self.veto_rules or not scores:
            return {}
        benign = list(self.semantic_head.classes).index("benign")
        vetoed = {}
        for index, probabilities in scores.items():
            decision = decisions[index]
            if self._vetoable(decision, prompts[index]) and float(probabilities[benign]) >= \
                    self.veto_min_benign_by_rule.get(decision.rule, self.veto_min_benign):
                vetoed[index] = (decision.rule, float(probabilities[benign]))
                decisions[index] = None
        return vetoed

    def _head(self, decisions: list[PrefilterDecision | None], version: str, scores: dict[int, np.ndarray],
              prompts: Sequence[str] = ()) -> None:
        """The semantic head's decisions for every prompt not yet blocked: a category's probability over
        its block threshold blocks (strictest category first); otherwise an unsafe probability
        (1 - p(benign)) over the hold threshold holds the prompt for review. A hold never replaces an
        earlier hold or flag's evidence. A short prompt (policy `short_prompts`) needs surer scores."""
        if self.semantic_head is None or not scores:
            return
        classes = list(self.semantic_head.classes)
        order = [c for c in (cat.name for cat in self.policy.categories) if c in classes and c in self.head_blocks]
        order.sort(key=lambda c: c in self.head_hold_only)  # a blocking category's evidence first
        unsafe = [j for j, c in enumerate(classes) if c != "benign"]
        short_blocks = {c: t if c == "sexual_minors" else max(t, self.short_block) for c, t in self.head_blocks.items()}
        short_hold = max(self.head_hold, self.short_hold)
        for index, probabilities in scores.items():
            if decisions[index] is not None and decisions[index].blocked:
                continue
            short = self.short_max_words > 0 and bool(prompts) and content_words(prompts[index]) <= self.short_max_words
            blocks, hold = (short_blocks, short_hold) if short else (self.head_blocks, self.head_hold)
            chosen = next((c for c in order if probabilities[classes.index(c)] >= blocks[c]), None)
            if chosen is not None:
                hold_only = chosen in self.head_hold_only
                if hold_only and decisions[index] is not None:  # a hold never replaces earlier evidence
                    continue
                action = "hold" if hold_only else self.policy.category(chosen).action
                decisions[index] = PrefilterDecision(action == "block", chosen,
                                                     f"semantic_head:{'hold:' if hold_only else ''}{chosen}",
                                                     round(float(probabilities[classes.index(chosen)]), 4),
                                                     version, "semantic_head", action)
                continue
            risk = 1.0 - float(probabilities[classes.index("benign")])
            top = classes[max(unsafe, key=lambda j: probabilities[j])]
            if top in self.head_hold_by_category:
                own = self.head_hold_by_category[top]
                hold = max(own, self.short_hold) if short else own
            if risk >= hold and decisions[index] is None:
                decisions[index] = PrefilterDecision(False, top, f"semantic_head:hold:{top}", round(risk, 4),
                                                     version, "semantic_head", "hold")

    def _languages(self, prompts: Sequence[str]) -> list[str]:
        if not self.language_id:
            return [""] * len(prompts)
        from sora_assets.core.safety.langid import identify

        return identify(prompts, self.policy.covered_languages)

    def _holds(self, prompts: Sequence[str], joined: list[str], languages: list[str],
               decisions: list[PrefilterDecision | None], version: str) -> None:
        """Rows nothing blocked: an unknown person's full name asked for as a likeness, or a language
        the policy does not cover, is held (or whatever the policy says) instead of rendered."""
        cues = self.policy.terms["likeness_cues"] if self.policy.raw_terms.get("likeness_cues") else None
        name_action = self.policy.likeness.get("unknown_name_action", "hold")
        language_action = self.policy.languages.get("unsupported_action", "hold")
        covered = self.policy.covered_languages
        for index, prompt in enumerate(prompts):
            current = decisions[index]
            if current is not None and current.blocked:
                continue
            if cues is not None and name_action != "allow" and cues.search(joined[index]):
                name = unknown_full_name(prompt)
                if name is not None:
                    decisions[index] = PrefilterDecision(name_action == "block", "real_person_likeness",
                                                         "likeness:unknown_full_name", 1.0, version, "likeness",
                                                         name_action)
                    continue
            language = languages[index]
            if (self.language_id and language_action != "allow" and language not in covered
                    and language != "und" and (current is None or current.action in ("allow", "flag")
                                               # the head was not fitted on this language: its hold is noise
                                               or (current.method == "semantic_head" and current.held))):
                decisions[index] = PrefilterDecision(language_action == "block", "unsupported_language",
                                                     f"language:{language}", 1.0, version, "language",
                                                     language_action)

    def check(self, prompt: str, negative_prompt: str = "") -> PrefilterDecision:
        # the negative prompt steers away from content, so only the positive prompt is judged
        return self.check_many([prompt])[0]


@lru_cache(maxsize=4)
def _default_prefilter(policy_key: tuple[str, str]) -> TextPrefilter:
    from sora_assets.core.safety.embeddings import embed

    return TextPrefilter(load_policy(policy_key[0]), embed)


def default_prefilter(policy_path: str | None = None) -> TextPrefilter:
    """The prefilter for a policy file (default: the configured one), with the bundled MiniLM (one per process)."""
    policy = load_policy(policy_path)
    return _default_prefilter((policy.source, policy.version))


def check_prompt(prompt: str, negative_prompt: str = "") -> PrefilterDecision:
    return default_prefilter().check(prompt, negative_prompt)
