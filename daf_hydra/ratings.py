"""Ratings of policies from the team rewards of mixed teams (cross-play), with OpenSkill and bootstrap intervals.

A *match* is one map (a mission and seed): every composition played it, and each composition's team reward is its
score. Compositions are teams of policies weighted by the share of agents each controls. Two compositions of a
match are one OpenSkill game between what tells them apart: a policy's weight is its share in one team minus its
share in the other, positive on the side that has more of it (baseline x4 against baseline x2 + random x2 is
baseline with weight 1/2 against random with weight 1/2: the difference of the teams is what the score
difference measures). This is the team Bradley-Terry model (Huang et al. 2006) as OpenSkill's Plackett-Luce
model rates it online; a game between identical teams says nothing and is left out.

Intervals: matches are resampled with replacement within each mission (the stratum), the whole rating is rerun
on each resample, and the interval is the percentiles of the policies' ratings (mu).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

Team = Mapping[str, float]  # policy -> share of the team's agents
Match = Mapping[str, tuple[Team, float]]  # composition -> (its team, its team reward) on one map


def games(match: Match) -> list[tuple[dict[str, float], dict[str, float], float, float]]:
    """The two-team games of a match: (side X, side Y, score X, score Y) for every pair of compositions, each
    side the policies it has more of, weighted by how much more."""
    out = []
    for (team_x, score_x), (team_y, score_y) in itertools.combinations([match[c] for c in sorted(match)], 2):
        diff = {p: team_x.get(p, 0.0) - team_y.get(p, 0.0) for p in sorted({*team_x, *team_y})}
        side_x = {p: d for p, d in diff.items() if d > 0}
        side_y = {p: -d for p, d in diff.items() if d < 0}
        if side_x and side_y:
            out.append((side_x, side_y, score_x, score_y))
    return out


def openskill_ratings(matches: Sequence[Match], policies: Sequence[str]) -> dict[str, float]:
    """Each policy's OpenSkill (Plackett-Luce) mu after rating `matches` in order, from the model's prior."""
    from openskill.models import PlackettLuce

    model = PlackettLuce()
    ratings = {p: model.rating(name=p) for p in policies}
    for match in matches:
        for side_x, side_y, score_x, score_y in games(match):
            rated = model.rate([[ratings[p] for p in side_x], [ratings[p] for p in side_y]],
                               scores=[score_x, score_y],
                               weights=[list(side_x.values()), list(side_y.values())])
            for side, new in zip((side_x, side_y), rated):
                ratings.update(zip(side, new))
    return {p: float(ratings[p].mu) for p in policies}


def ratings_with_ci(matches_by_mission: Mapping[str, Sequence[Match]], policies: Sequence[str], reps: int,
                    confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """{policy: {"point", "low", "high"}}: the rating of all matches (missions in name order, maps in seed order)
    and its stratified-bootstrap percentile interval over `reps` resamples of the matches."""
    missions = sorted(matches_by_mission)
    point = openskill_ratings([m for name in missions for m in matches_by_mission[name]], policies)
    rng = np.random.default_rng(seed)
    draws = np.empty((reps, len(policies)))
    for r in range(reps):
        resample = []
        for name in missions:
            maps = matches_by_mission[name]
            resample += [maps[i] for i in rng.integers(0, len(maps), len(maps))]
        rated = openskill_ratings(resample, policies)
        draws[r] = [rated[p] for p in policies]
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(draws, [tail, 100.0 - tail], axis=0)
    return {p: {"point": point[p], "low": float(lo), "high": float(hi)} for p, lo, hi in zip(policies, low, high)}
