"""spaCy's tokenizer, as far as spaCy's rule-based sentencizer reads it, without importing spaCy.

Why: a command that builds reward-model files spent about as long importing
spaCy and building `spacy.blank("en")` (registries, 1,300 tokenizer
exceptions, regular expressions) as it spent building the files. The
sentencizer reads only each token's text and offsets and whether it is
punctuation, and spaCy's tokenizer is a short algorithm over data: prefix,
suffix and infix regular expressions, a URL pattern and the exceptions
("special cases"). `export_rules` reads that data from a loaded pipeline once;
`RuleTokenizer` runs the same algorithm on it, written anew in Python after
spacy/tokenizer.pyx 3.8 (`_tokenize_affixes`, `_split_affixes`,
`_attach_tokens`). annotation.qa.text keeps the exported rules in a file per
spaCy version, so later processes skip spaCy.

After tokenising, spaCy re-applies the exceptions that themselves contain an
affix (`Dr.`, `a.m.`, `:)`) wherever their tokens appear in a row (a
PhraseMatcher over the doc): `RuleTokenizer.rematch` does the same, and
`rematch_changes` says cheaply whether it would change anything.
The exported rules name the spaCy version they came from, and only versions in
VERIFIED_SPACY_VERSIONS (whose algorithm this is) are exported.

No spaCy import here and no Django: pure functions over strings.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

RULES_FORMAT = 1
# The spaCy versions whose tokenizer this port was checked against (tests/annotation/qa/test_tokenizer_rules.py
# compares it with the installed spaCy). Another version keeps spaCy's own pipeline until checked and added here.
VERIFIED_SPACY_VERSIONS = ("3.8.",)
# Tokens of pieces already cut, by piece (spaCy keeps such a cache too): most pieces recur.
MAX_CACHED_PIECES = 100_000
_NON_SPACE = re.compile(r"\S+")


def is_punct(text: str) -> bool:
    """spaCy's IS_PUNCT lexical attribute (spacy.lang.lex_attrs.is_punct): every character is punctuation."""
    return all(unicodedata.category(char).startswith("P") for char in text)


def export_rules(nlp: Any, spacy_version: str) -> dict[str, Any] | None:
    """The data `RuleTokenizer` needs from a spaCy pipeline of a tokenizer and a plain sentencizer, as JSON-ready
    values; None when the pipeline does anything this port does not reproduce (the caller keeps spaCy)."""
    from spacy.attrs import IS_PUNCT, ORTH
    from spacy.lang import lex_attrs
    from spacy.pipeline import Sentencizer

    tokenizer = nlp.tokenizer
    pipeline = getattr(nlp, "pipeline", None)
    if (
        not spacy_version.startswith(VERIFIED_SPACY_VERSIONS)
        or not isinstance(pipeline, list)
        or len(pipeline) != 1
        or type(pipeline[0][1]) is not Sentencizer
        or type(tokenizer).__module__ != "spacy.tokenizer"
        or getattr(tokenizer, "token_match", None) is not None
        or not hasattr(tokenizer, "faster_heuristics")
        or nlp.vocab.lex_attr_getters.get(IS_PUNCT) is not lex_attrs.is_punct
    ):
        return None

    def pattern(bound_method: Any) -> list | None:
        if bound_method is None:
            return None
        compiled = getattr(bound_method, "__self__", None)
        if not isinstance(compiled, re.Pattern):
            return None
        return [compiled.pattern, compiled.flags]

    patterns = {
        "prefix": pattern(tokenizer.prefix_search),
        "suffix": pattern(tokenizer.suffix_search),
        "infix": pattern(tokenizer.infix_finditer),
        "url": pattern(tokenizer.url_match),
    }
    functions = (tokenizer.prefix_search, tokenizer.suffix_search, tokenizer.infix_finditer, tokenizer.url_match)
    names = ("search", "search", "finditer", "match")
    for value, function, name in zip(patterns.values(), functions, names):
        if function is not None and (value is None or function.__name__ != name):
            return None
    rules = {
        "format": RULES_FORMAT,
        "spacy_version": spacy_version,
        **patterns,
        "faster_heuristics": bool(tokenizer.faster_heuristics),
        "specials": {string: [token[ORTH] for token in tokens] for string, tokens in tokenizer.rules.items()},
        "punct_chars": sorted(pipeline[0][1].punct_chars),
    }
    rules["rematch"] = RuleTokenizer(rules).rematch_patterns()
    return rules


class RuleTokenizer:
    """spaCy's tokenizer over exported rules: token texts and offsets, and whether spaCy would retokenise."""

    def __init__(self, rules: dict[str, Any]) -> None:
        def compiled(key: str) -> re.Pattern[str] | None:
            value = rules[key]
            return None if value is None else re.compile(value[0], value[1])

        self.rules = rules
        self._prefix, self._suffix = compiled("prefix"), compiled("suffix")
        self._infix, self._url = compiled("infix"), compiled("url")
        self.specials: dict[str, list[str]] = rules["specials"]
        self.punct_chars = frozenset(rules["punct_chars"])
        self._pieces: dict[str, list[str]] = {}
        # The exceptions spaCy re-applies after tokenising, by the tokens they are made of:
        # first token -> [tokens]; and the first tokens of those that change the tokens.
        self._rematch: dict[str, list[list[str]]] = {}
        self._changing: set[str] = set()
        for string, pattern in (rules.get("rematch") or {}).items():
            self._rematch.setdefault(pattern[0], []).append(pattern)
            if pattern != self.specials[string]:
                self._changing.add(pattern[0])

    def rematch_patterns(self) -> dict[str, list[str]]:
        """For each exception spaCy re-applies after tokenising, the tokens it is found as (its matcher pattern)."""
        return {
            string: [text for _, text in self.tokens(string, specials=False)]
            for string in sorted(self.specials)
            if self._rematches(string)
        }

    def _rematches(self, string: str) -> bool:
        # Tokenizer.add_special_case: which exceptions go into the PhraseMatcher.
        return (
            not self.rules["faster_heuristics"]
            or bool(self._find_prefix(string))
            or bool(self._infix is not None and list(self._infix.finditer(string)))
            or bool(self._find_suffix(string))
            or " " in string
        )

    def _find_prefix(self, string: str) -> int:
        found = self._prefix.search(string) if self._prefix is not None else None
        return found.end() - found.start() if found is not None else 0

    def _find_suffix(self, string: str) -> int:
        found = self._suffix.search(string) if self._suffix is not None else None
        return found.end() - found.start() if found is not None else 0

    def tokens(self, text: str, specials: bool = True) -> list[tuple[int, str]]:
        """(start offset, text) of each token of `text`, as `Tokenizer._tokenize_affixes` cuts it.

        Text is cut into runs of non-space and of space characters; one ' '
        after a token belongs to that token (spaCy's `whitespace_`), any other
        run of space characters is a token of its own.
        """
        out: list[tuple[int, str]] = []
        end = 0
        # \S is the complement of str.isspace, which spaCy cuts at.
        for word in _NON_SPACE.finditer(text):
            start = word.start()
            if start > end:
                # The space characters before this word; the first one goes with the token before, if ' '.
                gap = end + 1 if end and text[end] == " " else end
                if gap < start:
                    self._add_piece(out, gap, text[gap:start], specials)
            self._add_piece(out, start, word.group(), specials)
            end = word.end()
        if end < len(text):
            gap = end + 1 if end and text[end] == " " else end
            if gap < len(text):
                self._add_piece(out, gap, text[gap:], specials)
        return out

    def _add_piece(self, out: list[tuple[int, str]], start: int, piece: str, specials: bool) -> None:
        tokens = self._pieces.get(piece) if specials else None
        if tokens is None:
            tokens = self._piece_tokens(piece, specials)
            if specials:
                if len(self._pieces) >= MAX_CACHED_PIECES:
                    self._pieces.clear()  # a long-lived worker's cache stays bounded
                self._pieces[piece] = tokens
        for token in tokens:
            out.append((start, token))
            start += len(token)

    def _piece_tokens(self, piece: str, specials: bool) -> list[str]:
        if specials and piece in self.specials:
            return list(self.specials[piece])
        prefixes, core, suffixes = self._split_affixes(piece, specials)
        return prefixes + self._attach(core, specials) + suffixes[::-1]

    def _split_affixes(self, string: str, specials: bool) -> tuple[list[str], str, list[str]]:
        """Tokenizer._split_affixes: peel prefixes and suffixes until none is left or an exception remains."""
        known = self.specials if specials else {}
        prefixes: list[str] = []
        suffixes: list[str] = []
        last_size = 0
        prefix = minus_pre = suffix = minus_suf = ""
        while string and len(string) != last_size:
            if string in known:
                break
            last_size = len(string)
            pre_len = self._find_prefix(string)
            if pre_len:
                prefix, minus_pre = string[:pre_len], string[pre_len:]
                if minus_pre and minus_pre in known:
                    string = minus_pre
                    prefixes.append(prefix)
                    break
            suf_len = self._find_suffix(string[pre_len:])
            if suf_len:
                suffix, minus_suf = string[-suf_len:], string[:-suf_len]
                if minus_suf and minus_suf in known:
                    string = minus_suf
                    suffixes.append(suffix)
                    break
            if pre_len and suf_len and pre_len + suf_len <= len(string):
                string = string[pre_len:-suf_len]
                prefixes.append(prefix)
                suffixes.append(suffix)
            elif pre_len:
                string = minus_pre
                prefixes.append(prefix)
            elif suf_len:
                string = minus_suf
                suffixes.append(suffix)
            if string in known:
                break
        return prefixes, string, suffixes

    def _attach(self, string: str, specials: bool) -> list[str]:
        """Tokenizer._attach_tokens without the affixes: an exception, a URL, or the string cut at infixes."""
        if not string:
            return []
        if specials and string in self.specials:
            return list(self.specials[string])
        if self._url is not None and self._url.match(string):
            return [string]
        matches = list(self._infix.finditer(string)) if self._infix is not None else []
        if not matches:
            return [string]
        out = []
        start = 0
        for match in matches:
            infix_start, infix_end = match.start(), match.end()
            if infix_start == 0:
                continue
            if infix_start != start:
                out.append(string[start:infix_start])
            if infix_start != infix_end:
                out.append(string[infix_start:infix_end])
            start = infix_end
        if string[start:]:
            out.append(string[start:])
        return out

    def rematch_changes(self, tokens: list[tuple[int, str]]) -> bool:
        """Whether re-applying the exceptions would change these tokens: some exception's tokens stand in a row
        with no space between them (so the row's text is the exception) and are not the exception's own tokens."""
        for i, (_, token) in enumerate(tokens):
            if token not in self._changing:
                continue
            for pattern in self._rematch[token]:
                row = tokens[i : i + len(pattern)]
                if (
                    [text for _, text in row] == pattern
                    and all(after[0] == before[0] + len(before[1]) for before, after in zip(row, row[1:]))
                    and self.specials["".join(pattern)] != pattern
                ):
                    return True
        return False

    def rematch(self, text: str, tokens: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """`Tokenizer._apply_special_cases`: the exceptions re-applied to all tokens of `text`.

        Every row of tokens equal to an exception's pattern is a match, also
        across spaces; the longest (then the first) wins where matches share
        a first or last token; a kept match whose text is an exception is
        replaced by the exception's tokens, others are left as they are.
        """
        matches = []
        for i, (_, token) in enumerate(tokens):
            for pattern in self._rematch.get(token, ()):
                if [t for _, t in tokens[i : i + len(pattern)]] == pattern:
                    matches.append((i, i + len(pattern)))
        if not matches:
            return tokens
        matches.sort(key=lambda match: (match[1] - match[0], -match[0]))
        seen: set[int] = set()
        kept: dict[int, int] = {}
        for start, end in reversed(matches):
            if start not in seen and end - 1 not in seen:
                kept[start] = end
            seen.update(range(start, end))
        out: list[tuple[int, str]] = []
        i = 0
        while i < len(tokens):
            end = kept.get(i)
            if end is None:
                out.append(tokens[i])
                i += 1
                continue
            first, (last_start, last) = tokens[i][0], tokens[end - 1]
            rule = self.specials.get(text[first : last_start + len(last)])
            if rule is None:
                out += tokens[i:end]
            else:
                for token in rule:
                    out.append((first, token))
                    first += len(token)
            i = end
        return out
