"""Every measurable claim for a set of studies, one module per family (mean-field, theorems, hypotheses,
trainability).

``predict(studies)`` runs all families: per study the theorems and mean-field claims, then the
hypotheses (which may compare studies).
"""
from __future__ import annotations

from typing import Iterable

from empirical.analysis.claims.curvature import edge_of_stability, plateaus
from empirical.analysis.claims.hypotheses import hypotheses
from empirical.analysis.claims.meanfield import gradient_flow, preactivation_profile, saturation
from empirical.analysis.claims.theorems import dead_units, lipschitz_bound
from empirical.analysis.claims.trainability import trainability_of
from empirical.analysis.results_schema import Study
from empirical.analysis.verdicts import Claim as Prediction

__all__ = ["predict", "gradient_flow", "preactivation_profile", "saturation", "dead_units", "lipschitz_bound",
           "hypotheses", "edge_of_stability", "plateaus", "trainability_of"]


def predict(studies: Iterable[Study]) -> list[Prediction]:
    """Every claim for every study: per-study claims in study order, then the hypotheses."""
    studies = list(studies)
    out = []
    for st in studies:
        out += lipschitz_bound(st)
        out += gradient_flow(st)
        out += preactivation_profile(st)
        out += saturation(st)
        out += dead_units(st)
        out += edge_of_stability(st)
        out += plateaus(st)
        out += trainability_of(st)
    out += hypotheses(studies)
    return out
