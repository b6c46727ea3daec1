r"""Markov jump processes: exact endpoint-conditioned paths (uniformisation) and the guided CTMC of BFFG."""

from .bridge import JumpPath, occupation_times, path_state_at, sample_bridge, suggest_max_jumps, transition_counts

__all__ = ["JumpPath", "occupation_times", "path_state_at", "sample_bridge", "suggest_max_jumps", "transition_counts"]
