"""A faster, score-identical VADER analyzer.

Use `FastVader` wherever `SentimentIntensityAnalyzer` would be used: it returns the very
same dict for every text (a test checks that against the stock analyzer on a generated
corpus) but skips work the stock code repeats:

* the emoji pass walks the text one character at a time building a new string; no emoji
  in the shipped lexicon is ASCII, so an ASCII text skips it;
* `_negation_check`, `_special_idioms_check` and `_but_check` each lower-case the whole
  word list again for every sentiment word (quadratic in the text's length); here the
  lowered list is computed once per text and carried alongside the words;
* `negated([word])` builds and scans a 60-word list; a frozenset lookup gives the same
  answer for a single word.
"""

from __future__ import annotations

from typing import Any

from vaderSentiment import vaderSentiment as _vs  # type: ignore[import-untyped]

_NEGATE = frozenset(_vs.NEGATE)
_N_SCALAR = _vs.N_SCALAR


class _Words(list[str]):
    """The word list of one text, with its lower-cased twin computed once."""

    __slots__ = ("lowered",)

    def __init__(self, words: list[str]) -> None:
        super().__init__(words)
        self.lowered = [w.lower() for w in words]


def _lowered(words: list[str]) -> list[str]:
    # Our own texts always carry `_Words`; anything else takes the stock path.
    if isinstance(words, _Words):
        return words.lowered
    return [str(w).lower() for w in words]


def _negated_word(word: str) -> bool:
    """`vaderSentiment.negated([word])` for one already lower-cased word."""
    return word in _NEGATE or "n't" in word


class FastVader(_vs.SentimentIntensityAnalyzer):  # type: ignore[misc]
    """VADER with the same scores as the stock analyzer, roughly twice as fast."""

    def polarity_scores(self, text: str) -> dict[str, float]:
        # No emoji of the lexicon is ASCII: only other texts need the emoji pass.
        text = text.strip() if text.isascii() else _strip_emoji(self.emojis, text)
        sentitext = _vs.SentiText(text)
        words = _Words(sentitext.words_and_emoticons)
        sentitext.words_and_emoticons = words
        lowered = words.lowered
        last = len(words) - 1
        booster = _vs.BOOSTER_DICT
        sentiments: list[float] = []
        for i, item in enumerate(words):
            low = lowered[i]
            if low in booster or (i < last and low == "kind" and lowered[i + 1] == "of"):
                sentiments.append(0)
                continue
            sentiments = self.sentiment_valence(0, sentitext, item, i, sentiments)
        sentiments = self._but_check(words, sentiments)
        result: dict[str, float] = self.score_valence(sentiments, text)
        return result

    @staticmethod
    def _but_check(words_and_emoticons: list[str], sentiments: list[float]) -> list[float]:
        lowered = _lowered(words_and_emoticons)
        if "but" in lowered:
            bi = lowered.index("but")
            # Kept exactly as the stock code (index() of equal values included) so that
            # scores match to the last digit.
            for sentiment in sentiments:
                si = sentiments.index(sentiment)
                if si < bi:
                    sentiments.pop(si)
                    sentiments.insert(si, sentiment * 0.5)
                elif si > bi:
                    sentiments.pop(si)
                    sentiments.insert(si, sentiment * 1.5)
        return sentiments

    @staticmethod
    def _negation_check(valence: float, words_and_emoticons: list[str], start_i: int,
                        i: int) -> float:
        w = _lowered(words_and_emoticons)
        if start_i == 0:
            if _negated_word(w[i - 1]):
                valence = valence * _N_SCALAR
        elif start_i == 1:
            if w[i - 2] == "never" and (w[i - 1] == "so" or w[i - 1] == "this"):
                valence = valence * 1.25
            elif w[i - 2] == "without" and w[i - 1] == "doubt":
                pass
            elif _negated_word(w[i - 2]):
                valence = valence * _N_SCALAR
        elif start_i == 2:
            if (w[i - 3] == "never" and (w[i - 2] == "so" or w[i - 2] == "this")) or (
                w[i - 1] == "so" or w[i - 1] == "this"
            ):
                valence = valence * 1.25
            elif w[i - 3] == "without" and (w[i - 2] == "doubt" or w[i - 1] == "doubt"):
                pass
            elif _negated_word(w[i - 3]):
                valence = valence * _N_SCALAR
        return valence

    @staticmethod
    def _special_idioms_check(valence: float, words_and_emoticons: list[str], i: int) -> float:
        w = _lowered(words_and_emoticons)
        special = _vs.SPECIAL_CASES
        booster = _vs.BOOSTER_DICT
        # Negative indexes wrap around exactly as in the stock code.
        onezero = f"{w[i - 1]} {w[i]}"
        twoonezero = f"{w[i - 2]} {w[i - 1]} {w[i]}"
        twoone = f"{w[i - 2]} {w[i - 1]}"
        threetwoone = f"{w[i - 3]} {w[i - 2]} {w[i - 1]}"
        threetwo = f"{w[i - 3]} {w[i - 2]}"
        for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
            if seq in special:
                valence = special[seq]
                break
        if len(w) - 1 > i:
            zeroone = f"{w[i]} {w[i + 1]}"
            if zeroone in special:
                valence = special[zeroone]
        if len(w) - 1 > i + 1:
            zeroonetwo = f"{w[i]} {w[i + 1]} {w[i + 2]}"
            if zeroonetwo in special:
                valence = special[zeroonetwo]
        for n_gram in (threetwoone, threetwo, twoone):
            if n_gram in booster:
                valence = valence + booster[n_gram]
        return valence


def _strip_emoji(emojis: dict[str, Any], text: str) -> str:
    """The stock emoji pass: each emoji becomes its description, space-separated."""
    parts: list[str] = []
    prev_space = True
    for ch in text:
        description = emojis.get(ch)
        if description is not None:
            if not prev_space:
                parts.append(" ")
            parts.append(description)
            prev_space = False
        else:
            parts.append(ch)
            prev_space = ch == " "
    return "".join(parts).strip()
