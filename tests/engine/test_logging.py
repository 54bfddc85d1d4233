"""Log lines and the stopwatch, checked through log_fn."""

import logging

from stepkit_django import stepkit


def fail(ctx):
    raise ValueError("nope")


def pipeline():
    return (
        stepkit("demo")
        .step("fetch", lambda c: {"user": "secret-value"})
        .step("maybe", lambda c: {"x": 1}, condition=False)
        .step("flaky", fail, on_error="continue")
        .step("finish", lambda c: {"done": True})
    )


def test_log_true_writes_start_steps_skips_and_failures(lines):
    pipeline().run({"id": 1}, log=lines.log())
    text = lines.text
    assert "🚀 Starting pipeline 'demo' with input keys: id" in text
    assert "📍 Step: fetch" in text
    assert "✅ fetch completed in " in text and "ms" in text
    assert "Output: user" in text
    assert "⏭️  maybe skipped (condition not met)" in text
    assert "❌ flaky failed after" in text and "ValueError: nope" in text
    assert "✨ Pipeline completed successfully" in text
    # without the stopwatch there is no summary
    assert "Performance Summary" not in text


def test_logs_name_keys_but_never_context_values(lines):
    pipeline().run({"id": "input-secret"}, log=lines.log(stopwatch=True))
    assert "secret-value" not in lines.text
    assert "input-secret" not in lines.text


def test_stopwatch_prints_summary_with_average_slowest_fastest_and_total(lines):
    pipeline().run({}, log=lines.log(stopwatch=True))
    text = lines.text
    assert "⏱️  Performance Summary:" in text
    assert "✅ fetch" in text and "❌ flaky" in text
    assert "Average: " in text
    assert "Slowest: " in text
    assert "Fastest: " in text
    assert "⏰ Total Pipeline Time: " in text


def test_stopwatch_flags_choose_what_is_shown(lines):
    pipeline().run({}, log=lines.log(stopwatch={"show_step_duration": False, "show_summary": False}))
    text = lines.text
    assert "✅ fetch completed\n" in text + "\n"
    assert "Performance Summary" not in text
    assert "⏰ Total Pipeline Time" in text


def test_errors_go_to_error_log_fn():
    info, errors = [], []
    pipeline().run({}, log={"log_fn": info.append, "error_log_fn": errors.append})
    assert any("flaky failed" in line for line in errors)
    assert not any("flaky failed" in line for line in info)


def test_resume_and_early_stop_lines(lines):
    tokens = {}

    def handler(event):
        tokens[event.step_name] = event.checkpoint
        if event.step_name == "fetch":
            event.stop_pipeline()

    p = pipeline()
    p.run({}, on_step_complete=handler, log=lines.log())
    assert "🛑 Pipeline stopped early after 'fetch'" in lines.text
    lines.clear()
    p.run_checkpoint(tokens["fetch"], log=lines.log())
    assert "🚀 Resuming pipeline 'demo' after 'fetch'" in lines.text
    assert "⏩ fetch skipped (completed before the checkpoint)" in lines.text


def test_step_log_false_silences_one_step(lines):
    p = stepkit().step("quiet", lambda c: {}, log=False).step("loud", lambda c: {})
    p.run({}, log=lines.log())
    assert "quiet" not in lines.text
    assert "loud completed" in lines.text


def test_step_log_true_logs_that_step_even_when_the_pipeline_log_is_off(caplog):
    p = stepkit().step("watched", lambda c: {}, log=True).step("other", lambda c: {})
    with caplog.at_level(logging.INFO, logger="stepkit_django"):
        p.run({})
    assert "watched completed" in caplog.text
    assert "other" not in caplog.text


def test_default_sink_is_the_stepkit_django_logger(caplog):
    with caplog.at_level(logging.INFO, logger="stepkit_django"):
        stepkit("p").step("s", lambda c: {}).run({}, log=True)
    assert [r.name for r in caplog.records] and {r.name for r in caplog.records} == {"stepkit_django"}
    assert "s completed" in caplog.text


def test_run_log_option_wins_over_config(lines):
    stepkit(log=True).step("s", lambda c: {}).run({}, log=lines.log())
    assert "s completed" in lines.text
    lines.clear()
    stepkit(log=lines.log()).step("s", lambda c: {}).run({}, log=False)
    assert lines == []
