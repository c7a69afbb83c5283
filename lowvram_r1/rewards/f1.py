"""Answer F1 for open question answering (SQuAD's normalisation: lower case, no punctuation, no articles).

>>> answer_f1("The Eiffel Tower", ["Eiffel tower", "la tour Eiffel"])
1.0
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected or common == 0:
        return float(predicted == expected and bool(predicted))
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def answer_f1(prediction: str | None, golds: Sequence[str] | str) -> float:
    """The best F1 of ``prediction`` against any of the gold answers; 0.0 for no prediction."""
    if prediction is None:
        return 0.0
    candidates = [golds] if isinstance(golds, str) else list(golds)
    return max((token_f1(prediction[:2000], str(gold)) for gold in candidates), default=0.0)


def exact_match(prediction: str | None, golds: Sequence[str] | str) -> bool:
    candidates = [golds] if isinstance(golds, str) else list(golds)
    return prediction is not None and any(normalize_answer(prediction) == normalize_answer(str(g)) for g in candidates)
