"""The agent-network registry: name -> the network class (agent.py), built as cls(n_actions, hidden_dim);
named "module:Class" so that checking a setting imports no JAX."""

from __future__ import annotations

from qmix.registry import Registry

AGENTS: Registry = Registry("agent network")
AGENTS.add("rnn", "qmix.nets.agent:RecurrentAgent",
           "DRQN: Dense-ReLU-GRU-Dense, the hidden state carried through the episode")
AGENTS.add("ff", "qmix.nets.agent:FeedForwardAgent", "Dense-ReLU-Dense, no memory (the two-step game's agent)")
AGENTS.add("rnn_norm", "qmix.nets.agent:NormalisedRecurrentAgent",
           "PQN's: two Dense-LayerNorm-ReLU layers, a GRU, then Dense (trains without a target network)")
