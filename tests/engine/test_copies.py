"""The per-step cost: one copy of the context per step, no more."""

from stepkit_django import stepkit


class CountingValue:
    """A context value that counts how often it is deep-copied."""

    copies = 0

    def __deepcopy__(self, memo):
        CountingValue.copies += 1
        return CountingValue()


def test_a_twenty_step_run_copies_the_context_once_per_step():
    p = stepkit()
    for i in range(20):
        p = p.step(f"s{i}", lambda c: {"n": c.get("n", 0) + 1})
    CountingValue.copies = 0
    out = p.run({"payload": CountingValue()}, on_step_complete=lambda e: e.step_name)
    assert out["n"] == 20
    # one copy of the input, then one per step (the step's own isolated copy)
    assert CountingValue.copies == 21


def test_reading_event_context_costs_one_more_copy_only_when_read():
    p = stepkit().step("s", lambda c: {})
    CountingValue.copies = 0
    p.run({"v": CountingValue()}, on_step_complete=lambda e: e.context)
    assert CountingValue.copies == 3
