"""engine/stopping.py: a first signal waits for a safe point, a second one (or one outside a deferring section)
stops at once; the handlers are only there while installed."""

import os
import signal

import pytest
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hcal.engine.stopping import REQUEST, as_stopped, check_stop, deferred, stop_on_signals
from hcal.errors import Stopped


def test_a_signal_outside_a_deferring_section_stops_at_once():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        with pytest.raises(Stopped, match="stopped by SIGTERM") as info:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()  # not reached: the handler raises
    assert info.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before  # put back


def test_a_first_signal_waits_for_the_safe_point_a_second_one_does_not():
    with stop_on_signals():
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)  # recorded only
            with pytest.raises(Stopped, match="stopped by SIGINT in epoch 2/5") as info:
                check_stop("in epoch 2/5")
            with pytest.raises(Stopped, match="stopped by SIGINT"):
                os.kill(os.getpid(), signal.SIGINT)
                signal.pause()
    assert info.value.exit_code == 130
    with stop_on_signals():
        check_stop()  # a new command starts with no stop pending


def test_lightnings_own_sigterm_stop_is_a_stop_saying_where_training_was():
    with stop_on_signals():
        REQUEST.where = "in epoch 2/3"
        e = as_stopped(SIGTERMException())
    assert isinstance(e, Stopped) and e.signum == signal.SIGTERM and e.where == "in epoch 2/3"
    other = ValueError("x")
    assert as_stopped(other) is other
    assert REQUEST.where == ""
