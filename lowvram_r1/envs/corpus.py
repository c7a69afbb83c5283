"""A procedural world of invented people, cities, countries and companies: a passage corpus whose facts no model
can know without searching, and single-hop / two-hop questions answered only by it (seeded, disjoint splits).

    world = make_world(seed=0, people=400)
    world.documents[0]      # {"id": "p0", "title": "Vesna Torrik", "text": "Vesna Torrik was born in Dravonne. ..."}
    world.questions[0]      # {"question": "In which country was Vesna Torrik born?", "golden_answers": ["Kelvaria"],
                            #  "gold_titles": ["Vesna Torrik", "Dravonne"], "queries": ["Vesna Torrik", "Dravonne"],
                            #  "notes": [...], "hops": 2}
    path = world_corpus_file(seed=0, people=400)     # the corpus as {id, title, text} jsonl, in the cache

Questions name an entity and ask for a fact on its page (one hop) or on the page of an entity named there (two
hops: the person's birth city, then that city's country). ``queries`` and ``notes`` are the search queries and
reasoning a correct trace uses (the tiny model's cold-start SFT learns the format from them).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "qu", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "k", "th", "x"]


def cache_dir() -> Path:
    """Where built corpora and indexes live: ``$LOWVRAM_R1_CACHE`` (default ``~/.cache/lowvram_r1``)."""
    return Path(os.environ.get("LOWVRAM_R1_CACHE") or Path.home() / ".cache" / "lowvram_r1")


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)


@dataclass(frozen=True)
class World:
    """The invented world: corpus documents and every question about it (in a seeded order)."""

    documents: list[dict[str, str]]
    questions: list[dict[str, Any]]


def _names(rng: random.Random, count: int, syllables: tuple[int, int], taken: set[str], parts: int = 1) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = " ".join(_word(rng, rng.randint(*syllables)).capitalize() for _ in range(parts))
        if name.lower() not in taken:
            taken.add(name.lower())
            names.append(name)
    return names


def make_world(seed: int = 0, people: int = 400) -> World:
    """A deterministic world for ``seed`` with ``people`` persons (and a fifth as many cities and companies)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    countries = _names(rng, max(4, people // 25), (2, 3), taken)
    cities = _names(rng, max(8, people // 5), (2, 3), taken)
    companies = _names(rng, max(8, people // 5), (2, 2), taken)
    persons = _names(rng, people, (1, 2), taken, parts=2)
    city_country = {city: rng.choice(countries) for city in cities}
    capital = {country: next((c for c in cities if city_country[c] == country), cities[0]) for country in countries}
    company_city = {company: rng.choice(cities) for company in companies}
    born = {person: rng.choice(cities) for person in persons}
    works = {person: rng.choice(companies) for person in persons}

    documents = [
        {"id": f"p{i}", "title": p, "text": f"{p} was born in {born[p]}. {p} works for {works[p]}."}
        for i, p in enumerate(persons)
    ]
    documents += [
        {"id": f"c{i}", "title": c, "text": f"{c} is a city in {city_country[c]}."} for i, c in enumerate(cities)
    ]
    documents += [
        {"id": f"m{i}", "title": m, "text": f"{m} is a company headquartered in {company_city[m]}."}
        for i, m in enumerate(companies)
    ]
    documents += [
        {"id": f"n{i}", "title": n, "text": f"{n} is a country. Its capital is {capital[n]}."}
        for i, n in enumerate(countries)
    ]

    def q(question: str, answer: str, titles: list[str], notes: list[str]) -> dict[str, Any]:
        return {
            "question": question,
            "golden_answers": [answer],
            "gold_titles": titles,
            "queries": list(titles),
            "notes": notes,
            "hops": len(titles),
        }

    questions = []
    for p in persons:
        city, company = born[p], works[p]
        questions += [
            q(f"Where was {p} born?", city, [p], [f"{p} was born in {city}."]),
            q(f"Which company does {p} work for?", company, [p], [f"{p} works for {company}."]),
            q(
                f"In which country was {p} born?",
                city_country[city],
                [p, city],
                [f"{p} was born in {city}.", f"{city} is in {city_country[city]}."],
            ),
            q(
                f"In which city is the company {p} works for headquartered?",
                company_city[company],
                [p, company],
                [f"{p} works for {company}.", f"{company} is in {company_city[company]}."],
            ),
        ]
    questions += [
        q(f"In which country is {c}?", city_country[c], [c], [f"{c} is in {city_country[c]}."]) for c in cities
    ]
    questions += [
        q(f"Where is {m} headquartered?", company_city[m], [m], [f"{m} is in {company_city[m]}."]) for m in companies
    ]
    rng.shuffle(questions)
    return World(documents, questions)


def split_questions(
    world: World, split: str, test_size: int, hops: str = "all", validation_size: int = 0
) -> list[dict[str, Any]]:
    """The test split is the first ``test_size`` questions (of the wanted ``hops``: "1", "2" or "all"), the
    validation split the next ``validation_size`` (for choosing settings without the held-out questions), train the
    rest: no question is in two splits."""
    wanted = [row for row in world.questions if hops == "all" or str(row["hops"]) == hops]
    if split == "test":
        return wanted[:test_size]
    if split == "validation":
        return wanted[test_size : test_size + validation_size]
    return wanted[test_size + validation_size :]


def world_corpus_file(seed: int = 0, people: int = 400) -> Path:
    """The world's corpus as ``{id, title, text}`` jsonl in the cache (written once, atomically)."""
    path = cache_dir() / "search" / f"world-{seed}-{people}.jsonl"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text("".join(json.dumps(doc) + "\n" for doc in make_world(seed, people).documents))
    os.replace(scratch, path)
    return path
