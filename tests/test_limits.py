"""The teachers' caps (issue 12, point 2): one place, environment variables, and a request over
a cap gets a message naming the cap and how to raise it."""
from __future__ import annotations

import time

import pytest

from cnnviz import limits
from cnnviz.presets import PRESETS
from cnnviz.training.config import TrainConfig
from cnnviz.training.job import TrainingJob
from cnnviz.training.queue import DEVICES
from tests.test_train_page import (errors, offline, open_train, routed_as_served,  # noqa: F401
                                   run_to_end, settings, start)


def test_every_cap_has_a_default_and_reads_its_variable(monkeypatch):
    for key, cap in limits.CAPS.items():
        monkeypatch.delenv(cap.env, raising=False)
        assert limits.limit(key) == cap.default > 0
        monkeypatch.setenv(cap.env, "7")
        assert limits.limit(key) == 7
    monkeypatch.setenv("CNNVIZ_MAX_PARAMS", "1_000_000")
    assert limits.limit("params") == 1_000_000


@pytest.mark.parametrize("value", ["", "abc", "-3", "0", "nan", "inf"])
def test_a_setting_that_is_not_a_positive_number_is_ignored_and_said(monkeypatch, value):
    monkeypatch.setenv("CNNVIZ_MAX_EPOCHS", value)
    assert limits.limit("epochs") == limits.CAPS["epochs"].default
    [said] = limits.bad_settings()
    assert said.startswith(f"CNNVIZ_MAX_EPOCHS={value!r} is not a positive number")
    assert "the default 100 holds" in said


def test_over_a_cap_the_message_names_the_cap_its_variable_and_the_guide(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_EPOCHS", "20")
    assert limits.over("epochs", 20) is None
    message = limits.over("epochs", 21)
    assert message == ("Epochs of one run is 21, over this server's cap of 20 (the teacher "
                       "raises it with the environment variable CNNVIZ_MAX_EPOCHS; see "
                       "docs/teaching.md).")
    assert limits.network_over(10, 10) == []
    monkeypatch.setenv("CNNVIZ_MAX_PARAMS", "5")
    [params] = limits.network_over(10, 10)
    assert "CNNVIZ_MAX_PARAMS" in params


def test_every_preset_fits_the_default_caps():
    from cnnviz.workbench import analyse
    for name, preset in PRESETS.items():
        summary = analyse(preset.spec).summary
        assert limits.network_over(summary.total_params, summary.mult_adds) == [], name
        assert limits.over("input_size", preset.spec.input_size) is None, name


def start_disabled_with(at, *needles: str) -> str:
    [message] = [e for e in errors(at) if all(n in e for n in needles)]
    assert at.button(key="train.start").disabled
    return message


def test_the_train_page_refuses_epochs_over_the_cap(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_EPOCHS", "5")
    at = open_train()
    assert at.number_input(key="train.epochs").value == 5  # the default keeps to the cap
    assert not errors(at)
    settings(at, epochs=6)
    start_disabled_with(at, "Epochs of one run is 6", "CNNVIZ_MAX_EPOCHS")
    settings(at, epochs=5)
    assert not errors(at) and not at.button(key="train.start").disabled


def test_the_train_page_refuses_an_input_size_over_the_cap(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_INPUT_SIZE", "32")
    at = settings(open_train(), size=40)
    start_disabled_with(at, "Input size of a run or a picture is 40 px", "cap of 32 px",
                        "CNNVIZ_MAX_INPUT_SIZE")


def test_the_train_page_refuses_a_network_over_the_cap(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_PARAMS", "50000")
    at = open_train()  # LeNet: 61,706 parameters
    start_disabled_with(at, "Parameters of a network is 61,706", "CNNVIZ_MAX_PARAMS")


def test_a_time_budget_over_the_cap_is_refused_and_a_run_stops_at_the_cap(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_RUN_SECONDS", "2")
    at = open_train()
    at.radio(key="train.stop_after").set_value("time budget").run()
    at.number_input(key="train.budget").set_value(60).run()
    start_disabled_with(at, "Seconds of one run is 60 s", "CNNVIZ_MAX_RUN_SECONDS")
    at.radio(key="train.stop_after").set_value("epochs").run()
    settings(at, epochs=100, limit=0)  # far more than 2 s on this machine
    run_to_end(start(at))
    [history] = at.session_state["train.history"]
    assert history.state == "finished" and history.points[-1].epoch < 100
    assert any("stopped at this server's cap of 2 s per run (CNNVIZ_MAX_RUN_SECONDS"
               in s.value for s in at.success)


def test_start_is_refused_while_the_servers_queue_is_full(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_QUEUE", "1")
    other = object()  # another session's run trains on the CPU, a third one waits
    assert DEVICES.try_acquire("cpu", other)
    waiting = TrainingJob(1, "lenet", PRESETS["lenet"].spec,
                          TrainConfig(dataset="digits", epochs=1, limit=100, device="cpu"))
    try:
        waiting.start()
        deadline = time.monotonic() + 60
        while waiting.state != "queued":
            assert time.monotonic() < deadline and not waiting.done, \
                f"the second run never queued (it is {waiting.state})"
            time.sleep(0.05)
        at = settings(open_train(), epochs=1)
        start(at)
        [message] = [e for e in errors(at) if e.startswith("The run did not start")]
        assert "1 runs already wait for a device" in message and "CNNVIZ_MAX_QUEUE" in message
        assert "train.active" not in at.session_state  # no run was made
    finally:
        waiting.stop()
        DEVICES.release("cpu", other)
        waiting.join(30)


def test_build_shows_an_over_cap_network_and_says_what_will_not_build_it(monkeypatch):
    from tests.test_maps_page import open_page
    monkeypatch.setenv("CNNVIZ_MAX_PARAMS", "50000")
    at = open_page("lenet", "pages/build.py", "Build")
    [warning] = [w.value for w in at.warning if "CNNVIZ_MAX_PARAMS" in w.value]
    assert warning.startswith("Parameters of a network is 61,706, over this server's cap")
    assert "Train, Feature maps and BatchNorm will not build its weights" in warning
    assert at.dataframe  # the shapes are still there


def test_feature_maps_and_batchnorm_refuse_a_network_over_the_caps(monkeypatch):
    from tests.test_maps_page import open_page
    monkeypatch.setenv("CNNVIZ_MAX_INPUT_SIZE", "27")
    for page, title in (("pages/maps.py", "Feature maps"), ("pages/batchnorm.py", "BatchNorm")):
        at = open_page("lenet", page, title)  # LeNet's input is 28 px
        [error] = [e.value for e in at.main.error]
        assert error.startswith("This network is too large to build here: Input size of a run "
                                "or a picture is 28 px") and "CNNVIZ_MAX_INPUT_SIZE" in error
        assert not at.get("plotly_chart")  # nothing was built or drawn


def test_the_batchnorm_comparison_keeps_to_the_epochs_cap(monkeypatch):
    from tests.test_maps_page import open_page
    monkeypatch.setenv("CNNVIZ_MAX_EPOCHS", "5")
    at = open_page("lenet-bn", "pages/batchnorm.py", "BatchNorm")
    [error] = [e.value for e in at.main.error if "CNNVIZ_MAX_EPOCHS" in e.value]
    assert error.startswith("Epochs of one run is 10")
    assert at.button(key="bn.cmp.start").disabled
    at.number_input(key="bn.cmp.epochs").set_value(5).run()
    assert not at.button(key="bn.cmp.start").disabled


def test_home_says_which_server_settings_it_ignored(monkeypatch):
    from tests.test_maps_page import open_page
    monkeypatch.setenv("CNNVIZ_KEEP_WEIGHTS", "lots")
    at = open_page("lenet", "pages/home.py", "cnnviz — the classic CNNs of *Dive into Deep "
                                             "Learning*")
    [warning] = [w.value for w in at.warning]
    assert warning == ("Server setting ignored: CNNVIZ_KEEP_WEIGHTS='lots' is not a positive "
                       "number; the default 3 holds.")
