"""langdetect's own profiles and algorithm, stored sparsely: a quarter of the memory, faster.

langdetect keeps, for each of its ~88,000 n-grams, a list of 55 floats, one per language
(61 MiB resident), although only ~2 languages per n-gram are non-zero. Here each n-gram maps
to packed (language index, probability) pairs (~15 MiB in all), and a trial's probabilities
carry a common scale factor: every language is multiplied by the smoothing weight on each
update, so only the languages that know the n-gram need touching. The text handling (URL and
address removal, normalisation, n-gram extraction) is langdetect's own code, and the random
sampling is seeded the same way: the answers are langdetect's, to rounding (tests compare).
"""
from __future__ import annotations

import json
import os
import struct
import threading
from dataclasses import dataclass

from langdetect.detector import Detector
from langdetect.detector_factory import PROFILES_DIRECTORY
from langdetect.lang_detect_exception import ErrorCode, LangDetectException

_PAIR = struct.Struct("<Bd")  # language index, probability
SEED = 0  # langdetect samples randomly; a fixed seed makes the same mail give the same answer


@dataclass(frozen=True)
class Guess:
    lang: str
    prob: float


class SparseProfiles:
    """What `Detector` reads from a factory: `word_lang_prob_map` (membership is all it needs
    from it before our own update loop), `langlist` and `seed`."""

    def __init__(self, directory: str = PROFILES_DIRECTORY):
        self.langlist: list[str] = []
        self.word_lang_prob_map: dict[str, bytes] = {}
        self.seed = SEED
        for name in sorted(os.listdir(directory)):
            if not name.startswith("."):
                self._add(os.path.join(directory, name))

    def _add(self, path: str) -> None:
        with open(path, encoding="utf-8") as f:
            profile = json.load(f)
        index = len(self.langlist)
        self.langlist.append(profile["name"])
        n_words, table = profile["n_words"], self.word_lang_prob_map
        for word, count in profile["freq"].items():
            if 1 <= len(word) <= 3:  # as langdetect: longer entries are never looked up
                table[word] = table.get(word, b"") + _PAIR.pack(index, count / n_words[len(word) - 1])


class SparseDetector(Detector):
    """langdetect's Detector with the probability loop over non-zero languages only."""

    def detect_block(self) -> list[float]:
        self.cleaning_text()
        ngrams = self._extract_ngrams()
        if not ngrams:
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        langs = len(self.langlist)
        average = [0.0] * langs
        self.random.seed(self.seed)
        for _ in range(self.n_trial):
            alpha = self.alpha + self.random.gauss(0.0, 1.0) * self.ALPHA_WIDTH
            trial = self._trial(ngrams, alpha / self.BASE_FREQ, langs)
            for j in range(langs):
                average[j] += trial[j] / self.n_trial
        return average

    def _trial(self, ngrams: list[str], weight: float, langs: int) -> list[float]:
        """One of langdetect's random walks. prob[i] * weight**k is the true value between
        normalisations; the shared factor cancels when they are normalised."""
        prob = [1.0 / langs] * langs
        table, choice = self.word_lang_prob_map, self.random.choice
        i = 0
        while True:
            for index, p in _PAIR.iter_unpack(table[choice(ngrams)]):
                prob[index] *= 1.0 + p / weight
            if i % 5 == 0:
                total = sum(prob)
                prob = [p / total for p in prob]
                if max(prob) > self.CONV_THRESHOLD or i >= self.ITERATION_LIMIT:
                    return prob
            i += 1


_profiles: SparseProfiles | None = None
_loading = threading.Lock()


def profiles() -> SparseProfiles:
    """Loaded once per process, on first use (about a second), by whichever thread comes first."""
    global _profiles
    with _loading:
        if _profiles is None:
            _profiles = SparseProfiles()
    return _profiles


def detect_languages(text: str) -> list[Guess]:
    """Languages above langdetect's reporting threshold, most probable first."""
    detector = SparseDetector(profiles())
    detector.append(text)
    probs = detector.detect_block()
    guesses = [Guess(lang, p) for lang, p in zip(detector.langlist, probs) if p > Detector.PROB_THRESHOLD]
    return sorted(guesses, key=lambda g: g.prob, reverse=True)
