r"""Interacting particle systems: the SIR contact process on a graph with BFFG guiding.

The backward filter uses a factorised auxiliary (individuals independent, infected-neighbour counts
frozen to a data-based guess); guided paths follow the true coupled kernel tilted by the factorised
messages, and exact log-weights correct for the coupling. See ``docs/interacting_particles.md``.
"""

from . import data, guided, model
from .data import Observations, frozen_counts, observation_log_lik, observations
from .guided import (EvidenceEstimate, GuidedDraw, GuidedSamples, IPSFilter, backward_filter, guided_draw,
                     guided_sample, importance_evidence, innovation_intervals, innovations_for_path, log_weight, noise_shape,
                     path_log_prob, summarize_log_weights, telescoped_log_weight)
from .model import (I, NUM_STATES, R, S, ContactGraph, ContactProcess, categorical_from_uniform, contact_graph,
                    contact_process, infected_neighbours, simulate, simulate_from_noise, transition_matrices)

__all__ = [
    "ContactGraph", "ContactProcess", "EvidenceEstimate", "GuidedDraw", "GuidedSamples", "I", "IPSFilter",
    "NUM_STATES", "Observations", "R", "S", "backward_filter", "categorical_from_uniform", "contact_graph",
    "contact_process", "data", "frozen_counts", "guided", "guided_draw", "guided_sample", "importance_evidence",
    "infected_neighbours", "innovation_intervals", "innovations_for_path", "log_weight", "model", "noise_shape", "observation_log_lik", "observations",
    "path_log_prob", "simulate", "simulate_from_noise", "summarize_log_weights", "telescoped_log_weight", "transition_matrices",
]
