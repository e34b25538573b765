"""What the training loop needs of an algorithm: pure functions over the algorithm's own typed state.

The loop (learn/loop.py) collects episodes (or, with `rollout_steps`, fixed-length rollouts) with `act`,
stores them when `uses_replay`, calls `update` on batches (an on-policy algorithm: on each iteration's data) and `after_iteration` once per iteration,
and logs whatever metrics `update` returns. It knows nothing of mixers, exploration schedules or target
networks. An algorithm is registered in algorithms/__init__.py with its settings class; its factory takes
(settings, EnvSpec). Every command that plays a trained policy (evaluate, render, the matrix games,
`qmix.load_policy`) goes through `saved_parameters` and `policy_from_saved`.

Axes: E environments, N agents, A actions; the loop vmaps every function over a seed axis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: configuring a run imports this module, and no JAX
    import jax

    from qmix.episodes import EnvSpec, Episodes


class Algorithm(Protocol):
    spec: EnvSpec
    uses_replay: bool  # off-policy: episodes go into a replay, updates sample batches from it
    # Optional: `rollout_steps: int`, for an on-policy algorithm that learns from fixed-length rollouts:
    # the loop then steps every environment that many times per iteration, each resetting itself when its
    # episode ends, and hands `update` a step_rollouts.StepRollout instead of whole episodes.

    def init(self, key: jax.Array) -> Any:
        """The algorithm's whole state for one run (parameters, optimizer, targets, ...)."""
        ...

    def example_item(self) -> Episodes:
        """One item of a batch (zeros): a whole episode, as the replay holds it (with `rollout_steps`: one
        environment's StepRollout)."""
        ...

    # ----- acting (decentralised: each agent on its own observation) -----
    def acting_policy(self, state: Any, env_steps: jax.Array) -> Any:
        """The exploring policy for collection after `env_steps` steps (any pytree `act` reads)."""
        ...

    def test_policies(self, state: Any) -> dict[str, Any]:
        """Greedy policies to test, by name ("" for the main one; others log as test_<metric>_<name>)."""
        ...

    def initial_actor_state(self, n_envs: int) -> Any:
        """What acting carries between steps of an episode (e.g. RNN hidden state), for E environments."""
        ...

    def act(self, policy: Any, actor_state: Any, key: jax.Array, obs: jax.Array, avail: jax.Array
            ) -> tuple[Any, jax.Array]:
        """One step for E environments: obs [E, N, O], avail [E, N, A] -> actor state, actions [E, N] int32."""
        ...

    # ----- learning -----
    def update(self, state: Any, batch: Episodes, key: jax.Array, axis_name: str | None = None
               ) -> tuple[Any, dict[str, jax.Array], jax.Array]:
        """One learner update on a batch [B, ...] with its own random key (e.g. for minibatches): -> the new
        state, the metrics (scalars, by name; averaged over the updates of a chunk and logged) and the number
        of gradient steps it made ([] int32; the run's `updates` counts those)."""
        ...

    def after_iteration(self, state: Any, episodes: jax.Array) -> Any:
        """Per-iteration bookkeeping (e.g. target copies), given the training episodes collected so far."""
        ...

    def status(self, env_steps: jax.Array) -> dict[str, jax.Array]:
        """Logged values that follow from the env steps (e.g. the exploration rate)."""
        ...

    # ----- what a finished run keeps -----
    def saved_parameters(self, state: Any) -> dict[str, Any]:
        """Pytrees to write at the end of a run, by file stem ("params" first)."""
        ...

    def policy_from_saved(self, name: str, tree: Any) -> Any:
        """The greedy policy that a saved pytree (`saved_parameters(...)[name]`) plays."""
        ...


class JointActionValues(Protocol):
    """Optional: an algorithm that can tabulate its joint action-values (for matrix games)."""

    def joint_action_values(self, name: str, tree: Any, obs: jax.Array, state: jax.Array, avail: jax.Array
                            ) -> jax.Array:
        """The value of every joint action in one situation, from a saved pytree `name`, as at the start of an
        episode: obs [N, O], state [S], avail [N, A] -> [A, ..., A] (N axes, agent 1's action first)."""
        ...


def has_joint_action_values(algorithm: Any) -> bool:
    return callable(getattr(algorithm, "joint_action_values", None))


def uses_replay(entry: Any) -> bool:
    """Whether the algorithm of an ALGORITHMS entry learns from a replay, before anything is built: the
    entry's `uses_replay` fact (the contract tests check it against the algorithm's own attribute), else
    the attribute of the class it names."""
    if "uses_replay" in entry.facts:
        return bool(entry.facts["uses_replay"])
    return bool(getattr(entry.load(), "uses_replay", True))
