"""obskit.label_guard: the runtime's cardinality guard for labels of the application's own."""

from __future__ import annotations

import pytest
from prometheus_client import Counter

import obskit
import obskit.testing
from obskit.metrics.cardinality import OVERFLOW


def test_own_family_gets_the_runtime_guard_and_its_overflow_count() -> None:
    """Values past label_top_k fold into __other__ on the application's own family (a value earns
    its slot from its second call), and each fold is counted in obskit_label_overflow_total."""
    guard = obskit.label_guard("user_id")  # taken before init(), as a module would
    with obskit.testing.isolated(label_top_k=2) as capture:
        logins = Counter("app_logins", "Logins by user.", ["user_id"], registry=capture.registry)
        for user in ["ann", "ann", "bob", "bob", "cy", "cy", "dee", "dee"]:
            logins.labels(guard(user)).inc()
        assert 1 == capture.sample("app_logins_total", {"user_id": "ann"})
        assert 1 == capture.sample("app_logins_total", {"user_id": "bob"})
        assert 6 == capture.sample("app_logins_total", {"user_id": OVERFLOW})
        assert capture.sample("app_logins_total", {"user_id": "cy"}) is None
        assert 6 == capture.sample("obskit_label_overflow_total", {"label": "user_id"})


def test_allow_list_and_a_re_init_are_followed() -> None:
    """The guard reads the live runtime at each call: a re-init()'s label_allow applies at once."""
    guard = obskit.label_guard("user_id")
    with obskit.testing.isolated(label_top_k=1):
        assert [OVERFLOW, "ann"] == [guard("ann"), guard("ann")]  # the one slot, earned
        assert OVERFLOW == guard("vip")
        obskit.init(label_allow=["vip"])
        assert "vip" == guard("vip")


def test_before_init_nothing_unguarded_reaches_a_label() -> None:
    """Without a live runtime every value is __other__, and a missing one the empty value."""
    obskit.testing.reset()
    guard = obskit.label_guard("user_id")
    assert [OVERFLOW, "", ""] == [guard("ann"), guard(None), guard("")]


@pytest.mark.parametrize("label", ["", None, 3])
def test_label_must_be_a_name(label: object) -> None:
    """A label that is not a non-empty string is refused where the guard is made."""
    with pytest.raises(ValueError, match="label name"):
        obskit.label_guard(label)  # type: ignore[arg-type]
