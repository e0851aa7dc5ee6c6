"""What the seeding helper, the locustfile and the report share: the synthetic world of a run.

Everything is derived deterministically from a small JSON "seed file" (population
size, seeds, hospitals, keys), so the driver and every locust process agree on
the persons and hospitals without passing 100,000 rows around.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settlement.synth import Person, population

POOR = ("extreme_poverty", "subsistence_allowance", "registered_poor", "low_income", "illness_impoverished")
LEVELS = (1, 2, 2, 3, 3)  # a hospital's level is fixed; most counters are in secondary and tertiary ones


def hospital_ids(n: int) -> list[str]:
    return [f"H{k:04d}" for k in range(1, n + 1)]


def hospital_level(hospital_id: str) -> int:
    return LEVELS[int(hospital_id[1:]) % len(LEVELS)]


@dataclass
class World:
    """The run's persons and hospitals, rebuilt from the seed file."""

    persons: list[Person]
    hot: list[Person]
    """A few persons (poor categories) who get a share of all claims: their settlements race."""
    hospitals: dict[str, str]
    """hospital id → its API key."""
    admin_key: str
    config: dict[str, Any]


def build_persons(n: int, seed: int) -> list[Person]:
    return population(n, seed=seed)


def pick_hot(persons: list[Person], count: int, seed: int) -> list[Person]:
    rng = random.Random(seed + 7)
    poor_adults = [p for p in persons if p.category in POOR and p.birth.year < 2000]
    return rng.sample(poor_adults, min(count, len(poor_adults)))


def load_world(path: str | Path) -> World:
    config = json.loads(Path(path).read_text())
    persons = build_persons(config["persons"], config["population_seed"])
    return World(
        persons=persons,
        hot=pick_hot(persons, config["hot_persons"], config["population_seed"]),
        hospitals=config["hospital_keys"],
        admin_key=config["admin_key"],
        config=config,
    )
