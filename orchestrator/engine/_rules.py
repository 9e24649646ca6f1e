"""Who blocks whom: the rules shared by the whole-run engine and the per-task steps (pure)."""

from __future__ import annotations

from orchestrator.contracts import ErrorInfo, TaskRun, TaskStatus
from orchestrator.engine._plan import Plan, result_refs

S = TaskStatus
NOT_TAKEN = "BranchNotTaken"


def consumed(plan: Plan, key: str) -> bool:
    """A failure every child allows (allow_failure) does not fail the run."""
    children = plan.children[key]
    who = plan.map_of(key) or key  # a run-time map's child is allowed as its map is
    return bool(children) and all(who in plan.tasks[c].tolerated for c in children)


def returns_tolerated(plan: Plan) -> bool:
    """The flow returns the result of a node whose failure another task runs past
    (allow_failure): the counters do not count that failure, so finishing must look."""
    refs = set(result_refs(plan.spec.result))
    return any(refs.intersection(n.allow_failure) for n in plan.spec.nodes)


def returned(plan: Plan) -> frozenset[str]:
    """The nodes and task keys whose results the flow returns."""
    refs = set(result_refs(plan.spec.result))
    return frozenset(refs).union(*(plan.members.get(r, ()) for r in refs))


def returned_failure(plan: Plan, task: TaskRun, keys: frozenset[str]) -> bool:
    """`task` did not succeed and the flow returns its result (`keys`: see `returned`): there
    is no result to return, so the run fails, as a Prefect flow returning a failed task's
    result does."""
    if task.status is not S.FAILED:
        return False  # a skipped one was skipped by a failure its own children did not allow
    return task.key in keys or (plan.map_of(task.key) or task.key) in keys


def not_taken(task: TaskRun) -> bool:
    """`task` was skipped because its branch was not taken (not because something failed)."""
    return task.status is S.SKIPPED and task.error is not None and task.error.type == NOT_TAKEN


def blocks(plan: Plan, parent: TaskRun, child: str) -> bool:
    """Whether `parent`, ended, keeps `child` from running."""
    planned = plan.tasks[child]
    if not_chosen(plan, parent, child):
        return True
    who = plan.map_of(parent.key) or parent.key  # a run-time map's child counts as its map
    if parent.status is S.SUCCEEDED or who in planned.tolerated:
        return False
    return not (who in planned.untaken and not_taken(parent))


def not_chosen(plan: Plan, parent: TaskRun, child: str) -> bool:
    """`child` sits in a branch of gate `parent` that the gate did not choose."""
    gated = plan.tasks[child].node.branch
    return gated is not None and gated[0] == parent.key and gated[1] != parent.choice


def skip_reason(plan: Plan, key: str, parents: list[TaskRun]) -> ErrorInfo:
    """Why `key` is skipped, naming the parent that decided it (when one is known)."""
    gated = plan.tasks[key].node.branch
    for parent in parents:
        if gated is not None and not_chosen(plan, parent, key):
            return ErrorInfo(
                type=NOT_TAKEN,
                message=f"not run: branch {gated[1]!r} of {parent.key!r} was not taken "
                f"(it chose {parent.choice!r})",
                task=key,
            )
    cause = next((p for p in parents if blocks(plan, p, key)), None)
    if cause is not None and not_taken(cause) and cause.error is not None:
        # Deeper in a branch not taken: the same reason, so the branch's result reads None.
        return cause.error.model_copy(update={"task": key})
    why = (
        f"upstream task {cause.key!r} ended {cause.status.value}"
        if cause is not None
        else "an upstream task did not succeed"
    )
    return ErrorInfo(type="UpstreamFailed", message=f"not run: {why}", task=key)
